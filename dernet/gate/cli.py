"""`python -m dernet.gate PATH... [--models DIR] [--out DIR] [--mode gate|fusion|all] [--threshold P] [--conf C]
[--providers ...] [--threads N] [--json] [--explain [--ensemble FILE]] [--dicom [--dicom-config FILE]]
[--study-from dicom|folder|none]`: screen radiographs with the exported models (no torch; `--explain` adds Grad-CAM
heatmaps from the PyTorch checkpoints and imports torch for them; `--dicom` adds an SR, a Secondary Capture and a
presentation state per DICOM input). Inputs of one study (a DICOM StudyInstanceUID, or a folder) then get one
study decision: the export's study model (python -m dernet study-fit) or the max of the images' probabilities.

Exit codes: 0 every input screened; 1 some inputs rejected or failed (the others were screened; each has a report);
2 a usage error, found before any input was read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..cliutil import add_conf, add_ensemble, add_models, add_out, add_threshold, add_variant, run_command
from ..deploy.engines import RuntimeOptions
from ..deploy.isolation import IsolationLimits
from ..deploy.report import render_overlay, summary_line, write_outputs, write_studies_csv, write_summary_csv
from ..deploy.screening import MODES, Screener, Screening
from ..deploy.study import STUDY_FROM, StudyDecider, study_key
from ..errors import UsageError, require_extra
from ..fileio import remove_stale_temp_files, write_json_atomic
from ..imaging import set_decoder_threads
from ..inputs import collect_inputs, display_name, output_stems

__all__ = ["main"]


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Screen spine radiographs: abnormality score, lesion boxes, a report and an overlay per input.",
        epilog="Exit codes: 0 all screened, 1 some inputs rejected or failed (the rest processed), 2 usage error.",
    )
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="DICOM (any extension), PNG, JPEG, or folders"
    )
    add_models(parser)
    add_out(parser, "runs/gate", "reports and overlays")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="gate",
        help="gate: detect only when abnormal (DERNet); fusion: always detect, keep boxes >= 0.5 when normal "
        "(VinDr-SpineXR); all: always detect, keep all boxes",
    )
    add_threshold(parser)
    add_conf(parser, None, "; 0.001 to evaluate")
    parser.add_argument(
        "--providers", nargs="+", metavar="P", help="ONNX Runtime providers, e.g. cuda cpu (default: CUDA if present)"
    )
    parser.add_argument("--threads", type=int, default=0, help="inference and decoding threads (0: all cores)")
    add_variant(parser)
    parser.add_argument(
        "--wbf",
        action="store_true",
        help="fuse the boxes of every exported detector (Weighted Boxes Fusion, weights chosen on validation; "
        "the 'fusion' extra)",
    )
    parser.add_argument(
        "--prefetch",
        type=int,
        default=2,
        help="inputs read ahead while the models run (0: strictly one after the other; default 2)",
    )
    parser.add_argument(
        "--isolate",
        type=int,
        nargs="?",
        const=2,
        default=0,
        metavar="WORKERS",
        help="decode in WORKERS worker processes (default 2) bounded by --decode-timeout and --decode-memory-mb: "
        "for inputs from untrusted sources",
    )
    parser.add_argument("--decode-timeout", type=float, default=30.0, help="with --isolate: seconds per input")
    parser.add_argument("--decode-memory-mb", type=int, default=3072, help="with --isolate: memory per worker")
    parser.add_argument("--json", action="store_true", help="print one JSON report per line instead of a summary line")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="also write <name>.heatmap.png (Grad-CAM of the ensemble) and its path in the report; needs the "
        "PyTorch checkpoints",
    )
    add_ensemble(parser, "; with --explain")
    parser.add_argument(
        "--study-from",
        choices=STUDY_FROM,
        default="dicom",
        help="group inputs into studies by their DICOM StudyInstanceUID (dicom, the default), also other files by "
        "their folder (folder), or not at all (none); each study's decision goes into its reports and studies.csv",
    )
    parser.add_argument(
        "--dicom",
        action="store_true",
        help="also write <name>.sr.dcm (TID 1500 SR), <name>.sc.dcm (the overlay) and <name>.pr.dcm (presentation "
        "state) for each screened DICOM input, filed into its study (needs the 'dicom' extra)",
    )
    parser.add_argument(
        "--dicom-config",
        type=Path,
        metavar="FILE",
        help="with --dicom: YAML over dernet/dicom_results/defaults.yaml (manufacturer, series numbers, ...)",
    )
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m dernet.gate") -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if args.dicom_config is not None and not args.dicom:
        parser.error("--dicom-config sets up the DICOM results: add --dicom")

    def run(args: argparse.Namespace) -> int:
        set_decoder_threads(args.threads or None)
        dicom_settings = _dicom_settings(args) if args.dicom else None
        files, _ = collect_inputs(args.paths, args.out)
        _prepare_output_folder(args.out)
        isolation = IsolationLimits(args.isolate, args.decode_timeout, args.decode_memory_mb) if args.isolate else None
        runtime = RuntimeOptions(args.providers, args.threads)
        # a missing or inconsistent export is exit 2, in one line
        with Screener(args.models, runtime, variant=args.variant, isolation=isolation, fuse=args.wbf) as screener:
            explainer = _explainer(args.ensemble, screener) if args.explain else None
            decider = _study_decider(args, screener)
            written = _screen_all(args, files, screener, explainer, dicom_settings, decider)
        not_screened = sum(report["status"] != "ok" for report, _ in written)
        if not args.json:
            print(
                f"{len(files) - not_screened} screened, {not_screened} not; reports and overlays in {args.out}/ and "
                f"{args.out / 'summary.csv'}"
            )
        return 1 if not_screened else 0

    return run_command(run, args)


def _screen_all(
    args: argparse.Namespace, files: list[Path], screener: Screener, explainer, dicom_settings, decider
) -> list:
    """Screen every input, writing its report (and DICOM results) as it comes; summary.csv is written whatever
    happens on the way. Then, with a ``decider``, each study's decision (reports and studies.csv)."""
    stems = output_stems(files)
    written: list[tuple[dict, Path]] = []
    studies: dict[str, list[tuple[int, Screening]]] = {}  # study -> (index in written, the result without pixels)
    progress = tqdm(
        total=len(files), desc="screening", unit="image", disable=True if len(files) < 2 else None, file=sys.stderr
    )
    results = screener.screen_many(
        ((path, display_name(path)) for path in files), args.mode, args.threshold, args.conf, prefetch=args.prefetch
    )
    try:
        for path, result in zip(files, results, strict=True):
            progress.update()
            heatmap = _heatmap(explainer, result) if explainer is not None else None
            overlay = render_overlay(result)
            dicom = None
            if dicom_settings is not None:
                dicom = _write_dicom(path, result, overlay, screener, args, stems[path], dicom_settings, progress)
            report, report_path = write_outputs(
                result, args.out, stems[path], screener.model_hashes, heatmap, overlay_image=overlay, dicom=dicom
            )
            written.append((report, report_path))
            key = study_key(result, path, args.study_from) if decider is not None else None
            if key is not None:
                studies.setdefault(key, []).append((len(written) - 1, dataclasses.replace(result, windowed=None)))
            progress.write(json.dumps(report) if args.json else summary_line(report), file=sys.stdout)
            for note in result.meta.notes if result.meta else ():
                progress.write(f"note: {report['input']}: {note}", file=sys.stderr)
            if result.error_traceback:  # a bug met on this input, logged once; the report says so too
                progress.write(f"error: {report['input']}: {result.reason}\n{result.error_traceback}", file=sys.stderr)
    finally:
        progress.close()
        write_summary_csv(args.out / "summary.csv", written)
    if decider is not None:
        _decide_studies(args, studies, written, decider)
    else:
        write_studies_csv(args.out / "studies.csv", [])  # no studies: none stale from an earlier run either
    return written


