"""Heatmaps for the whole ensemble: one per member and their combination by the voting weights.

Each member sees exactly its training input (the windowed image -> :func:`model_input` at its size -> the black
square canvas); member maps are resized to the largest member's canvas and combined there with the normalized
voting weights. :meth:`Explanation.on_image` maps a canvas heatmap back to the image's geometry through the same
:class:`dernet.imaging.Letterbox` that places the image on the canvas.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..datasets.preprocessing import PREPROCESSING_FILE, read_data_preprocessing
from ..deploy.manifest import Manifest
from ..ensemble.predict import load_members
from ..ensemble.record import EnsembleRecord, MemberRecord, load_ensemble
from ..ensemble.voting import combine
from ..errors import MissingFileError, UsageError
from ..imaging import (
    ImageMeta,
    Letterbox,
    Source,
    classifier_array,
    letterbox,
    load_windowed,
    model_input,
)
from .cam import METHODS, member_heatmap

__all__ = ["Explainer", "Explanation", "combine_heatmaps", "explainer_for_export", "find_ensemble_json"]


@dataclass
class Explanation:
    """Heatmaps of one image on the common classifier canvas (``size`` x ``size``), with the probabilities."""

    member_heatmaps: dict[str, np.ndarray]
    heatmap: np.ndarray  # the weighted combination
    member_probabilities: dict[str, float]
    probability: float
    threshold: float
    weights: dict[str, float]
    method: str
    canvas: np.ndarray  # the preprocessed radiograph (uint8) the common canvas holds
    geometry: Letterbox
    image_size: tuple[int, int]  # (width, height) of the image inside the canvas

    @property
    def abnormal(self) -> bool:
        return self.probability >= self.threshold

    def on_image(self, canvas_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``canvas_map`` (a heatmap or the canvas) cropped to the image and resized to (width, height) ``size``:
        the original image's geometry when ``size`` is its width and height."""
        cropped = self.geometry.crop(canvas_map, self.image_size)
        return cv2.resize(cropped, size, interpolation=cv2.INTER_LINEAR)


def combine_heatmaps(heatmaps: list[np.ndarray], weights: list[float] | np.ndarray) -> np.ndarray:
    """The weighted mean of same-sized heatmaps (weights normalized to sum to 1), as the vote combines members."""
    w = np.asarray(weights, dtype=np.float64)
    if len(heatmaps) != len(w) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need one non-negative weight per heatmap with a positive sum, got {list(w)}")
    stacked = np.stack([np.asarray(h, dtype=np.float64) for h in heatmaps])
    return np.tensordot(w / w.sum(), stacked, axes=1).astype(np.float32)


def find_ensemble_json(checkpoints: str | Path) -> Path:
    """``ensemble.json`` given itself or the folder holding it (``runs/ensemble`` after `make train-ensemble`)."""
    path = Path(checkpoints)
    found = path / "ensemble.json" if path.is_dir() else path
    if not found.is_file():
        raise MissingFileError(
            f"{found}: no fitted ensemble; run `make train-ensemble` or pass --checkpoints DIR holding ensemble.json"
        )
    return found


class Explainer:
    """The ensemble's PyTorch members loaded once from ``ensemble.json``; :meth:`explain` per image."""

    def __init__(
        self, checkpoints: str | Path = "runs/ensemble", method: str = "gradcam", long_side: int | None = None
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got '{method}'")
        self.ensemble_json = find_ensemble_json(checkpoints)
        saved = load_ensemble(self.ensemble_json)
        self.names = saved.names
        self.members, self.clahe = load_members([_checkpoint(m, self.ensemble_json.parent) for m in saved.members])
        self.sizes = [int(m.hparams.image_size) for m in self.members]
        weights = np.asarray(saved.weights, dtype=np.float64)
        self.weights = weights / weights.sum()
        self.combine_mode = saved.combine
        self.threshold = saved.threshold
        self.method = method
        self.long_side = long_side or _cache_long_side(saved)

    @property
    def size(self) -> int:
        return max(self.sizes)

    def read(self, source: Source, name: str | None = None) -> tuple[np.ndarray, ImageMeta]:
        """The windowed 8-bit image as the trainers' cache holds it, and its metadata. Raises ImageReadError."""
        if self.long_side is None:
            raise UsageError(
                f"{self.ensemble_json}: the prepared cache it trained on is not on disk, so its long side is unknown; "
                "pass --long-side N"
            )
        return load_windowed(source, self.long_side, name=name)

    def explain(self, source: Source, name: str | None = None) -> Explanation:
        """:meth:`read`, then :meth:`explain_windowed`."""
        return self.explain_windowed(self.read(source, name)[0])

    def explain_windowed(self, windowed: np.ndarray) -> Explanation:
        """Heatmaps of a windowed 8-bit image (what :func:`dernet.imaging.load_windowed` returns)."""
        maps, probs = [], []
        for member, size in zip(self.members, self.sizes, strict=True):
            tensor = torch.from_numpy(classifier_array(windowed, size, self.clahe))  # the gate's own input
            heatmap, probability = member_heatmap(member, tensor, self.method)
            if size != self.size:
                heatmap = cv2.resize(heatmap, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
            maps.append(heatmap)
            probs.append(probability)
        image = model_input(windowed, self.size, self.clahe)
        canvas, geometry = letterbox(image, self.size, pad_value=0)  # classifier_canvas, with its geometry
        return Explanation(
            member_heatmaps=dict(zip(self.names, maps, strict=True)),
            heatmap=combine_heatmaps(maps, self.weights),
            member_probabilities=dict(zip(self.names, probs, strict=True)),
            probability=float(combine(np.array([probs]), self.weights, self.combine_mode)[0]),
            threshold=self.threshold,
            weights=dict(zip(self.names, self.weights.tolist(), strict=True)),
            method=self.method,
            canvas=canvas,
            geometry=geometry,
            image_size=(image.shape[1], image.shape[0]),
        )

    def heatmap_on_windowed(self, windowed: np.ndarray) -> np.ndarray:
        """The ensemble heatmap at the windowed image's size: the original's geometry, as the gate's overlay."""
        explanation = self.explain_windowed(windowed)
        return explanation.on_image(explanation.heatmap, (windowed.shape[1], windowed.shape[0]))


def explainer_for_export(checkpoints: str | Path, manifest: Manifest) -> Explainer:
    """The explainer on the checkpoints behind an export, reading images at the export's cache long side: what the
    gate's ``--explain`` and a web server started with checkpoints use (they import this module only then)."""
    return Explainer(checkpoints, long_side=manifest.preprocessing.cache_long_side)


def _checkpoint(member: MemberRecord, folder: Path) -> Path:
    """The member's checkpoint as recorded, or under the ensemble's folder when the runs folder has moved."""
    recorded = Path(member.checkpoint)
    if recorded.is_file():
        return recorded
    beside = folder / member.name / "checkpoints" / recorded.name
    return beside if beside.is_file() else recorded  # load_member names the missing file


def _cache_long_side(saved: EnsembleRecord) -> int | None:
    """The long side of the prepared cache the members trained on (its preprocessing.json), if that is on disk."""
    data_dir = saved.chosen_on.data_dir
    if not data_dir or not (Path(data_dir) / PREPROCESSING_FILE).is_file():
        return None
    return read_data_preprocessing(data_dir).cache_long_side
