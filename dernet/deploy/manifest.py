"""export/manifest.json: everything the gate needs besides the ONNX files, and nothing from the training configs.

This module owns the manifest: its types, its reader and its writer. The classifier exporter and the detector
exporter each write their own section (and the shared preprocessing) through :func:`update_manifest`, so either model
can be re-exported alone; the quantizer and the benchmarks change it through :func:`read_manifest_file` and
:func:`write_manifest_file`. The gate, the web app and every other front end read it through :func:`load_manifest`,
which checks it once (dernet.records: unknown or missing keys name the file and the key).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from ..errors import UserError
from ..fileio import write_bytes_atomic
from ..imaging import DEFAULT_MAX_PIXELS, ClaheParams
from ..records import RECORD_CONFIG, RecordError, load_record, save_record

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "ClassifierSpec",
    "DetectorSpec",
    "FusionSpec",
    "Manifest",
    "ManifestError",
    "ManifestFile",
    "Preprocessing",
    "Rejection",
    "StudySpec",
    "install_model_file",
    "load_manifest",
    "read_manifest_file",
    "set_study",
    "sha256_of",
    "add_detector",
    "update_manifest",
    "write_manifest_file",
]

FORMAT_VERSION = 2  # 2: typed sections (dernet.records); bench settings under provenance
MANIFEST_NAME = "manifest.json"
EXPORT_FIX = "run `make export-onnx` (or pass --models DIR)"


class ManifestError(UserError, ValueError):
    """A missing or inconsistent export folder; the message says which file and what to run."""


@dataclass(frozen=True)
class Preprocessing:
    """How a file becomes both models' inputs: dernet.imaging's load_windowed at cache_long_side, then model_input
    with this CLAHE at each model's size."""

    __pydantic_config__ = RECORD_CONFIG

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
    """Outlier rejection before classifying (thresholds a site may tune; a re-export keeps them)."""

    __pydantic_config__ = RECORD_CONFIG

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
    __pydantic_config__ = RECORD_CONFIG
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
    # multiclass members (output class_probabilities, in this order); probability is then 1 - P(normal)'s vote
    classes: tuple[str, ...] = ()
    # a lesion-type head (output lesion_probabilities): its classes and per-class thresholds (chosen_on's split;
    # null where that split had one side of a class only)
    lesion_classes: tuple[str, ...] = ()
    lesion_thresholds: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class DetectorSpec:
    __pydantic_config__ = RECORD_CONFIG
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
    kind: str = "yolo"  # yolo (raw anchors: NMS at run time) | a torchvision arch (faster_rcnn, retinanet, ...)


@dataclass(frozen=True)
class FusionSpec:
    """Weighted Boxes Fusion of every exported detector (the gate's --wbf), chosen on validation."""

    __pydantic_config__ = RECORD_CONFIG
    weights: tuple[float, ...]  # one per detector: the manifest's `detector` first, then `detectors` in order
    iou_thr: float  # boxes of the same class overlapping at least this much are fused
    skip_box_thr: float = 0.001  # boxes below this score do not take part
    chosen_on: dict[str, Any] = field(default_factory=dict)  # the split and its mAP@0.5


@dataclass(frozen=True)
class StudySpec:
    """The study-level decision (python -m dernet study-fit): a LightGBM model over the features of a study's
    images, with its threshold; both chosen on validation studies."""

    __pydantic_config__ = RECORD_CONFIG
    file: str  # LightGBM's text model
    sha256: str
    features: tuple[str, ...]  # dernet.deploy.study.feature_names, in the model's column order
    threshold: float  # Youden point of out-of-fold predictions on chosen_on's studies
    boxes: bool = True  # the detector's top score per class is among the features (needs --mode all)
    detector_conf: float = 0.25  # the minimum box confidence the box features were computed at
    rules: dict[str, float] = field(default_factory=dict)  # the simple rules' thresholds (max, mean), same split
    chosen_on: dict[str, Any] = field(default_factory=dict)  # split, studies, abnormal studies


@dataclass(frozen=True)
class ManifestFile:
    """manifest.json as written: each exporter fills in its section, so either may still be missing."""

    __pydantic_config__ = RECORD_CONFIG
    FORMAT_VERSION: ClassVar[int] = FORMAT_VERSION

    preprocessing: Preprocessing | None = None
    rejection: Rejection = field(default_factory=Rejection)
    classifier: ClassifierSpec | None = None
    detector: DetectorSpec | None = None
    detectors: tuple[DetectorSpec, ...] = ()  # further detectors, for box fusion only (fp32)
    fusion: FusionSpec | None = None  # how to fuse all of them; None until chosen (python -m dernet.detectors.fuse)
    study: StudySpec | None = None  # the study-level decision; None until fitted (python -m dernet study-fit)
    variants: tuple[str, ...] = ("fp32",)  # runtime variants present in either section
    provenance: dict[str, Any] = field(default_factory=dict)  # where the models came from; not read by the gate


@dataclass(frozen=True)
class Manifest:
    """A complete manifest, as the gate uses it: both models, their files on disk."""

    folder: Path
    preprocessing: Preprocessing
    rejection: Rejection
    classifier: ClassifierSpec
    detector: DetectorSpec
    variants: tuple[str, ...] = ("fp32",)
    provenance: dict[str, Any] = field(default_factory=dict)
    detectors: tuple[DetectorSpec, ...] = ()
    fusion: FusionSpec | None = None
    study: StudySpec | None = None

    def path_of(self, spec: ClassifierSpec | DetectorSpec) -> Path:
        return self.folder / spec.file

    @property
    def all_detectors(self) -> tuple[DetectorSpec, ...]:
        """The screening detector, then the further ones: the order of ``fusion.weights``."""
        return (self.detector, *self.detectors)


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


