"""Runtime variants of the exported models and how the gate picks one.

A variant names a file precision and an engine: ``fp32`` and ``int8`` (static QDQ, `make export-onnx QUANTIZE=int8`)
run in ONNX Runtime; ``openvino-fp32`` / ``openvino-bf16`` run the fp32 file through OpenVINO with that precision
hint and ``openvino-int8`` the int8 file (the optional `openvino` extra). The quantizer records each variant it
checked in the model's manifest section: file, sha256, latency measured at export, accuracy change on the
validation split, and whether that change is within the tolerance (``accepted``). ``auto`` takes the fastest
accepted variant this install can run, so a variant that costs accuracy never becomes the default silently.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtraError, UsageError

if TYPE_CHECKING:
    from .manifest import ClassifierSpec, DetectorSpec, Manifest

__all__ = ["VARIANTS", "Variant", "choose_variant", "engine_available", "variant_entries", "variant_sha256"]


@dataclass(frozen=True)
class Variant:
    name: str
    file_precision: str  # which ONNX file: fp32 or int8
    engine: str  # onnxruntime | openvino
    precision_hint: str | None = None  # OpenVINO's INFERENCE_PRECISION_HINT


VARIANTS = {
    v.name: v
    for v in (
        Variant("fp32", "fp32", "onnxruntime"),
        Variant("int8", "int8", "onnxruntime"),
        Variant("openvino-fp32", "fp32", "openvino", "f32"),
        Variant("openvino-bf16", "fp32", "openvino", "bf16"),
        Variant("openvino-int8", "int8", "openvino", "f32"),
    )
}


def engine_available(engine: str) -> bool:
    """Whether this install can run ``engine`` (OpenVINO is an optional extra)."""
    return engine == "onnxruntime" or importlib.util.find_spec(engine) is not None


def variant_entries(spec: ClassifierSpec | DetectorSpec) -> dict[str, dict[str, Any]]:
    """Every variant recorded for a model: fp32 (its own file, always accepted) and those the quantizer added."""
    entries = {name: dict(entry) for name, entry in spec.variants.items()}
    entries["fp32"] = {**entries.get("fp32", {}), "file": spec.file, "sha256": spec.sha256, "accepted": True}
    return entries


def choose_variant(
    manifest: Manifest, spec: ClassifierSpec | DetectorSpec, requested: str = "auto"
) -> tuple[str, Path]:
    """The variant to run and its file: ``requested`` itself (an error when absent or not runnable here), or for
    ``auto`` the accepted, runnable variant with the lowest latency measured at export (fp32 when none is faster)."""
    entries = variant_entries(spec)
    if requested != "auto":
        if requested not in VARIANTS:
            raise UsageError(f"unknown runtime variant '{requested}'; known: auto, {', '.join(VARIANTS)}")
        entry = entries.get(requested)
        if entry is None or not (manifest.folder / entry["file"]).is_file():
            raise UsageError(
                f"{manifest.folder / spec.file}: no '{requested}' variant exported beside it; run "
                f"`make export-onnx QUANTIZE={requested}` (present: {', '.join(sorted(entries))})"
            )
        if not engine_available(VARIANTS[requested].engine):
            raise MissingExtraError(VARIANTS[requested].engine, "openvino")
        return requested, manifest.folder / entry["file"]
    runnable = [
        (entry.get("ms", math.inf) if name != "fp32" else entry.get("ms", 0.0), name != "fp32", name)
        for name, entry in entries.items()
        if name in VARIANTS
        and entry.get("accepted")
        and engine_available(VARIANTS[name].engine)
        and (manifest.folder / entry["file"]).is_file()
    ]
    _, _, name = min(runnable)
    return name, manifest.folder / entries[name]["file"]


def variant_sha256(spec: ClassifierSpec | DetectorSpec, name: str) -> str:
    """The sha256 of the file a variant runs (reports name the exact model file that scored them)."""
    return variant_entries(spec)[name]["sha256"]
