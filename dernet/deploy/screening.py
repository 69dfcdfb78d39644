"""The gate's core: one input in, one screening result out (read, reject, classify, gate, detect).

Shared by the command line, the web page, the quantizer's accuracy check and `make evaluate`. Preprocessing is
dernet.imaging's :func:`load_windowed` at the manifest's cache long side, then :func:`model_input` at each model's
size: the same calls, in the same order, the trainers make on the prepared cache. No torch, no Ultralytics.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from ..imaging import (
    ImageMeta,
    ImageReadError,
    Letterbox,
    Source,
    canvas_to_original,
    classifier_array,
    detector_array,
    load_windowed,
)
from .detection import YOLO_KIND, Detections, decode_detections, decode_torchvision
from .engines import RuntimeOptions, load_model
from .fusion import fuse_detections
from .isolation import IsolatedReader, IsolationLimits
from .manifest import MANIFEST_NAME, ClassifierSpec, DetectorSpec, Manifest, ManifestError, Rejection, load_manifest
from .rejection import check_screenable
from .variants import choose_variant, variant_sha256

__all__ = [
    "FUSION_MIN_CONFIDENCE",
    "MODES",
    "Finding",
    "PreparedInput",
    "Screener",
    "Screening",
    "kept_by_mode",
]

MODES = ("gate", "fusion", "all")
FUSION_MIN_CONFIDENCE = 0.5  # VinDr-SpineXR rule: below the threshold only confident boxes survive


@dataclass(frozen=True)
class Finding:
    label: str
    class_id: int
    confidence: float
    box: list[float]  # x1, y1, x2, y2 in the original image's pixels

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "class_id": self.class_id, "confidence": self.confidence, "box": self.box}


@dataclass
class Screening:
    """What the gate found for one input; :mod:`dernet.deploy.report` turns it into the report JSON and overlay."""

    input: str
    status: str  # "ok" | "rejected" | "error" (a bug met on this input; the traceback is in error_traceback)
    mode: str
    threshold: float
    reason: str | None = None
    reason_code: str | None = None  # dernet.imaging.REASON_CODES, for machines (the web app's status code, say)
    meta: ImageMeta | None = None  # its notes say what the reader converted
    probability: float | None = None
    member_probabilities: dict[str, float] = field(default_factory=dict)
    # with a lesion-type head: per class {"label", "probability", "threshold", "likely"} (None without one)
    lesion_types: list[dict[str, Any]] | None = None
    # with a multiclass vote (a folder-per-class ensemble): class name -> probability, summing to 1 (None without)
    class_probabilities: dict[str, float] | None = None
    findings: list[Finding] = field(default_factory=list)
    detector_ran: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    windowed: np.ndarray | None = None  # the windowed cache-size image, for the overlay
    runtime: dict[str, str] = field(default_factory=dict)  # the runtime variant of each model
    error_traceback: str | None = None  # for the front end's log, never for the report

    @property
    def abnormal(self) -> bool | None:
        return None if self.probability is None else self.probability >= self.threshold

    @property
    def top_class(self) -> dict[str, Any] | None:
        """The multiclass vote's most probable class as {"label", "probability"}; None without that vote."""
        if not self.class_probabilities:
            return None
        label = max(self.class_probabilities, key=self.class_probabilities.__getitem__)
        return {"label": label, "probability": self.class_probabilities[label]}

    def image_level_summary(self) -> str | None:
        """One line for the overlay and the presentation state: the top class, the likely lesion types, or None
        when the export has neither head."""
        parts = []
        if self.top_class is not None:
            parts.append(f"class {self.top_class['label']} {self.top_class['probability']:.2f}")
        if self.lesion_types is not None:
            likely = [f"{r['label']} {r['probability']:.2f}" for r in self.lesion_types if r["likely"]]
            parts.append(f"likely lesion types: {', '.join(likely) or 'none'}")
        return "  |  ".join(parts) or None


@dataclass
class PreparedInput:
    """An input read, checked and turned into both models' arrays: the part of screening that needs no model, so
    a reader thread can prepare the next inputs while the models work on this one."""

    result: Screening  # filled so far: status, reason, meta, windowed, read/preprocess timings
    classifier_input: np.ndarray | None = None
    detector_input: np.ndarray | None = None
    geometry: Letterbox | None = None
    detector_size: tuple[int, int] | None = None


