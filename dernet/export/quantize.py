"""Faster runtime variants of the exported models, each checked for speed and accuracy before the gate may use it.

``python -m dernet.export.quantize [--models export] [--data data/prepared] [--variants int8 openvino-bf16]``
(`make export-onnx QUANTIZE=int8`):

- ``int8``: ONNX Runtime static quantization (QDQ, per-channel int8 weights, uint8 activations), calibrated on a
  few prepared training images through the gate's own input builders. Calibration memory is bounded by the
  number of images (see ``quantize_int8``). The ensemble's vote (after the members) and the detector's box decoding
  (DFL, anchors, the concat of boxes with class scores) stay in float: one int8 scale cannot hold pixel
  coordinates and probabilities at once.
- ``openvino-*``: the same files through OpenVINO with a precision hint (needs the `openvino` extra).

Every variant is then timed against fp32 (median of 5 runs, batch 1, this machine) and evaluated on the prepared
validation split through the gate's core: AUROC of the ensemble and mAP@0.5 of the detector (mode all, conf
0.001), against fp32 on the same images. A variant is ``accepted`` when it loses at most 0.5 AUROC points and 1
mAP point; the gate's ``--variant auto`` only ever runs accepted ones. The test split stays untouched here.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..cliutil import add_data, add_models, run_command
from ..deploy.detection import YOLO_KIND
from ..deploy.engines import RuntimeOptions, load_model
from ..deploy.manifest import (
    Manifest,
    install_model_file,
    load_manifest,
    read_manifest_file,
    write_manifest_file,
)
from ..deploy.variants import VARIANTS, engine_available, variant_entries
from ..errors import MissingExtraError, UsageError, require_extra
from ..imaging import classifier_array, detector_array, set_decoder_threads
from ..timing import median_s
from .verify import check_onnx

__all__ = [
    "MAX_AUROC_LOSS",
    "MAX_MAP_LOSS",
    "add_variants",
    "check_variants",
    "make_variant_files",
    "quantize_int8",
    "time_variants",
]

MAX_AUROC_LOSS = 0.5  # points
MAX_MAP_LOSS = 1.0  # points
CALIBRATION_IMAGES = 8
TIMED_RUNS = 5
INT8_FILES = {"classifier": "dernet.int8.onnx", "detector": "yolo_spine.int8.onnx"}


def calibration_arrays(manifest: Manifest, data_dir: Path, role: str, count: int) -> list[np.ndarray]:
    """Model inputs of ``count`` prepared training images spread over the split (normal and abnormal alike)."""
    from ..datasets.cached import sample_inputs  # pandas: the 'train' extra

    p = manifest.preprocessing
    if role == "classifier":
        return sample_inputs(
            data_dir, "train", count, lambda c: classifier_array(c, manifest.classifier.input_size, p.clahe), "spread"
        )
    return sample_inputs(
        data_dir, "train", count, lambda c: detector_array(c, manifest.detector.imgsz, p.clahe)[0], "spread"
    )


def float_nodes(model_path: Path, role: str) -> list[str]:
    """Nodes that stay in float: the ensemble's vote (outside the members), the detector's decoding head."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    if role == "classifier":
        return [n.name for n in graph.node if not n.name.startswith("/members.")]
    output = graph.output[0].name
    head = next(n.name for n in graph.node if output in n.output)  # e.g. /model.23/Concat_3
    prefix = head.rsplit("/", 1)[0] + "/"
    return [
        n.name for n in graph.node if n.name.startswith(prefix) and not any(f"/{b}" in n.name for b in ("cv2", "cv3"))
    ]


def quantize_int8(source: Path, target: Path, role: str, calibration: list[np.ndarray]) -> None:
    """Static QDQ quantization of ``source`` into ``target`` (written directly; callers install it atomically)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self._items = iter([{name: array} for array in calibration])

        def get_next(self):
            return next(self._items, None)

    import onnx

    input_name = onnx.load(str(source), load_external_data=False).graph.input[0].name
    _quantize(source, target, role, Reader(input_name))


def per_tensor_weights(model_path: Path) -> dict[str, list[dict]]:
    """ONNX Runtime's per-tensor overrides for the 1-D BatchNormalization scales.

    Per-channel quantization has no channel axis in a 1-D tensor, so ONNX Runtime falls back to per tensor for
    them anyway, after a warning through the root logger for each (`logging.warning`, which also configures the
    root logger). Asking for per tensor up front gives the same file without touching the caller's logging.
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    ranks = {tensor.name: len(tensor.dims) for tensor in graph.initializer}
    return {
        node.input[1]: [{}]  # an empty per-tensor override: the quantizer's own defaults
        for node in graph.node
        if node.op_type == "BatchNormalization" and ranks.get(node.input[1]) == 1
    }