def _study_decider(args: argparse.Namespace, screener: Screener) -> StudyDecider | None:
    """The export's study decisions (its LightGBM model needs the 'study' extra, checked before any input)."""
    if args.study_from == "none":
        return None
    if screener.manifest.study is not None:
        require_extra("study")
    return StudyDecider(screener.manifest)


def _decide_studies(args: argparse.Namespace, studies: dict, written: list, decider: StudyDecider) -> None:
    """Each study's decision into its images' reports (key ``study``; the study's UID stays out of them), one row
    per study in studies.csv, and one line per study on stdout."""
    groups = {key: [r for _, r in members] for key, members in studies.items()}
    rows = []
    for number, (key, decision) in enumerate(decider.decide_all(groups, args.mode, args.threshold).items(), start=1):
        members = studies[key]
        for index, _ in members:
            report, report_path = written[index]
            report["study"] = {"number": number, **decision.as_dict()}
            write_json_atomic(report_path, report)
        inputs = [written[index][0]["input"] for index, _ in members]
        rows.append({"study": number, "study_key": key, "inputs": inputs, **decision.as_dict()})
        if args.json:  # after the image lines, one line per study: its inputs, not its key (a UID or a folder)
            print(json.dumps({"study": number, "inputs": inputs, **decision.as_dict()}))
        else:
            verdict = "no decision" if decision.abnormal is None else "ABNORMAL" if decision.abnormal else "normal"
            p = "" if decision.probability is None else f" p={decision.probability:.3f} ({decision.method})"
            print(f"study {number} ({len(members)} input(s)): {verdict}{p}")
    write_studies_csv(args.out / "studies.csv", rows)


def _dicom_settings(args: argparse.Namespace):
    """The DICOM results' settings, checked before any input is read (a missing extra or a bad file: exit 2)."""
    require_extra("dicom")
    from ..dicom_results import load_settings

    return load_settings(args.dicom_config)


def _write_dicom(path: Path, result: Screening, overlay, screener: Screener, args, stem: Path, settings, progress):
    """SR, SC and PR of one input beside its report; the report's ``dicom`` field. A bug met while building them is
    logged with its traceback and noted in the report; the next input goes on."""
    from ..dicom_results import build_results, write_results

    conf = screener.manifest.detector.conf if args.conf is None else args.conf
    results = build_results(path, result, overlay, screener.model_hashes, conf, settings)
    if results.error_traceback:
        progress.write(f"error: {result.input}: {results.note}\n{results.error_traceback}", file=sys.stderr)
    return write_results(results, args.out / stem)


def _prepare_output_folder(out: Path) -> None:
    """Create the output folder (a user's mistake if impossible) and clear what a killed earlier run left there."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = f"cannot create the output folder ({err.strerror or err}); choose another --out"
        raise UsageError(f"{out}: {reason}") from None
    remove_stale_temp_files(out)


def _explainer(ensemble: Path, screener: Screener):
    """The Grad-CAM explainer behind the export: imports torch, so only when --explain asks for it."""
    from ..explain import explainer_for_export

    return explainer_for_export(ensemble, screener.manifest)


def _heatmap(explainer, result: Screening):
    """The ensemble heatmap of a screened input at its windowed image's size (the original's geometry), timed."""
    if result.status != "ok":
        return None
    start = time.perf_counter()
    heatmap = explainer.heatmap_on_windowed(result.windowed)
    result.timings_ms["explain"] = round((time.perf_counter() - start) * 1000, 1)
    return heatmap
