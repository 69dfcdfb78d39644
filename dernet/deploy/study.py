"""Study-level decisions: a study's images (its views) screened one by one, then one probability for the study.

The features of a study are fixed-length summaries of its images' screenings, so studies of any number of views
share one model: the number of views, the ensemble probability's max, mean and min, each member's max and mean,
and (with ``boxes``) the detector's most confident box per class over the views. The simple rules (the max or the
mean of the image probabilities) need no model; the learned one is LightGBM's, from ``study-fit`` (the 'study'
extra, imported only when an export has one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np

from .manifest import Manifest, StudySpec
from .screening import Screening

__all__ = [
    "RULES",
    "STUDY_FROM",
    "StudyDecider",
    "StudyDecision",
    "StudyModel",
    "feature_names",
    "rule_probability",
    "study_features",
    "study_key",
]

RULES = ("max", "mean")  # image probabilities -> study probability, no model


def feature_names(members: Sequence[str], classes: Sequence[str], boxes: bool) -> tuple[str, ...]:
    """The feature columns, in order, for an export's members and detector classes."""
    names = ["views", "p_max", "p_mean", "p_min"]
    for member in members:
        names += [f"{member}_max", f"{member}_mean"]
    if boxes:
        names += [f"box_{name}" for name in classes]
    return tuple(names)


def study_features(
    results: Sequence[Screening], members: Sequence[str], classes: Sequence[str], boxes: bool
) -> np.ndarray:
    """One row of :func:`feature_names` from the screened (status ok) images of one study."""
    probs = np.array([r.probability for r in results], dtype=np.float64)
    row = [float(len(results)), probs.max(), probs.mean(), probs.min()]
    for member in members:
        values = np.array([r.member_probabilities[member] for r in results], dtype=np.float64)
        row += [values.max(), values.mean()]
    if boxes:
        top = np.zeros(len(classes))
        for result in results:
            for finding in result.findings:
                top[finding.class_id] = max(top[finding.class_id], finding.confidence)
        row += top.tolist()
    return np.array(row, dtype=np.float64)


def rule_probability(results: Sequence[Screening], rule: str) -> float:
    """A simple rule's study probability: the max or the mean of the images' probabilities."""
    probs = [r.probability for r in results]
    return float(max(probs) if rule == "max" else np.mean(probs))


@dataclass
class StudyModel:
    """The export's LightGBM study model (``manifest.study``), loaded once."""

    spec: StudySpec
    members: tuple[str, ...]
    classes: tuple[str, ...]
    booster: object

    @classmethod
    def load(cls, folder: Path, spec: StudySpec, members: Sequence[str], classes: Sequence[str]) -> StudyModel:
        import lightgbm  # the 'study' extra: only an export with a study model needs it

        expected = feature_names(members, classes, spec.boxes)
        if tuple(spec.features) != expected:
            from .manifest import ManifestError

            raise ManifestError(
                f"{folder}: the study model's features {list(spec.features)} do not match this export's models "
                f"({list(expected)}); fit it again (python -m dernet study-fit)"
            )
        return cls(spec, tuple(members), tuple(classes), lightgbm.Booster(model_file=str(folder / spec.file)))

    def probability(self, results: Sequence[Screening]) -> float:
        features = study_features(results, self.members, self.classes, self.spec.boxes)
        return float(self.booster.predict(features[None, :])[0])


STUDY_FROM = ("dicom", "folder", "none")  # how the gate groups inputs into studies


def study_key(result: Screening, path: PurePath, rule: str) -> str | None:
    """The study an input belongs to: a DICOM's StudyInstanceUID ('dicom', and 'folder' for DICOMs that carry one),
    the input's folder ('folder', for other files), or None (not grouped)."""
    uid = result.meta.study_uid if result.meta is not None else None
    if rule == "none":
        return None
    if uid:
        return uid
    return str(path.parent) if rule == "folder" else None


@dataclass(frozen=True)
class StudyDecision:
    """One study's answer: its probability, the threshold it is compared with, and how it was made."""

    images: int  # screened images (rejected ones have no say)
    probability: float | None
    threshold: float | None
    method: str  # "LightGBM" (the export's study model) or "max of the images"
    note: str | None = None  # why the study model was not used, when it exists

    @property
    def abnormal(self) -> bool | None:
        return None if self.probability is None else self.probability >= self.threshold

    def as_dict(self) -> dict:
        return {"images": self.images, "probability": None if self.probability is None else round(self.probability, 6),
                "threshold": self.threshold, "abnormal": self.abnormal, "method": self.method, "note": self.note}


class StudyDecider:
    """Study decisions for an export: its LightGBM model when the manifest has one (and the run's mode gives the
    features it learned), else the max rule at the image threshold (a study is abnormal when an image is)."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        spec = manifest.study
        self.model = None if spec is None else StudyModel.load(
            manifest.folder, spec, manifest.classifier.members, manifest.detector.class_names
        )

    def decide_all(
        self, groups: dict[str, Sequence[Screening]], mode: str, threshold: float | None = None
    ) -> dict[str, StudyDecision]:
        """The studies that get a decision, in order: those of two or more inputs, or every one when the export has a
        study model (without one, a one-image study is its image)."""
        return {key: self.decide(results, mode, threshold) for key, results in groups.items()
                if len(results) > 1 or self.model is not None}  # fmt: skip

    def decide(self, results: Sequence[Screening], mode: str, threshold: float | None = None) -> StudyDecision:
        screened = [r for r in results if r.status == "ok"]
        image_threshold = self.manifest.classifier.threshold if threshold is None else float(threshold)
        if not screened:
            return StudyDecision(0, None, None, "max of the images", "no image of the study was screened")
        note = None
        if self.model is not None:
            if not self.model.spec.boxes or mode == "all":
                return StudyDecision(len(screened), self.model.probability(screened), self.model.spec.threshold,
                                     "LightGBM")  # fmt: skip
            note = f"the study model learned box scores of --mode all, not {mode}: the max rule decided"
        return StudyDecision(len(screened), rule_probability(screened, "max"), image_threshold, "max of the images",
                             note)  # fmt: skip
