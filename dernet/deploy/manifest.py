"""export/manifest.json: everything the gate needs besides the ONNX files, and nothing from the training configs.

This module owns the manifest: its types, its reader and its writer. The classifier exporter and the detector
exporter each write their own section (and the shared preprocessing) through :func:`update_manifest`, so either model
can be re-exported alone. The gate, the web app and every other front end read it through :func:`load_manifest`,
which checks it once and turns it into typed records.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fileio import write_bytes_atomic, write_json_atomic
from ..imaging import DEFAULT_MAX_PIXELS, ClaheParams

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "ClassifierSpec",
    "DetectorSpec",
    "Manifest",
    "ManifestError",
    "Preprocessing",
    "Rejection",
    "install_model_file",
    "load_manifest",
    "sha256_of",
    "update_manifest",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


class ManifestError(UserError, ValueError):
    """A missing or inconsistent export folder; the message says which file and what to run."""


@dataclass(frozen=True)
class Preprocessing:
    """How a file becomes both models' inputs (dernet.imaging.model_ready with these numbers)."""

    cache_long_side: int  # load_windowed() at the prepared cache's long side, exactly as training saw it
    clahe_clip_limit: float = 2.0
    clahe_tile_grid: int = 8
    resize: str = "long side to the model's size (INTER_AREA down, INTER_LINEAR up), then CLAHE"
    classifier_canvas: str = "centred on a black square of the classifier's input size"
    detector_canvas: str = "letterbox: centred on a square of the detector's imgsz, padded with grey 114"
    classifier_channels: int = 1
    detector_channels: int = 3
    scale: float = 1 / 255
    normalization: str = "inside the classifier graph (each member's ImageNet mean/std); none for the detector"

    @property
    def clahe(self) -> ClaheParams:
        return ClaheParams(self.clahe_clip_limit, self.clahe_tile_grid)


@dataclass(frozen=True)
class Rejection:
    """Outlier rejection before classifying (thresholds a site may tune)."""

    min_side: int = 128  # px of the original image
    max_pixels: int = DEFAULT_MAX_PIXELS  # checked in the header before decoding: larger inputs are refused
    min_std: float = 2.0  # grey levels of the windowed 8-bit image: below this it is near-constant
    # DICOM modalities that are clearly not a projection radiograph (a missing Modality tag is fine: the
    # VinDr-SpineXR release has none).
    modalities: tuple[str, ...] = (
        "CT", "MR", "US", "NM", "PT", "SR", "SEG", "RTDOSE", "RTSTRUCT", "RTPLAN", "OP", "XC", "ES", "SM", "ECG",
        "KO", "PR", "DOC",
    )  # fmt: skip


@dataclass(frozen=True)
class ClassifierSpec:
    file: str
    sha256: str
    input_size: int
    members: tuple[str, ...]
    member_sizes: tuple[int, ...]
    member_thresholds: tuple[float, ...]
    weights: tuple[float, ...]
    combine: str
    threshold: float
    chosen_on: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ("probability", "member_probabilities")
    verified_max_abs_diff: float | None = None  # |ONNX Runtime - PyTorch| on the export's own check
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # runtime variants (export/variants.py)


@dataclass(frozen=True)
class DetectorSpec:
    file: str
    sha256: str
    imgsz: int
    class_names: tuple[str, ...]
    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    nms_in_graph: bool = False
    nms_reason: str = ""
    output_layout: str = "[1, 4 + classes, anchors]: cx, cy, w, h in input pixels, then class scores"
    verified_boxes: int | None = None  # boxes matched ONNX Runtime to PyTorch after NMS on the export's check
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # runtime variants (export/variants.py)


@dataclass(frozen=True)
class Manifest:
    folder: Path
    preprocessing: Preprocessing
    rejection: Rejection
    classifier: ClassifierSpec
    detector: DetectorSpec
    variants: tuple[str, ...] = ("fp32",)
    provenance: dict[str, Any] = field(default_factory=dict)

    def path_of(self, spec: ClassifierSpec | DetectorSpec) -> Path:
        return self.folder / spec.file


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def install_model_file(verified: str | os.PathLike, target: str | os.PathLike) -> str:
    """Put a verified model file in place atomically (dernet.fileio's temp file + rename); its sha256."""
    data = Path(verified).read_bytes()
    write_bytes_atomic(target, data)
    return hashlib.sha256(data).hexdigest()


def update_manifest(folder: str | os.PathLike, section: str, values: dict[str, Any], **shared: Any) -> Path:
    """Write one section (``classifier`` or ``detector``) of the manifest, plus shared keys, atomically.

    Shared keys (``preprocessing``, ``rejection``, ``provenance``) are merged, so the two exporters can run in
    either order; a preprocessing value that disagrees with the other model's export is an error.
    """
    path = Path(folder) / MANIFEST_NAME
    current = json.loads(path.read_text()) if path.is_file() else {}
    if current.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        current = {}  # an older format: start afresh, both exporters rewrite their sections
    current["format_version"] = FORMAT_VERSION
    for key, value in shared.items():
        if key == "preprocessing":
            _merge_preprocessing(current, value, path)
        elif isinstance(value, dict):
            current.setdefault(key, {}).update(value)
        else:
            current[key] = value
    current[section] = values
    current.setdefault("variants", ["fp32"])
    current.setdefault("provenance", {})[f"{section}_exported"] = datetime.now(timezone.utc).isoformat(
        timespec="seconds"
    )
    write_json_atomic(path, current)
    return path


def _merge_preprocessing(current: dict[str, Any], value: dict[str, Any], path: Path) -> None:
    old = current.get("preprocessing") or {}
    for key in ("cache_long_side", "clahe_clip_limit", "clahe_tile_grid"):
        if key in old and key in value and old[key] != value[key]:
            raise ManifestError(
                f"{path}: {key} is {old[key]} for the model already exported but {value[key]} for this one; "
                "both models must be trained on the same prepared data (re-export both after retraining)"
            )
    current["preprocessing"] = {**old, **value}


def preprocessing_dict(cache_long_side: int, clahe: ClaheParams) -> dict[str, Any]:
    return asdict(Preprocessing(cache_long_side, clahe.clip_limit, clahe.tile_grid))


def rejection_dict() -> dict[str, Any]:
    return asdict(Rejection())


def load_manifest(folder: str | os.PathLike = "export") -> Manifest:
    """The export folder's manifest, checked: both sections present, model files there."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest; run `make export-onnx` (or pass --models DIR)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path}: not valid JSON ({err}); run `make export-onnx` again") from None
    if data.get("format_version") != FORMAT_VERSION:
        raise ManifestError(f"{path}: format {data.get('format_version')} is not {FORMAT_VERSION}; export again")
    for section in ("classifier", "detector", "preprocessing"):
        if section not in data:
            raise ManifestError(f"{path}: no '{section}' section; run `make export-onnx` to export both models")
    try:
        classifier = ClassifierSpec(**_tuples(data["classifier"]))
        detector = DetectorSpec(**_tuples(data["detector"]))
        preprocessing = Preprocessing(**data["preprocessing"])
        rejection = Rejection(**_tuples(data.get("rejection") or {}))
    except TypeError as err:
        raise ManifestError(f"{path}: unexpected content ({err}); export again") from None
    for spec in (classifier, detector):
        if not (folder / spec.file).is_file():
            raise ManifestError(f"{folder / spec.file}: model file missing; run `make export-onnx`")
    return Manifest(
        folder,
        preprocessing,
        rejection,
        classifier,
        detector,
        tuple(data.get("variants") or ("fp32",)),
        data.get("provenance") or {},
    )


def _tuples(section: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}