def _quantize(source: Path, target: Path, role: str, reader) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=float_nodes(prepared, role),
            extra_options={"TensorQuantOverrides": per_tensor_weights(prepared)},
            # No CalibMaxIntermediateOutputs: in this onnxruntime, MinMaxCalibrater.collect_data *drops* the
            # collected ranges each time it reaches that count (clear_collected_data without compute_data), so
            # the ranges would come from the last few images only. Memory is bounded by the image count instead:
            # the calibration graph keeps per-channel min/max vectors per image, not whole activations.
        )


def add_variants(
    models: str | Path,
    data_dir: str | Path,
    variants: list[str],
    calibration_images: int = CALIBRATION_IMAGES,
    accuracy_split: str = "val",
) -> dict[str, Any]:
    """Make, time and check ``variants`` of both exported models; record them in the manifest. Returns the
    manifest's variant sections."""
    models, data_dir = Path(models), Path(data_dir)
    make_variant_files(models, data_dir, variants, calibration_images)
    time_variants(models, data_dir, variants)
    check_variants(models, data_dir, variants, accuracy_split)
    manifest = load_manifest(models)
    return {"classifier": manifest.classifier.variants, "detector": manifest.detector.variants}


def make_variant_files(
    models: Path, data_dir: Path, variants: list[str], calibration_images: int = CALIBRATION_IMAGES
) -> None:
    """Write the int8 files (when a requested variant runs one) and record every requested variant, not yet
    accepted, in the manifest."""
    unknown = [v for v in variants if v not in VARIANTS or v == "fp32"]
    if unknown:
        raise UsageError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(list(VARIANTS)[1:])}")
    missing = sorted({VARIANTS[v].engine for v in variants if not engine_available(VARIANTS[v].engine)})
    if missing:
        raise MissingExtraError(missing[0], "openvino")
    manifest = load_manifest(models)
    if manifest.detector.kind != YOLO_KIND:
        # torchvision's graphs hold their NMS and top-k loops: neither int8 calibration nor OpenVINO has been
        # checked on them, so no variant is offered rather than one that might quietly differ
        raise UsageError(
            f"{models}: runtime variants are made for YOLO detectors only; this export's detector is "
            f"{manifest.detector.kind} (fp32 only): export without --quantize"
        )
    int8 = {}
    if any(VARIANTS[v].file_precision == "int8" for v in variants):
        for role, spec in (("classifier", manifest.classifier), ("detector", manifest.detector)):
            calibration = calibration_arrays(manifest, data_dir, role, calibration_images)
            with tempfile.TemporaryDirectory() as tmp:
                quantized = Path(tmp) / INT8_FILES[role]
                quantize_int8(manifest.path_of(spec), quantized, role, calibration)
                check_onnx(quantized)
                int8[role] = install_model_file(quantized, models / INT8_FILES[role])
            _record(models, role, "int8", {"calibration_images": len(calibration)})
    for role, spec in (("classifier", manifest.classifier), ("detector", manifest.detector)):
        for name in variants:
            if VARIANTS[name].file_precision == "int8":
                entry = {"file": INT8_FILES[role], "sha256": int8[role]}
            else:
                entry = {"file": spec.file, "sha256": spec.sha256}
            _record(models, role, name, {**entry, "accepted": False})


def time_variants(models: Path, data_dir: Path, variants: list[str], runs: int = TIMED_RUNS) -> None:
    """Median batch-1 latency of fp32 and each variant on one prepared image, recorded as ``ms``."""
    manifest = load_manifest(models)
    runtime = RuntimeOptions(["cpu"])
    for role, spec in (("classifier", manifest.classifier), ("detector", manifest.detector)):
        sample = calibration_arrays(manifest, data_dir, role, 1)[0]
        for name in ["fp32", *variants]:
            path = manifest.folder / variant_entries(spec)[name]["file"]
            model = load_model(path, name, runtime)
            _record(models, role, name, {"ms": round(median_s(lambda m=model, x=sample: m(x), runs) * 1000, 2)})


