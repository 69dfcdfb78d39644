"""`python -m dernet.batch INPUT... --out DIR [--models DIR] [--mode M] [--threshold P] [--conf C] [--reports]
[--address ADDR] [--actors N] [--threads-per-actor T] [--providers ...] [--gpus-per-actor G] [--isolate]`:
screen an archive on Ray Data (the 'scale' extra) into Parquet rows, one per input; rerunning resumes.

Exit codes: 0 every input screened; 1 some inputs rejected or failed, or the job stopped early (the rows so far are
kept; rerun to resume); 2 a usage error, found before any input was read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cliutil import add_conf, add_models, add_threshold, add_variant, run_command
from ..deploy.engines import RuntimeOptions
from ..deploy.isolation import IsolationLimits
from ..deploy.manifest import load_manifest
from ..deploy.screening import MODES
from ..deploy.study import STUDY_FROM
from ..deploy.variants import choose_variant
from ..errors import MissingExtraError, UsageError, require_extra

__all__ = ["main"]


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Screen an archive of radiographs on Ray Data, from a laptop to a cluster: one Parquet row per "
        "input (the gate's numbers), resumable: rerunning the command skips inputs that already have a row.",
        epilog="Exit codes: 0 all screened, 1 some inputs rejected or failed (or the job stopped; rerun to resume), "
        "2 usage error.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="DICOM/PNG/JPEG files, folders (searched recursively), CSV or Parquet lists of paths or "
                        "URIs (a 'path' column, else the first), or URIs such as s3://bucket/x.dcm (needs fsspec and "
                        "the filesystem's package)")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="output folder: rows/part-*.parquet, batch.json")
    add_models(parser)
    parser.add_argument("--mode", choices=MODES, default="gate", help="as the gate's --mode (default gate)")
    add_threshold(parser)
    add_conf(parser, None)
    add_variant(parser)
    parser.add_argument(
        "--reports", action="store_true", help="also write the gate's JSON report and overlay PNG of each input there"
    )
    parser.add_argument("--study-from", choices=STUDY_FROM, default="dicom",
                        help="group rows into studies as the gate does (dicom: StudyInstanceUID; folder; none); each "
                        "study's decision goes into OUT/studies.csv")  # fmt: skip
    where = parser.add_argument_group("where it runs")
    where.add_argument("--address", help="join a Ray cluster: 'auto' (started with `ray start`) or ray://HEAD:10001 "
                       "(default: a local Ray started for this job on every core)")  # fmt: skip
    where.add_argument("--actors", type=int, default=0,
                       help="actors, each holding the models once (default: the cluster's CPUs / threads per actor)")
    where.add_argument("--threads-per-actor", type=int, default=2,
                       help="ONNX Runtime and decoding threads of each actor, and the CPUs it reserves (default 2)")
    where.add_argument("--providers", nargs="+", metavar="P",
                       help="ONNX Runtime providers in each actor, e.g. cuda cpu (default: CUDA if present)")
    where.add_argument("--gpus-per-actor", type=float,
                       help="GPUs each actor reserves (default: 1 with --providers cuda, else 0; 0.5 shares one)")
    where.add_argument("--batch-size", type=int, default=8, help="inputs per actor call (default 8)")
    where.add_argument("--object-store-mb", type=int, default=2048,
                       help="object store of the local Ray (default 2048; bytes in flight live there)")
    where.add_argument("--isolate", action="store_true",
                       help="decode in worker processes bounded in time and memory (the gate's --isolate): for "
                       "untrusted inputs, so that a decoder crash is a rejected row, not a dead actor")  # fmt: skip
    return parser  # fmt: skip


def main(argv: list[str] | None = None, prog: str = "python -m dernet.batch") -> int:
    args = _parser(prog).parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        require_extra("scale")
        from . import cluster
        from .job import run_job
        from .listing import is_uri, list_inputs
        from .pipeline import ScreenSettings
        from .store import RowStore

        _check_numbers(args)
        manifest = load_manifest(args.models)  # exit 2 before Ray starts if the export is not there
        if args.address is None:  # the actors run here: what would fail in each of them fails once, now
            _check_runnable(manifest, args)
        inputs = list_inputs(args.inputs, args.out)
        _check_filesystems({i.source.split("://")[0] for i in inputs if is_uri(i.source)})
        settings = ScreenSettings(
            models=str(args.models.resolve()), mode=args.mode, threshold=args.threshold, conf=args.conf,
            variant=args.variant, providers=tuple(args.providers) if args.providers else None,
            threads=args.threads_per_actor, isolation=IsolationLimits() if args.isolate else None,
            reports=str(args.out / "reports") if args.reports else None, study_from=args.study_from,
        )  # fmt: skip
        store = RowStore(args.out, _job_settings(manifest, args))
        started = cluster.connect(args.address, args.object_store_mb)
        try:
            layout = _layout(args, cluster.cluster_cpus(), local=started and args.address is None)
            summary = run_job(inputs, store, settings, layout, manifest.rejection.max_pixels)
        finally:
            cluster.disconnect(started)
        print(summary.line(args.out))
        if not summary.stopped and args.study_from != "none":
            _decide_studies(args, store, manifest)
        if summary.stopped:
            print(f"error: the job stopped early ({summary.stopped}); the rows so far are kept: run the same "
                  "command again to resume (--isolate bounds the decoding of untrusted inputs)", file=sys.stderr)
            return 1
        return 1 if summary.not_ok else 0

    return run_command(run, args)


def _check_numbers(args: argparse.Namespace) -> None:
    for flag, value in (("--actors", args.actors), ("--threads-per-actor", args.threads_per_actor - 1),
                        ("--batch-size", args.batch_size - 1), ("--object-store-mb", args.object_store_mb - 64)):
        if value < 0:
            raise UsageError(f"{flag}: out of range; see --help")  # fmt: skip


def _check_runnable(manifest, args: argparse.Namespace) -> None:
    """The providers and the runtime variant asked for exist in this install (a usage error, exit 2, otherwise)."""
    RuntimeOptions(args.providers)
    for spec in (manifest.classifier, manifest.detector):
        choose_variant(manifest, spec, args.variant)


def _layout(args: argparse.Namespace, cpus: float, local: bool):
    """Actors and their resources; on a machine started for this job, a pool that cannot fit is a usage error
    (Ray would wait for CPUs that never come)."""
    from .pipeline import Layout

    gpus = args.gpus_per_actor
    if gpus is None:
        gpus = 1.0 if args.providers and any(p.lower().startswith("cuda") for p in args.providers) else 0.0
    threads = args.threads_per_actor
    actors = args.actors or max(1, int(cpus // threads))
    if local and actors * threads > cpus:
        raise UsageError(f"--actors {actors} x --threads-per-actor {threads} needs {actors * threads} CPUs; this "
                         f"machine has {cpus:g}: lower one of them")  # fmt: skip
    return Layout(actors=actors, cpus_per_actor=float(threads), gpus_per_actor=gpus, batch_size=args.batch_size)


def _job_settings(manifest, args: argparse.Namespace) -> dict:
    """What a resumed run must share with the first: the models and every flag that changes a row."""
    return {
        "models": {"classifier": manifest.classifier.sha256, "detector": manifest.detector.sha256},
        "variant": args.variant, "mode": args.mode, "threshold": args.threshold, "conf": args.conf,
        "reports": bool(args.reports), "study_from": args.study_from,
    }  # fmt: skip


def _decide_studies(args: argparse.Namespace, store, manifest) -> None:
    """Every study of the rows (this run's and earlier runs') decided as the gate decides it, into
    OUT/studies.csv: studies of two or more rows, or every study when the export has a study model."""
    from ..deploy.report import write_studies_csv
    from ..deploy.study import StudyDecider
    from .rows import screening_of

    if manifest.study is not None:
        require_extra("study")
    decider = StudyDecider(manifest)
    latest = {row["input"]: row for row in store.read().to_pylist()}  # a file changed since: its newer row only
    groups: dict[str, list[dict]] = {}
    for row in latest.values():
        if row["study_key"] is not None:
            groups.setdefault(row["study_key"], []).append(row)
    screened = {key: [screening_of(r) for r in members] for key, members in groups.items()}
    decisions = decider.decide_all(screened, args.mode, args.threshold)
    rows = [{"study": number, "study_key": key, "inputs": [r["input"] for r in groups[key]], **decision.as_dict()}
            for number, (key, decision) in enumerate(decisions.items(), start=1)]  # fmt: skip
    write_studies_csv(args.out / "studies.csv", rows)
    if rows:
        print(f"{len(rows)} studies decided ({rows[0]['method']}); {args.out / 'studies.csv'}")


def _check_filesystems(schemes: set[str]) -> None:
    """Every URI scheme listed has its fsspec filesystem installed (s3fs for s3://, gcsfs for gs://, ...)."""
    if not schemes:
        return
    try:
        import fsspec
    except ModuleNotFoundError:
        raise MissingExtraError("fsspec", "scale") from None
    for scheme in sorted(schemes):
        try:
            fsspec.get_filesystem_class(scheme)
        except (ImportError, ValueError) as err:
            raise UsageError(f"{scheme}:// inputs: {str(err).splitlines()[0]}") from None
