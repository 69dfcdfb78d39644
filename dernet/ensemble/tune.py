"""Hyperparameter search for one member with Optuna: validation AUROC maximized (never test), TPE seeded, median or
Hyperband pruning per epoch, resumable from its RDB storage; the best trial becomes a ready member YAML.

Each trial is a real ``fit`` of the member through LightningCLI (run folder ``runs/tune/<study>/trial_<n>/``), so
a trial trains exactly as ``python -m dernet fit`` would with the same keys. Several processes or machines sharing
one storage URL (PostgreSQL or MySQL; SQLite on one machine) search one study together: Optuna's distributed mode.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState
from pytorch_lightning.callbacks import Callback

from ..fileio import write_figure_atomic, write_json_atomic, write_text_atomic
from .tune_space import ParamSpace, TuneSpace

__all__ = ["PruneOnValAUROC", "TuneResult", "best_member_yaml", "suggest", "tune"]

MONITOR = "val_auroc"  # what every member logs and ModelCheckpoint keeps the best of
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what --trials counts (a failed trial is retried instead)
HEARTBEAT_S = 60  # a trial whose process died is marked failed after GRACE_S without a heartbeat, then retried once
GRACE_S = 180


class PruneOnValAUROC(Callback):
    """Report each epoch's validation AUROC to the trial and stop the trial when the pruner says so.

    Ours rather than optuna-integration's PyTorchLightningPruningCallback: that one subclasses the ``lightning``
    package's Callback, and our trainer is ``pytorch_lightning``'s, which refuses it."""

    def __init__(self, trial: optuna.Trial, monitor: str = MONITOR) -> None:
        self.trial, self.monitor = trial, monitor

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        epoch = trainer.current_epoch
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned at epoch {epoch} ({self.monitor} {value:.4f})")


@dataclass(frozen=True)
class TuneResult:
    study: str
    out_dir: Path
    best_yaml: Path | None  # None when no trial completed
    summary: dict[str, Any]


def suggest(trial: optuna.Trial, name: str, space: ParamSpace) -> Any:
    """The trial's value for one key of the space."""
    if space.type == "categorical":
        return trial.suggest_categorical(name, list(space.choices))
    if space.type == "int":
        return trial.suggest_int(name, int(space.low), int(space.high), step=int(space.step or 1), log=space.log)
    return trial.suggest_float(name, float(space.low), float(space.high), step=space.step, log=space.log)


def tune(
    member_yaml: Path,
    space: TuneSpace,
    trials: int,
    timeout: float | None = None,
    storage: str | None = None,
    out_root: Path = Path("runs/tune"),
    overrides: list[str] | None = None,
) -> TuneResult:
    """Run (or resume) the study until it holds ``trials`` finished trials or ``timeout`` seconds pass; write the
    best trial's member YAML and the summary under ``out_root/<study>/``."""
    from .cli import run_lightning

    name = space.study or f"{member_yaml.stem}"
    out_dir = out_root / name
    out_dir.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{out_root / name}.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from us
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat and retry options
        rdb = RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                         heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))  # fmt: skip
    existing = _load_or_none(name, rdb)
    done = len(existing.get_trials(states=FINISHED)) if existing else 0
    # A seeded TPE started again would repeat its first random points: offset the seed by the trials already run.
    sampler = optuna.samplers.TPESampler(seed=space.seed + len(existing.trials if existing else []))
    study = optuna.create_study(study_name=name, storage=rdb, sampler=sampler, pruner=_pruner(space, member_yaml),
                                direction="maximize", load_if_exists=True)  # fmt: skip
    if done:
        print(f"study {name}: resuming with {done} finished trial(s) in {url}")

    def objective(trial: optuna.Trial) -> float:
        values = {key: suggest(trial, key, p) for key, p in space.params.items()}
        args = ["fit", "--config", str(member_yaml), *(overrides or []), *_flags(values),
                "--trainer.logger.init_args.save_dir", str(out_dir), "--trainer.logger.init_args.name", "",
                "--trainer.logger.init_args.version", f"trial_{trial.number}"]  # fmt: skip
        trial.set_user_attr("run_dir", str(out_dir / f"trial_{trial.number}"))
        cli = run_lightning(args, callbacks=[PruneOnValAUROC(trial)])
        best = cli.trainer.checkpoint_callback.best_model_score
        if best is None or math.isnan(float(best)):
            raise optuna.TrialPruned(f"trial {trial.number}: no validation AUROC (one class in validation?)")
        return float(best)

    def report(study: optuna.Study, trial: FrozenTrial) -> None:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        value = "pruned" if trial.state == TrialState.PRUNED else f"val AUROC {trial.value:.4f}"
        best = _best(study)
        tail = f"; best {best.value:.4f} (trial {best.number})" if best else ""
        print(f"trial {trial.number}: {value} ({shown}){tail}", flush=True)

    if done < trials:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
            study.optimize(objective, timeout=timeout, callbacks=[MaxTrialsCallback(trials, states=FINISHED), report],
                           gc_after_trial=True)  # fmt: skip
    best = _best(study)
    best_yaml = None
    if best is not None:
        best_yaml = out_dir / "best.yaml"
        write_text_atomic(best_yaml, best_member_yaml(member_yaml, best, name, overrides or [], best_yaml))
    summary = _summary(study, url, best, best_yaml)
    write_json_atomic(out_dir / "summary.json", summary)
    write_text_atomic(out_dir / "summary.md", _markdown(summary) + "\n")
    _plot_history(study, out_dir / "history.png")
    return TuneResult(name, out_dir, best_yaml, summary)


