"""`make demo-spread`: how far the demo's results move between trainings, and whether every one clears its floors.

The demo trains from random weights on a CPU, and a CPU's rounding (another CPU model, another thread count) is
enough to change what a run learns. This trains the demo's models (the ensemble and YOLO11n, exactly `make demo`'s
commands and configs) once per seed and thread count on the demo's prepared phantom, evaluates each export on the
test split, and writes one row per run: each member's and the ensemble's AUROC and the detector's mAP@0.5. One
thread reduces in another order than two, which stands in for another CPU.

    python -m benchmarks.demo_spread [--seeds 42 1 2] [--threads 1 2] [--jobs 2] [--out runs/demo_spread]
    python -m benchmarks.demo_spread --report-only   # the table of the runs finished so far

Each run works in its own folder (`<out>/s<seed>_t<threads>/`, its `runs/` and `export/` there, `data/` a link to
the demo's), so the demo's own outputs are left alone; a run resumes from its finished steps. Writes
`<out>/spread.{json,md}`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from dernet.fileio import write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = ("densenet121", "tf_efficientnetv2_s", "resnet50")
# The floors every run must clear (issue 33): members and ensemble AUROC, the ensemble's shortfall from its best
# member, and detection in `all` mode (every image goes to the detector, so the classifier does not enter it).
FLOORS = {"member_auroc": 0.80, "ensemble_auroc": 0.90, "ensemble_vs_best_member": -0.01, "map50_all": 0.35}
OFFLINE = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0", "NO_ALBUMENTATIONS_UPDATE": "1", "HF_HUB_OFFLINE": "1",
           "YOLO_CONFIG_DIR": str(ROOT / ".ultralytics")}  # fmt: skip


@dataclass(frozen=True)
class SpreadRun:
    """One training of the demo's models and what its export scored on the test split."""

    seed: int
    threads: int
    members: dict[str, float]  # test AUROC per member
    ensemble: float  # test AUROC
    map50: dict[str, float]  # mAP@0.5 per gate mode (gate, fusion, all)
    minutes: float

    @property
    def best_member(self) -> float:
        return max(self.members.values())

    def failures(self) -> list[str]:
        """The floors this run misses, in words."""
        missed = [f"{m} {a:.3f} < {FLOORS['member_auroc']}" for m, a in self.members.items()
                  if a < FLOORS["member_auroc"]]  # fmt: skip
        if self.ensemble < FLOORS["ensemble_auroc"]:
            missed.append(f"ensemble {self.ensemble:.3f} < {FLOORS['ensemble_auroc']}")
        if self.ensemble - self.best_member < FLOORS["ensemble_vs_best_member"]:
            missed.append(f"ensemble {self.ensemble:.3f} over a point below its best member {self.best_member:.3f}")
        if self.map50["all"] < FLOORS["map50_all"]:
            missed.append(f"mAP@0.5 (all) {self.map50['all']:.3f} < {FLOORS['map50_all']}")
        return missed


@dataclass(frozen=True)
class Step:
    """One command of a run: what it reads from `configs/` (its fingerprint) and the steps whose outputs it uses."""

    name: str
    command: list[str]
    configs: tuple[Path, ...]
    after: tuple[str, ...] = ()


def demo_steps(seed: int) -> list[Step]:
    """`make demo`'s training, export and evaluation (the Makefile's demo target; its `train-ensemble` is one `fit`
    per member, then `fit-ensemble`), with the members' and YOLO's seed set; run from a folder whose `data/` is the
    demo's."""
    py, configs = sys.executable, ROOT / "configs/demo"
    members = [Step(m, [py, "-m", "dernet", "fit", "--config", str(configs / f"ensemble/{m}.yaml"),
                        "--seed_everything", str(seed), "--trainer.enable_progress_bar", "false"],
                    (configs / f"ensemble/{m}.yaml",)) for m in MEMBERS]  # fmt: skip
    ensemble = configs / "ensemble/ensemble.yaml"
    return [
        *members,
        Step("ensemble", [py, "-m", "dernet", "fit-ensemble", "--config", str(ensemble)], (ensemble,), MEMBERS),
        Step("yolo", [py, "-m", "yolo_spine.train", "--config", str(configs / "yolo_spine.yaml"), f"seed={seed}"],
             (configs / "yolo_spine.yaml",)),
        Step("export", [py, "-m", "dernet.export", "--ensemble", "runs/ensemble/ensemble.json", "--weights",
                        "runs/yolo_spine/train/weights/best.pt", "--data", "data/prepared", "--models", "export"],
             (), ("ensemble", "yolo")),
        Step("evaluation", [py, "-m", "dernet.evaluation", "--models", "export", "--data", "data/prepared", "--split",
                            "test"], (), ("export",)),
    ]  # fmt: skip


def _fingerprint(step: Step) -> str:
    """What a finished step must still match: its command and the configs it read."""
    digest = hashlib.sha256(" ".join(step.command[1:]).encode())
    for config in step.configs:
        digest.update(config.read_bytes())
    return digest.hexdigest()[:16]


