"""`python -m dernet`: train members (LightningCLI), cross-validate, fit the ensemble, evaluate it.

python -m dernet fit --config configs/ensemble/densenet121.yaml [--trainer.devices 4 --trainer.strategy ddp]
python -m dernet cv --folds 5 --config configs/ensemble/resnet50.yaml
python -m dernet train-ensemble --config-dir configs/ensemble
python -m dernet fit-ensemble --config configs/ensemble/ensemble.yaml
python -m dernet evaluate-ensemble --config configs/ensemble/ensemble.yaml --split test
python -m dernet evaluate-types --checkpoint runs/lesion_types/.../best.ckpt --data-dir data/prepared --split test
python -m dernet tune --config configs/ensemble/resnet50.yaml --space configs/tune/space.yaml --trials 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from dataclasses import replace
from pathlib import Path

from pytorch_lightning.cli import LightningCLI

from ..cliutil import add_split, run_command
from ..errors import MissingFileError, UsageError
from ..fileio import write_json_atomic
from .data import RadiographDataModule
from .ensemble_config import load_ensemble_config
from .evaluate import evaluate_ensemble, format_table
from .evaluate_types import evaluate_types, types_out_dir, types_table
from .fit_ensemble import fit_ensemble
from .member import MemberClassifier

__all__ = ["DERNetCLI", "main"]

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
PASS_ON = {*LIGHTNING_COMMANDS, "cv", "train-ensemble", "tune"}  # commands whose extra flags go to LightningCLI


class DERNetCLI(LightningCLI):
    """LightningCLI for one member: the input size and the task flow from the model to the data; the classes and
    the class weights from the data to the model."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("model.image_size", "data.image_size")
        parser.link_arguments("model.task", "data.task")
        parser.link_arguments("data.classes", "model.classes", apply_on="instantiate")
        parser.link_arguments("data.pos_weight", "model.pos_weight", apply_on="instantiate")


def run_lightning(args: list[str], callbacks: list | None = None) -> DERNetCLI:
    """LightningCLI on ``args``: the command line as this module's parser (or spine-cad) passed it on;
    ``callbacks`` join the config's own (tune's pruning callback)."""
    defaults = {"callbacks": callbacks} if callbacks else None
    with warnings.catch_warnings():
        # LightningCLI warns when args are given while sys.argv has some: on purpose here (the subcommand's name
        # in sys.argv may be spine-cad's).
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter", category=UserWarning)
        return DERNetCLI(MemberClassifier, RadiographDataModule, save_config_kwargs={"overwrite": True}, args=args,
                         trainer_defaults=defaults)  # fmt: skip


def main(argv: list[str] | None = None, prog: str = "python -m dernet") -> int:
    parser = _parser(prog)
    args, extra = parser.parse_known_args(argv)  # LightningCLI's own flags (--trainer.*, ...) pass on to it
    if extra and args.command not in PASS_ON:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    return run_command(args.run, args)


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="{fit,validate,test,predict,cv,train-ensemble,fit-ensemble,evaluate-ensemble,evaluate-types}",
    )
    for name in LIGHTNING_COMMANDS:  # LightningCLI parses these itself (--help included): add_help=False
        lightning = commands.add_parser(name, add_help=False, help=f"LightningCLI {name} of one member (--config ...)")
        lightning.set_defaults(run=_lightning)
    cv = commands.add_parser("cv", help="K-fold cross-validation of one member over the prepared folds")
    cv.add_argument("--folds", type=int, required=True, help="number of folds (at most the prepared folds)")
    cv.add_argument("--config", type=Path, required=True, help="the member's YAML")
    cv.set_defaults(run=_cv)

    train = commands.add_parser("train-ensemble", help="train every member of ensemble.yaml, then fit the ensemble")
    train.add_argument("--config-dir", type=Path, default=Path("configs/ensemble"))
    train.set_defaults(run=_train_ensemble)

    fit = commands.add_parser("fit-ensemble", help="choose voting weights and the threshold on validation")
    fit.add_argument("--config", type=Path, default=Path("configs/ensemble/ensemble.yaml"))
    fit.set_defaults(run=_fit_ensemble)

    evaluate = commands.add_parser(
        "evaluate-ensemble", aliases=["evaluate"], help="metrics with bootstrap CIs on a split, ROC plot"
    )
    evaluate.add_argument("--config", type=Path, default=Path("configs/ensemble/ensemble.yaml"))
    add_split(evaluate)
    evaluate.add_argument("--bootstrap", type=int, help="bootstrap resamples (overrides the config)")
    evaluate.set_defaults(run=_evaluate)

    types = commands.add_parser(
        "evaluate-types", help="a lesion-type member (multilabel or multiclass): per-class metrics, confusion matrix"
    )
    types.add_argument("--checkpoint", type=Path, required=True, help="the member's checkpoint (best.ckpt)")
    types.add_argument("--data-dir", type=Path, default=Path("data/prepared"), help="prepared data (default: same)")
    add_split(types)
    types.add_argument("--out", type=Path, help="output folder (default: evaluation/ beside the run's checkpoints/)")
    types.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (multilabel; default 1000)")
    types.set_defaults(run=_evaluate_types)

    tune = commands.add_parser("tune", help="Optuna search of one member's hyperparameters on validation AUROC")
    tune.add_argument("--config", type=Path, required=True, help="the member's YAML")
    tune.add_argument("--space", type=Path, default=Path("configs/tune/space.yaml"), help="the search space YAML")
    tune.add_argument("--trials", type=int, required=True, help="finished trials the study should hold (resumes)")
    tune.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    tune.add_argument("--storage", help="Optuna storage URL (default: sqlite:///runs/tune/<study>.db); one shared "
                      "PostgreSQL/MySQL URL lets several processes or machines search together")  # fmt: skip
    tune.add_argument("--out", type=Path, default=Path("runs/tune"), help="where studies write (default: runs/tune)")
    tune.set_defaults(run=_tune)
    return parser


