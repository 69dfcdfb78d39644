"""What every DICOM result object is built from: the screened source's header, the screening and how it ran."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from pydicom.dataset import Dataset

from ..deploy.screening import Screening
from .settings import DicomResultSettings
from .uids import ResultUids, result_uids

__all__ = ["ResultContext", "copy_laterality", "software_version"]


def software_version() -> str:
    try:
        return version("spine-cad")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def copy_laterality(target: Dataset, source: Dataset) -> None:
    """General Series' Laterality (type 2C: a spine is not paired, but validators cannot know the body part): the
    source's value, or present and empty."""
    if "Laterality" not in target:
        target.Laterality = source.get("Laterality") or None


@dataclass(frozen=True)
class ResultContext:
    """One screened DICOM image and everything its SR, SC and PR need."""

    source: Dataset  # the source's header (no pixel data): patient, study, series and image identity
    result: Screening  # status "ok"
    model_hashes: dict[str, str]  # role -> sha256 of the model file that ran
    conf: float  # the detector's minimum box confidence this run used
    settings: DicomResultSettings

    def uids(self, kind: str) -> ResultUids:
        r = self.result
        return result_uids(
            kind,
            str(self.source.StudyInstanceUID),
            str(self.source.SOPInstanceUID),
            self.model_hashes,
            (r.mode, r.threshold, self.conf),
        )

    @property
    def instance_number(self) -> int:
        """The source's instance number (so results sort like their images), 1 when it has none."""
        try:
            return max(1, int(self.source.get("InstanceNumber") or 1))
        except (TypeError, ValueError):
            return 1

    def box_polygons(self) -> list[np.ndarray]:
        """Each finding's box as a closed polyline (column, row) in the source's pixels; DICOM's pixel origin is the
        top left corner of the top left pixel, as for the boxes."""
        polygons = []
        for finding in self.result.findings:
            x1, y1, x2, y2 = (min(max(v, 0.0), limit) for v, limit in zip(finding.box, self._limits(), strict=True))
            polygons.append(np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], dtype=np.float32))
        return polygons

    def _limits(self) -> tuple[float, float, float, float]:
        w, h = float(self.source.Columns), float(self.source.Rows)
        return w, h, w, h

    def algorithm_parameters(self) -> list[str]:
        r = self.result
        return [
            *(f"{role} model sha256 {digest}" for role, digest in sorted(self.model_hashes.items())),
            *(f"{role} runtime {variant}" for role, variant in sorted(r.runtime.items())),
            f"mode {r.mode}",
            f"threshold {r.threshold:.6g}",
            f"detector minimum confidence {self.conf:.6g}",
        ]