def read_manifest_file(folder: str | os.PathLike) -> ManifestFile:
    """The manifest as written so far (empty when there is none yet); a malformed one names the file and key."""
    path = Path(folder) / MANIFEST_NAME
    return load_record(ManifestFile, path, EXPORT_FIX) if path.is_file() else ManifestFile()


def write_manifest_file(folder: str | os.PathLike, manifest: ManifestFile) -> Path:
    """Write ``manifest`` atomically (temp file + rename)."""
    return save_record(manifest, Path(folder) / MANIFEST_NAME)


def update_manifest(
    folder: str | os.PathLike,
    spec: ClassifierSpec | DetectorSpec,
    preprocessing: Preprocessing,
    provenance: dict[str, Any],
    trained_with: str,
) -> Path:
    """Write one model's section of the manifest, with the shared preprocessing and provenance, atomically.

    ``trained_with`` is the file the model's preprocessing was read from (a member checkpoint, a detector run's
    options). The two exporters can run in either order; preprocessing that disagrees with the other model's export
    is refused with both files named. A manifest of an older format is started afresh (both exporters rewrite their
    sections); the rejection thresholds a site tuned are kept.
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        current = read_manifest_file(folder)
    except RecordError:
        current = ManifestFile()
    section, other = ("classifier", "detector") if isinstance(spec, ClassifierSpec) else ("detector", "classifier")
    if getattr(current, other) is not None and current.preprocessing is not None:
        other_file = current.provenance.get(f"{other}_trained_with", f"the {other} in {path}")
        _check_preprocessing(current.preprocessing, other_file, preprocessing, trained_with)
    stamp = {
        f"{section}_exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        f"{section}_trained_with": str(trained_with),
    }
    updated = dataclasses.replace(
        current,
        preprocessing=preprocessing,
        provenance={**current.provenance, **provenance, **stamp},
        **{section: spec},
        **({"fusion": None} if section == "detector" else {}),  # a new detector: the old fusion no longer fits
        study=None,  # a new model: the study model learned the old one's outputs
    )
    return write_manifest_file(folder, updated)


def set_study(folder: str | os.PathLike, spec: StudySpec) -> Path:
    """Record the study-level model in a complete export's manifest (its file already installed there)."""
    current = read_manifest_file(folder)
    if current.classifier is None or current.detector is None:
        raise ManifestError(f"{Path(folder) / MANIFEST_NAME}: export both models first (make export-onnx)")
    return write_manifest_file(folder, dataclasses.replace(current, study=spec))


def add_detector(
    folder: str | os.PathLike, spec: DetectorSpec, preprocessing: Preprocessing, trained_with: str
) -> Path:
    """Add ``spec`` to the export's further detectors (replacing one of the same file), for box fusion; the fusion
    chosen before no longer fits and is dropped. The export's preprocessing must be the one this detector trained on."""
    path = Path(folder) / MANIFEST_NAME
    current = read_manifest_file(folder)
    if current.detector is None or current.preprocessing is None:
        raise ManifestError(f"{path}: no detector to add to; export one first (make export-onnx)")
    _check_preprocessing(current.preprocessing, str(path), preprocessing, trained_with)
    if spec.file == current.detector.file:
        raise ManifestError(f"{path}: {spec.file} is already the screening detector; export without --add")
    others = tuple(d for d in current.detectors if d.file != spec.file)
    stamp = {f"detector_{spec.file}_trained_with": str(trained_with)}
    updated = dataclasses.replace(current, detectors=(*others, spec), fusion=None,
                                  provenance={**current.provenance, **stamp})  # fmt: skip
    return write_manifest_file(folder, updated)


def _check_preprocessing(old: Preprocessing, old_file: str, new: Preprocessing, new_file: str) -> None:
    for key in ("cache_long_side", "clahe_clip_limit", "clahe_tile_grid"):
        if getattr(old, key) != getattr(new, key):
            raise ManifestError(
                f"{new_file} was trained with {key} {getattr(new, key)} but {old_file} (already exported) with "
                f"{getattr(old, key)}; both models must be trained on the same preprocessing (retrain one, then "
                "export both)"
            )


def load_manifest(folder: str | os.PathLike = "export") -> Manifest:
    """The export folder's manifest, checked: both sections present, model files there."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest; {EXPORT_FIX}")
    written = read_manifest_file(folder)
    for section in ("classifier", "detector", "preprocessing"):
        if getattr(written, section) is None:
            raise ManifestError(f"{path}: no '{section}' section; run `make export-onnx` to export both models")
    manifest = Manifest(
        folder,
        written.preprocessing,
        written.rejection,
        written.classifier,
        written.detector,
        written.variants,
        written.provenance,
        written.detectors,
        written.fusion,
        written.study,
    )
    for spec in (manifest.classifier, *manifest.all_detectors, *([manifest.study] if manifest.study else [])):
        if not (folder / spec.file).is_file():
            raise ManifestError(f"{folder / spec.file}: model file missing; run `make export-onnx`")
    if manifest.fusion is not None and len(manifest.fusion.weights) != len(manifest.all_detectors):
        raise ManifestError(
            f"{path}: fusion has {len(manifest.fusion.weights)} weights for {len(manifest.all_detectors)} detectors; "
            "choose it again (python -m dernet.detectors.fuse)"
        )
    return manifest