class Screener:
    """Models loaded once (ONNX Runtime sessions, or OpenVINO for the variants that use it), then :meth:`screen`
    per input, or :meth:`screen_many` for a stream of inputs with reading overlapped with inference.

    ``variant`` picks the runtime variant of both models: ``auto`` (the fastest one the export accepted and this
    install can run, per model; see :func:`dernet.deploy.variants.choose_variant`), a name such as ``fp32``, or
    one per model (``{"classifier": "int8", "detector": "openvino-bf16"}``).
    Inference sessions allow concurrent calls and nothing here keeps per-call state (the reader's conversion notes
    come back on each result's metadata), so threads may share one Screener. JPEG 2000 decodes on one thread unless
    the process asked for more (:func:`dernet.imaging.set_decoder_threads`, which the command lines call).

    No input makes it raise: an unusable one comes back ``rejected`` with a reason and a reason code, and a bug met
    on one comes back ``error`` with its traceback attached, so a folder or a server goes on with the next. With
    ``isolation``, decoding runs in worker processes bounded in time and memory (:mod:`dernet.deploy.isolation`);
    :meth:`close` stops them.
    """

    def __init__(
        self,
        models: str | Path | Manifest = "export",
        runtime: RuntimeOptions | None = None,
        rejection: Rejection | None = None,
        variant: str | dict[str, str] = "auto",
        isolation: IsolationLimits | None = None,
        fuse: bool = False,
    ) -> None:
        self.manifest = models if isinstance(models, Manifest) else load_manifest(models)
        if fuse and self.manifest.fusion is None:
            raise ManifestError(
                f"{self.manifest.folder / MANIFEST_NAME}: no box fusion chosen for this export; add a detector "
                "(export-detector --add) and choose it on validation (python -m dernet.detectors.fuse)"
            )
        self.fuse = fuse
        self.rejection = rejection or self.manifest.rejection
        self.runtime = runtime or RuntimeOptions()
        m = self.manifest
        self.variants: dict[str, str] = {}
        self.files: dict[str, Path] = {}
        loaded = {}
        for role, spec in (("classifier", m.classifier), ("detector", m.detector)):
            name, path = choose_variant(m, spec, variant[role] if isinstance(variant, dict) else variant)
            self.variants[role], self.files[role] = name, path
            loaded[role] = load_model(path, name, self.runtime)
        self.classifier, self.detector = loaded["classifier"], loaded["detector"]
        # the further detectors (fp32): loaded here for fusion (threads sharing this Screener then only read them),
        # else when detections_per_model first asks
        self._further: list | None = None
        if fuse:
            self._further_models()
        self._isolated = IsolatedReader(isolation) if isolation is not None else None

    def close(self) -> None:
        """Stop the decoding workers (with ``isolation``); the models need nothing."""
        if self._isolated is not None:
            self._isolated.close()

    def __enter__(self) -> Screener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model_hashes(self) -> dict[str, str]:
        """What made the results: each model file's SHA-256 (with fusion, every fused detector's, in weight order)."""
        m = self.manifest
        hashes = {
            "classifier": variant_sha256(m.classifier, self.variants["classifier"]),
            "detector": variant_sha256(m.detector, self.variants["detector"]),
        }
        if self.fuse:  # the further detectors run in fp32
            hashes.update({f"detector_{i}": spec.sha256 for i, spec in enumerate(m.detectors, start=2)})
        return hashes

    def screen(
        self,
        source: Source,
        name: str | None = None,
        mode: str = "gate",
        threshold: float | None = None,
        conf: float | None = None,
    ) -> Screening:
        """Screen one input (path, bytes or array). Never raises for a bad input: it comes back rejected."""
        _check_mode(mode)
        return self.infer(self.prepare(source, name, mode), threshold, conf)

    def screen_many(
        self,
        sources: Iterable[tuple[Source, str | None]],
        mode: str = "gate",
        threshold: float | None = None,
        conf: float | None = None,
        prefetch: int = 2,
    ) -> Iterator[Screening]:
        """Screen (source, name) pairs in order; a reader thread prepares up to ``prefetch`` inputs ahead while the
        models run (0: strictly one after the other). Memory stays bounded by ``prefetch`` prepared inputs."""
        _check_mode(mode)
        if prefetch <= 0:
            for source, name in sources:
                yield self.infer(self.prepare(source, name, mode), threshold, conf)
            return
        pending: deque[Future[PreparedInput]] = deque()
        stream = iter(sources)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-reader") as reader:
            for source, name in islice(stream, prefetch):
                pending.append(reader.submit(self.prepare, source, name, mode))
            while pending:
                prepared = pending.popleft().result()
                upcoming = next(stream, None)
                if upcoming is not None:
                    pending.append(reader.submit(self.prepare, upcoming[0], upcoming[1], mode))
                yield self.infer(prepared, threshold, conf)

    def reject(
        self, err: ImageReadError, mode: str = "gate", threshold: float | None = None, conf: float | None = None
    ) -> Screening:
        """The result of an input found unusable before it reached the screener (batch screening reads files in
        another process, say): the same fields as a rejection met in :meth:`prepare`."""
        _check_mode(mode)
        result = Screening(input=err.source, status="ok", mode=mode, threshold=self.manifest.classifier.threshold)
        return self.infer(PreparedInput(_rejected(result, err, time.perf_counter())), threshold, conf)

    def prepare(self, source: Source, name: str | None = None, mode: str = "gate") -> PreparedInput:
        """Read, reject outliers and build both model inputs (no model runs here); never raises for an input."""
        name = name or str(source if not isinstance(source, (bytes, np.ndarray)) else "<upload>")
        result = Screening(input=name, status="ok", mode=mode, threshold=self.manifest.classifier.threshold)
        start = time.perf_counter()
        try:
            return self._prepare(source, result, start)
        except ImageReadError as err:
            return PreparedInput(_rejected(result, err, start))
        except Exception:  # a bug met on this input: reported as such, and the next input goes on
            return PreparedInput(_failed(result, start))

    def _prepare(self, source: Source, result: Screening, start: float) -> PreparedInput:
        m = self.manifest
        load = self._isolated.load_windowed if self._isolated is not None else load_windowed
        windowed, meta = load(source, m.preprocessing.cache_long_side, name=result.input,
                              max_pixels=self.rejection.max_pixels)  # fmt: skip
        result.meta, result.windowed = meta, windowed
        t_read = time.perf_counter()
        result.timings_ms = {"read": _ms(start, t_read)}
        check_screenable(meta, windowed, self.rejection, result.input)
        clahe = m.preprocessing.clahe
        cls_input = classifier_array(windowed, m.classifier.input_size, clahe)
        det_input, geometry, det_size = detector_array(windowed, m.detector.imgsz, clahe)
        result.timings_ms["preprocess"] = _ms(t_read, time.perf_counter())
        return PreparedInput(result, cls_input, det_input, geometry, det_size)

    def infer(self, prepared: PreparedInput, threshold: float | None = None, conf: float | None = None) -> Screening:
        """Classify, gate and detect a prepared input (a rejected one comes back as it is)."""
        m = self.manifest
        result = prepared.result
        result.runtime = dict(self.variants)
        threshold = m.classifier.threshold if threshold is None else float(threshold)
        conf = m.detector.conf if conf is None else float(conf)
        result.threshold = threshold
        if result.status != "ok":
            return result
        try:
            return self._infer(prepared, threshold, conf)
        except Exception:  # a bug met on this input (a model that refuses its array, say): the next one goes on
            began = time.perf_counter() - sum(result.timings_ms.values()) / 1000  # when reading it began
            return _failed(result, began)

    def _infer(self, prepared: PreparedInput, threshold: float, conf: float) -> Screening:
        m, result = self.manifest, prepared.result
        t_pre = time.perf_counter()
        outputs = dict(zip(m.classifier.outputs, self.classifier(prepared.classifier_input), strict=True))
        result.probability = float(outputs["probability"][0])
        members = outputs["member_probabilities"][0]
        result.member_probabilities = {n: float(p) for n, p in zip(m.classifier.members, members, strict=True)}
        if "class_probabilities" in outputs:
            probs = outputs["class_probabilities"][0]
            result.class_probabilities = {n: float(p) for n, p in zip(m.classifier.classes, probs, strict=True)}
        if "lesion_probabilities" in outputs:
            result.lesion_types = lesion_types(m.classifier, outputs["lesion_probabilities"][0])
        t_cls = time.perf_counter()

        detections = None
        if result.mode != "gate" or result.probability >= threshold:
            detections = self._detect(prepared, conf)
            detections = detections.keep(kept_by_mode(result.mode, result.probability, threshold, detections.scores))
        t_det = time.perf_counter()

        result.detector_ran = detections is not None
        if detections is not None:
            result.findings = self._findings(detections)
        timings = result.timings_ms
        timings.update(classify=_ms(t_pre, t_cls), detect=_ms(t_cls, t_det))
        timings["total"] = round(timings["read"] + timings["preprocess"] + timings["classify"] + timings["detect"], 1)
        return result

    def _detect(self, prepared: PreparedInput, conf: float) -> Detections:
        """Boxes in the original image's pixels, best first: the detector's, or with fusion every exported
        detector's fused by WBF (each taking part down to the fusion's skip_box_thr), then kept from ``conf`` up."""
        if not self.fuse:
            return self.detections_per_model(prepared, conf, further=False)[0]
        fusion, meta = self.manifest.fusion, prepared.result.meta
        per_model = self.detections_per_model(prepared, fusion.skip_box_thr)
        fused = fuse_detections(per_model, (meta.width, meta.height), fusion.weights, fusion.iou_thr,
                                fusion.skip_box_thr)  # fmt: skip
        return fused.keep(fused.scores >= conf)

    def _further_models(self) -> list:
        """The detectors added for fusion (fp32), loaded on first use."""
        if self._further is None:
            m = self.manifest
            self._further = [load_model(m.path_of(spec), "fp32", self.runtime) for spec in m.detectors]
        return self._further

    def detections_per_model(self, prepared: PreparedInput, conf: float, further: bool = True) -> list[Detections]:
        """Each exported detector's boxes from ``conf`` up, in the original image's pixels: the screening detector
        first, then (``further``) the ones added for fusion, each on its own canvas size."""
        m, meta = self.manifest, prepared.result.meta
        size = (meta.width, meta.height)
        found = [self._on_original(m.detector, self.detector(prepared.detector_input), conf, prepared.geometry,
                                   prepared.detector_size, size)]  # fmt: skip
        if further and m.detectors:
            for spec, model in zip(m.detectors, self._further_models(), strict=True):
                canvas, geometry, det_size = detector_array(prepared.result.windowed, spec.imgsz, m.preprocessing.clahe)
                found.append(self._on_original(spec, model(canvas), conf, geometry, det_size, size))
        return found

    @staticmethod
    def _on_original(
        spec: DetectorSpec, outputs: list[np.ndarray], conf: float, geometry: Letterbox, det_size: tuple[int, int],
        original: tuple[int, int],
    ) -> Detections:  # fmt: skip
        """A detector's outputs decoded as its kind needs (YOLO: NMS here; torchvision: in the graph), mapped from
        its letterboxed canvas to the original image's pixels."""
        if spec.kind == YOLO_KIND:
            found = decode_detections(outputs[0], conf, spec.iou, spec.max_det)
        else:
            found = decode_torchvision(outputs, conf, spec.max_det)
        boxes = canvas_to_original(found.boxes, geometry, det_size, original)
        return Detections(boxes, found.scores, found.classes)

    def _findings(self, detections: Detections) -> list[Finding]:
        names = self.manifest.detector.class_names
        return [
            Finding(names[int(c)], int(c), round(float(s), 5), [round(float(v), 1) for v in box])
            for box, s, c in zip(detections.boxes, detections.scores, detections.classes, strict=True)
        ]


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got '{mode}'")