def train_and_score(out: Path, data: Path, seed: int, threads: int) -> SpreadRun:
    """One run in ``out/s<seed>_t<threads>``, resumed from its finished steps; its log is ``run.log``."""
    folder = out / f"s{seed}_t{threads}"
    timing = folder / "minutes.txt"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "data").exists():
        (folder / "data").symlink_to(data.resolve(), target_is_directory=True)
    env = {**os.environ, **OFFLINE, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    ran: set[str] = set()
    with open(folder / "run.log", "a") as log:
        for step in demo_steps(seed):
            # a finished step is kept (a killed run resumes) unless its config changed or a step it uses ran again
            marker, fingerprint = folder / f"{step.name}.done", _fingerprint(step)
            done = marker.is_file() and marker.read_text().split()[0] == fingerprint
            if done and not ran.intersection(step.after):
                continue
            if step.name == "yolo":  # an unfinished training would push the next into train2/
                shutil.rmtree(folder / "runs/yolo_spine", ignore_errors=True)
            print(f"[s{seed} t{threads}] {step.name} ...", file=sys.stderr, flush=True)
            start = time.monotonic()
            finished = subprocess.run(step.command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
            if finished.returncode != 0:
                command = " ".join(step.command[1:])
                raise RuntimeError(f"{folder}: `{command}` exited {finished.returncode}; see run.log")
            write_text_atomic(marker, f"{fingerprint} {time.monotonic() - start:.0f}\n")  # and the step's seconds
            ran.add(step.name)
    seconds = [float(p.read_text().split()[1]) for p in folder.glob("*.done")]
    write_text_atomic(timing, f"{sum(seconds) / 60:.1f}\n")
    return scored(folder, seed, threads)


def scored(folder: Path, seed: int, threads: int) -> SpreadRun:
    """A finished run's row, from its evaluation of the test split."""
    evaluation, timing = folder / "runs/evaluation/evaluation_test.json", folder / "minutes.txt"
    result = json.loads(evaluation.read_text())
    return SpreadRun(
        seed=seed,
        threads=threads,
        members={m: result["models"][m]["metrics"]["auroc"] for m in MEMBERS},
        ensemble=result["models"]["ensemble"]["metrics"]["auroc"],
        map50={mode: scores["map50"] for mode, scores in result["detection"].items()},
        minutes=float(timing.read_text()) if timing.is_file() else float("nan"),
    )


def spread_table(runs: list[SpreadRun]) -> str:
    """The runs as a Markdown table (percentages), then min / median / max of each column and the verdict."""
    columns = [*MEMBERS, "ensemble", "ensemble - best member", "mAP@0.5 gate", "mAP@0.5 all"]

    def cells(run: SpreadRun) -> list[float]:
        return [*(run.members[m] for m in MEMBERS), run.ensemble, run.ensemble - run.best_member,
                run.map50["gate"], run.map50["all"]]  # fmt: skip

    lines = ["| seed | threads | " + " | ".join(columns) + " | minutes | floors |",
             "|---" * (len(columns) + 4) + "|"]  # fmt: skip
    for run in runs:
        verdict = "all met" if not run.failures() else "**missed**: " + "; ".join(run.failures())
        values = " | ".join(f"{100 * v:.2f}" for v in cells(run))
        lines.append(f"| {run.seed} | {run.threads} | {values} | {run.minutes:.1f} | {verdict} |")
    table = [cells(run) for run in runs]
    for name, pick in (("min", min), ("median", statistics.median), ("max", max)):
        values = " | ".join(f"{100 * pick(col):.2f}" for col in zip(*table, strict=True))
        lines.append(f"| {name} | | {values} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo_spread", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2], help="seeds (42 is the demo's)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 and 2)")
    parser.add_argument("--jobs", type=int, default=2, help="one-thread runs side by side (default 2: one per core)")
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="the folder holding the demo's prepared/")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/demo_spread", help="where the runs go")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: the table of every finished run under --out")  # fmt: skip
    args = parser.parse_args(argv)
    if args.report_only:
        return report(args.out, finished_runs(args.out))
    if not (args.data / "prepared/classification.csv").is_file():
        print(f"error: {args.data}/prepared has no prepared phantom: run make demo-data (or make demo) first",
              file=sys.stderr)  # fmt: skip
        return 2
    runs: list[SpreadRun] = []
    for threads in sorted(set(args.threads)):
        # one-thread runs share the machine (one per core); wider ones run alone so they do not compete
        jobs = max(1, args.jobs // threads)
        with ThreadPoolExecutor(jobs) as pool:
            runs += pool.map(lambda s, t=threads: train_and_score(args.out, args.data, s, t), args.seeds)
    return report(args.out, runs)


def finished_runs(out: Path) -> list[SpreadRun]:
    """Every run under ``out`` whose evaluation is there, by thread count, then seed."""
    found = []
    for folder in out.glob("s*_t*"):
        seed, threads = (int(part[1:]) for part in folder.name.split("_"))
        if (folder / "runs/evaluation/evaluation_test.json").is_file():
            found.append(scored(folder, seed, threads))
    return sorted(found, key=lambda r: (r.threads, r.seed))


def report(out: Path, runs: list[SpreadRun]) -> int:
    """Write ``spread.{json,md}``, print the table and the verdict; 1 when a run missed a floor."""
    record = {"floors": FLOORS, "runs": [asdict(r) | {"failures": r.failures()} for r in runs]}
    write_json_atomic(out / "spread.json", record)
    table = spread_table(runs)
    write_text_atomic(out / "spread.md", table + "\n")
    print(table)
    missed = [r for r in runs if r.failures()]
    print(f"\n{len(runs) - len(missed)} of {len(runs)} runs met every floor; {out}/spread.{{md,json}}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