def _tune(args: argparse.Namespace) -> int:
    from ..errors import require_extra
    from .tune_space import load_tune_space

    require_extra("tune")
    if args.trials < 1:
        raise UsageError(f"--trials {args.trials}: give at least 1")
    if not args.config.is_file():
        raise MissingFileError(f"{args.config}: no such member YAML (e.g. configs/ensemble/resnet50.yaml)")
    space = load_tune_space(args.space, args.config)
    from .tune import tune

    result = tune(args.config, space, args.trials, args.timeout, args.storage, args.out, args.overrides)
    best = result.summary["best"]
    if best is None:
        print(f"study {result.study}: no trial completed yet; {result.out_dir}/summary.md")
        return 1
    print(f"study {result.study}: best trial {best['trial']}, validation AUROC {best['val_auroc']:.4f}; "
          f"{result.best_yaml} (train it with python -m dernet fit --config {result.best_yaml}); "
          f"{result.out_dir}/summary.md, history.png")  # fmt: skip
    return 0


def _evaluate_types(args: argparse.Namespace) -> int:
    results = evaluate_types(args.checkpoint, args.data_dir, args.split, args.out, args.bootstrap)
    print(types_table(results))
    out = types_out_dir(args.checkpoint, args.out)
    extra = f", {out}/confusion_{args.split}.png" if results["task"] == "multiclass" else ""
    print(f"\nwritten: {out}/types_{args.split}.{{md,json}}{extra}")
    return 0


def _lightning(args: argparse.Namespace) -> int:
    run_lightning([args.command, *args.overrides])
    return 0


def _cv(args: argparse.Namespace) -> int:
    scores = []
    for fold in range(args.folds):
        cli = run_lightning(
            [
                "fit",
                "--config",
                str(args.config),
                "--data.val_fold",
                str(fold),
                "--trainer.logger.init_args.version",
                f"cv/fold{fold}",
                *args.overrides,
            ]
        )
        best = cli.trainer.checkpoint_callback.best_model_score
        scores.append(float(best) if best is not None else float("nan"))
    summary = {
        "folds": args.folds,
        "val_auroc": scores,
        "mean": statistics.fmean(scores),
        "sd": statistics.stdev(scores) if len(scores) > 1 else 0.0,
    }
    out = Path(cli.trainer.log_dir).parent / "summary.json"
    write_json_atomic(out, summary)
    print(
        f"{args.config.stem}: validation AUROC over {args.folds} folds {summary['mean']:.4f} ± {summary['sd']:.4f} "
        f"({out})"
    )
    return 0


def _train_ensemble(args: argparse.Namespace) -> int:
    ensemble_yaml = args.config_dir / "ensemble.yaml"
    config = load_ensemble_config(ensemble_yaml)
    for name in config.members:
        member_yaml = args.config_dir / f"{name}.yaml"
        if not member_yaml.is_file():
            raise MissingFileError(f"{member_yaml}: no config for member '{name}' named in {ensemble_yaml}")
        print(f"== training {name} ({member_yaml})", file=sys.stderr)
        run_lightning(["fit", "--config", str(member_yaml), *args.overrides])
    return _fit_ensemble(argparse.Namespace(config=ensemble_yaml))


def _fit_ensemble(args: argparse.Namespace) -> int:
    config = load_ensemble_config(args.config)
    result = fit_ensemble(config)
    weights = ", ".join(f"{m.name} {w:.2f}" for m, w in zip(result.members, result.weights, strict=True))
    print(
        f"ensemble: weights {weights} ({result.weights_source}); threshold {result.threshold:.4f}, "
        f"AUROC {result.auroc:.4f} on {result.chosen_on.split} -> {config.output}"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    config = load_ensemble_config(args.config)
    if args.bootstrap:
        config = replace(config, bootstrap_resamples=args.bootstrap)
    results = evaluate_ensemble(config, args.split)
    print(format_table(results))
    print(
        f"\nwritten: {config.output_dir}/evaluation_{args.split}.{{md,json}}, {config.output_dir}/roc_{args.split}.png"
    )
    return 0