def best_member_yaml(member_yaml: Path, best: FrozenTrial, study: str, overrides: list[str], target: Path) -> str:
    """The member's YAML with the best trial's values written in place (each key's comment kept), its run folder
    renamed ``<name>_tuned``, and a header saying where the values came from; ``target`` is where it goes."""
    lines = member_yaml.read_text().splitlines()
    values = dict(best.params)
    name_key = "trainer.logger.init_args.name"
    logger_name = _nested(yaml.safe_load("\n".join(lines)), name_key)
    values[name_key] = f"{logger_name or member_yaml.stem}_tuned"
    for key, value in values.items():
        lines = _set_in_place(lines, key, value)
    header = [
        f"# Tuned by `python -m dernet tune` (study {study}): trial {best.number} of the search, validation AUROC "
        f"{best.value:.4f}.",
        f"# Searched keys: {', '.join(f'{k}={_short(v)}' for k, v in best.params.items())}.",
    ]
    if overrides:
        header.append(f"# The trials also ran with: {' '.join(overrides)}")
    header.append(f"# Train: python -m dernet fit --config {target}")
    return "\n".join(header + lines) + "\n"


def _set_in_place(lines: list[str], key: str, value: Any) -> list[str]:
    """``key`` (dotted) set to ``value`` in the YAML ``lines``: the existing line's value replaced (its comment
    kept), or a new line at the end of the parent section when the YAML does not have the key."""
    parts = key.split(".")
    start, indent = 0, 0
    end = len(lines)
    for depth, part in enumerate(parts):
        pattern = re.compile(rf"^(\s{{{indent}}}){re.escape(part)}:(\s*)([^#]*?)(\s*)(#.*)?$")
        found = next((i for i in range(start, end) if pattern.match(lines[i])), None)
        if found is None:  # not in the file: add it under the deepest section found
            new = [f"{' ' * (indent + 2 * k)}{p}:" for k, p in enumerate(parts[depth:-1])]
            new.append(f"{' ' * (indent + 2 * (len(parts) - depth - 1))}{parts[-1]}: {_dump(value)}  # tuned")
            return lines[:end] + new + lines[end:]
        if depth == len(parts) - 1:
            m = pattern.match(lines[found])
            comment = m.group(5) or ""
            width = len(m.group(2) + m.group(3) + m.group(4)) if comment else 0  # keep the comment's column
            lines = list(lines)
            lines[found] = f"{m.group(1)}{part}:" + f" {_dump(value)} ".ljust(width) + comment
            lines[found] = lines[found].rstrip()
            return lines
        start, indent = found + 1, indent + 2
        end = next((i for i in range(start, len(lines)) if lines[i].strip() and not lines[i].startswith(" " * indent)
                    and not lines[i].lstrip().startswith("#")), len(lines))  # fmt: skip
    return lines


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _nested(config: dict, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(config, dict):
            return None
        config = config.get(part)
    return config


def _flags(values: dict[str, Any]) -> list[str]:
    return [item for key, value in values.items() for item in (f"--{key}", _dump(value))]


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _load_or_none(name: str, storage: RDBStorage) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def _pruner(space: TuneSpace, member_yaml: Path) -> optuna.pruners.BasePruner:
    if space.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=space.startup_trials, n_warmup_steps=space.warmup_epochs)
    if space.pruner == "hyperband":
        epochs = _nested(yaml.safe_load(member_yaml.read_text()), "trainer.max_epochs")
        return optuna.pruners.HyperbandPruner(min_resource=space.min_epochs, max_resource=epochs or "auto")
    return optuna.pruners.NopPruner()


def _best(study: optuna.Study) -> FrozenTrial | None:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(complete, key=lambda t: t.value) if complete else None


def _summary(study: optuna.Study, url: str, best: FrozenTrial | None, best_yaml: Path | None) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    ranked = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -t.value)
    return {
        "study": study.study_name,
        "storage": url,
        "objective": f"maximize {MONITOR} (the validation split; never test)",
        "trials": {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState},
        "best": None if best is None else {"trial": best.number, "val_auroc": best.value, "params": best.params,
                                           "run_dir": best.user_attrs.get("run_dir"), "yaml": str(best_yaml)},
        "top": [{"trial": t.number, "val_auroc": t.value, "params": t.params} for t in ranked[:5]],
        "importances": _importances(study),
    }  # fmt: skip


def _importances(study: optuna.Study) -> dict[str, float] | None:
    """Optuna's parameter importances (fANOVA), or None while too few trials completed to estimate them."""
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return None
    try:
        return {k: round(float(v), 4) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError):  # e.g. every completed trial has the same value
        return None


def _markdown(summary: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in summary["trials"].items() if n)
    lines = [f"# Study `{summary['study']}`", "", f"Objective: {summary['objective']}. Trials: {counts}.", ""]
    if summary["best"]:
        b = summary["best"]
        lines += [f"Best: trial {b['trial']}, validation AUROC {b['val_auroc']:.4f}; member YAML `{b['yaml']}`.", ""]
    keys = sorted({k for t in summary["top"] for k in t["params"]})
    lines += ["| trial | val AUROC | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for t in summary["top"]:
        lines.append(f"| {t['trial']} | {t['val_auroc']:.4f} | "
                     + " | ".join(_short(t["params"].get(k, "")) for k in keys) + " |")  # fmt: skip
    if summary["importances"]:
        lines += ["", "Parameter importances (Optuna, fANOVA): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in summary["importances"].items()) + "."]  # fmt: skip
    return "\n".join(lines)


def _plot_history(study: optuna.Study, path: Path) -> None:
    """Optuna's optimization-history plot as a PNG (nothing while no trial completed)."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        axes = plot_optimization_history(study, target_name="validation AUROC")
    figure = axes.figure
    figure.set_size_inches(7, 4)
    figure.set_dpi(120)
    figure.tight_layout()
    write_figure_atomic(figure, path)  # temp file + rename
    plt.close(figure)