def kept_by_mode(mode: str, probability: float, threshold: float, scores: np.ndarray) -> np.ndarray:
    """Which detector boxes a mode reports: gate keeps none below the threshold (the detector does not even run
    there), fusion only those scoring >= 0.5 below it, all keeps every box. Evaluation derives its modes here too."""
    scores = np.asarray(scores)
    if probability >= threshold or mode == "all":
        return np.ones(scores.shape, bool)
    if mode == "fusion":
        return scores >= FUSION_MIN_CONFIDENCE
    return np.zeros(scores.shape, bool)


def _rejected(result: Screening, err: ImageReadError, start: float) -> Screening:
    result.status, result.reason, result.reason_code = "rejected", err.reason, err.kind
    return _stopped(result, start)


def _failed(result: Screening, start: float) -> Screening:
    """An input on which a bug struck: status ``error``, the exception's one line, the traceback kept aside."""
    kind, value = sys.exc_info()[:2]
    detail = str(value).strip().splitlines()[0][:160] if str(value).strip() else ""
    result.status, result.reason_code = "error", "internal_error"
    result.reason = f"internal error ({getattr(kind, '__name__', 'Exception')}{': ' + detail if detail else ''})"
    result.error_traceback = traceback.format_exc()
    result.probability, result.findings, result.member_probabilities = None, [], {}
    result.lesion_types = result.class_probabilities = None
    return _stopped(result, start)


def _stopped(result: Screening, start: float) -> Screening:
    elapsed = _ms(start, time.perf_counter())
    read = result.timings_ms.get("read", elapsed)
    result.timings_ms = {"read": read, "preprocess": 0.0, "classify": 0.0, "detect": 0.0, "total": elapsed}
    return result


def lesion_types(spec: ClassifierSpec, probabilities: np.ndarray) -> list[dict[str, Any]]:
    """Each lesion class's probability and whether it reaches its threshold (0.5 where none was chosen)."""
    rows = []
    for name, p, chosen in zip(spec.lesion_classes, probabilities, spec.lesion_thresholds, strict=True):
        threshold = 0.5 if chosen is None else float(chosen)
        rows.append({"label": name, "probability": round(float(p), 6), "threshold": threshold,
                     "likely": bool(p >= threshold)})  # fmt: skip
    return rows


def _ms(a: float, b: float) -> float:
    return round((b - a) * 1000, 1)