def check_variants(models: Path, data_dir: Path, variants: list[str], split: str = "val") -> None:
    """Accuracy of each variant against fp32 on the same prepared images (``split``): AUROC of the ensemble and
    mAP@0.5 of the detector in points; ``accepted`` within MAX_AUROC_LOSS / MAX_MAP_LOSS."""
    from ..evaluation import evaluate_exported  # the metrics stack: pandas, scikit-learn, pycocotools

    def scores(variant: str) -> tuple[float, float]:
        result = evaluate_exported(
            models, data_dir, split, None, bootstrap=0, runtime=RuntimeOptions(["cpu"]), variant=variant
        )
        auroc = result["models"]["ensemble"]["metrics"]["auroc"] * 100 if result["models"] else float("nan")
        return auroc, result["detection"]["all"]["map50"] * 100

    fp32_auroc, fp32_map = scores("fp32")
    for name in variants:
        auroc, map50 = scores(name)
        auroc_delta, map_delta = round(auroc - fp32_auroc, 3), round(map50 - fp32_map, 3)
        _record(models, "classifier", name, {"split": split, "auroc": round(auroc, 3),
                "auroc_fp32": round(fp32_auroc, 3), "auroc_delta": auroc_delta,
                "accepted": bool(auroc_delta >= -MAX_AUROC_LOSS)})  # fmt: skip
        _record(models, "detector", name, {"split": split, "map50": round(map50, 3),
                "map50_fp32": round(fp32_map, 3), "map50_delta": map_delta,
                "accepted": bool(map_delta >= -MAX_MAP_LOSS)})  # fmt: skip


def _record(models: Path, role: str, name: str, values: dict[str, Any]) -> None:
    """Merge ``values`` into the manifest's ``<role>.variants.<name>`` and list the variant at the top level."""
    manifest = read_manifest_file(models)
    spec = getattr(manifest, role)
    entries = {**spec.variants, name: {**spec.variants.get(name, {}), **values}}
    manifest = dataclasses.replace(manifest, **{role: dataclasses.replace(spec, variants=entries)})
    present = {"fp32"} | set(manifest.classifier.variants) | set(manifest.detector.variants)
    write_manifest_file(models, dataclasses.replace(manifest, variants=tuple(v for v in VARIANTS if v in present)))


def format_variants(sections: dict[str, Any]) -> str:
    lines = ["| model | variant | ms (batch 1) | accuracy change (val) | accepted |", "|---|---|---|---|---|"]
    for role, entries in sections.items():
        for name, e in sorted(entries.items(), key=lambda item: item[0] != "fp32"):
            if name == "fp32":
                lines.append(f"| {role} | fp32 | {e.get('ms', '')} | (reference) | yes |")
                continue
            delta = e.get("auroc_delta", e.get("map50_delta"))
            unit = "AUROC" if "auroc_delta" in e else "mAP@0.5"
            change = f"{delta:+.2f} {unit} points" if delta is not None else "not measured"
            lines.append(f"| {role} | {name} | {e.get('ms', '')} | {change} | {'yes' if e.get('accepted') else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "python -m dernet.export.quantize") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_models(parser)
    add_data(parser)
    choices = [v for v in VARIANTS if v != "fp32"]
    parser.add_argument(
        "--variants", nargs="+", default=["int8"], choices=choices, metavar="VARIANT",
        help=f"{', '.join(choices)} (default: int8)",
    )  # fmt: skip
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES)
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        require_extra("train")  # onnx to quantize, the metrics stack to check accuracy
        set_decoder_threads()
        sections = add_variants(args.models, args.data, args.variants, args.calibration_images)
        print(format_variants(sections))
        rejected = [
            f"{r} {n}" for r, e in sections.items() for n, v in e.items() if n != "fp32" and not v.get("accepted")
        ]
        if rejected:
            limits = f"{MAX_AUROC_LOSS} AUROC / {MAX_MAP_LOSS} mAP points"
            print(f"kept out of --variant auto (accuracy loss over {limits}): {', '.join(rejected)}")
        return 0

    return run_command(run, args)


if __name__ == "__main__":
    raise SystemExit(main())
