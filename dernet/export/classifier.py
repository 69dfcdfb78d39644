"""The DERNet ensemble as one ONNX graph: three members and the weighted vote, dynamic batch, verified.

Input ``image`` [B, 1, S, S] in [0, 1] (the classifier canvas / 255); outputs ``probability`` [B] (the ensemble)
and ``member_probabilities`` [B, M]; with multiclass members (a folder-per-class dataset) ``class_probabilities``
[B, K], the weighted mean of their softmax, while ``probability`` votes on each member's 1 - P(normal); with a
lesion-type member (ensemble.yaml ``lesion_types``) ``lesion_probabilities`` [B, 7]. Members whose training input
size differs from S resize inside the graph (bilinear): bit-identical to training only for members trained at S,
which the default configs all are; the export warns about any other (:class:`ResizedMemberWarning`).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..datasets.cached import sample_inputs
from ..datasets.preprocessing import PreprocessingMismatchError, read_data_preprocessing
from ..datasets.tables import read_summary
from ..deploy.manifest import ClassifierSpec, Preprocessing, install_model_file, update_manifest
from ..ensemble.predict import load_lesion_member, load_members, normal_index
from ..ensemble.record import load_ensemble
from ..imaging import classifier_array
from ..records import record_dict
from .verify import ExportVerificationError, check_onnx, ort_session

__all__ = ["EnsembleGraph", "ResizedMemberWarning", "export_classifier", "warn_about_resized_members"]

OPSET = 17
OUTPUTS = ("probability", "member_probabilities")  # then class_probabilities, lesion_probabilities when present
TOLERANCE = 1e-4  # probabilities, ONNX Runtime vs PyTorch


class ResizedMemberWarning(UserWarning):
    """A member trained at another input size than the graph's: it sees the input resized, not CLAHE'd at its size."""


def warn_about_resized_members(source: Path, sizes: dict[str, int]) -> None:
    """Warn once, naming the members whose training size differs from the graph's input (the largest): their
    exported probabilities differ from the ones the ensemble's weights and threshold were chosen on."""
    input_size = max(sizes.values())
    resized = [f"{name} ({size} px)" for name, size in sizes.items() if size != input_size]
    if resized:
        warnings.warn(
            f"{source}: {', '.join(resized)} will get the {input_size} px input resized inside the graph, not the "
            "input it trained on, so its exported probabilities differ from training's; train every member at one "
            "model.image_size",
            ResizedMemberWarning,
            stacklevel=3,
        )


class EnsembleGraph(nn.Module):
    """Members + weighted soft voting in one module, so the exported graph is the whole classifier. Multiclass
    members (``normal_index`` set: where 'normal' is among their K logits) vote with logit(1 - P(normal)) and
    add the weighted mean of their softmax; a ``lesion`` member (multi-label) adds its per-class probabilities."""

    def __init__(
        self,
        members: list[nn.Module],
        sizes: list[int],
        weights: list[float],
        combine: str,
        lesion: nn.Module | None = None,
        lesion_size: int | None = None,
        normal_index: int | None = None,
    ) -> None:
        super().__init__()
        if combine not in ("probability", "logit"):
            raise ValueError(f"combine must be 'probability' or 'logit', got '{combine}'")
        self.members = nn.ModuleList(members)
        self.lesion, self.lesion_size = lesion, lesion_size
        self.sizes, self.combine = list(sizes), combine
        self.input_size = max([*sizes, lesion_size or 0])
        w = torch.tensor(weights, dtype=torch.float32)
        self.register_buffer("weights", w / w.sum())
        self.normal_index = normal_index

    def _at(self, images: torch.Tensor, size: int) -> torch.Tensor:
        if size == self.input_size:
            return images
        return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = [member(self._at(images, size)) for member, size in zip(self.members, self.sizes, strict=True)]
        if self.normal_index is None:
            member_logits = torch.stack(logits, dim=1)
        else:
            member_logits = torch.stack([self._abnormal_logit(x) for x in logits], dim=1)
        member_probs = torch.sigmoid(member_logits)
        if self.combine == "probability":
            outputs = (member_probs @ self.weights, member_probs)
        else:
            outputs = (torch.sigmoid(member_logits @ self.weights), member_probs)
        if self.normal_index is not None:
            softmax = torch.stack([torch.softmax(x, dim=1) for x in logits], dim=2)  # [B, K, M]
            outputs = (*outputs, softmax @ self.weights)
        if self.lesion is None:
            return outputs
        return (*outputs, torch.sigmoid(self.lesion(self._at(images, self.lesion_size))))

    def _abnormal_logit(self, logits: torch.Tensor) -> torch.Tensor:
        """logit(1 - P(normal)) of softmax(logits) [B, K], computed stably: logsumexp(the others) - the normal one."""
        k = self.normal_index
        others = torch.cat([logits[:, :k], logits[:, k + 1 :]], dim=1)
        return torch.logsumexp(others, dim=1) - logits[:, k]


def export_classifier(
    ensemble_json: str | Path,
    data_dir: str | Path,
    out_dir: str | Path = "export",
    samples: int = 4,
) -> ClassifierSpec:
    """Export ``runs/ensemble/ensemble.json``'s members and vote to ``out_dir/dernet.onnx``; update the manifest.

    Verification: ``onnx.checker``, then ONNX Runtime vs PyTorch on ``samples`` prepared validation images (and a
    batch of them, to exercise the dynamic batch axis). Raises :class:`ExportVerificationError` on a mismatch,
    leaving any earlier export in place.
    """
    ensemble_json, data_dir, out_dir = Path(ensemble_json), Path(data_dir), Path(out_dir)
    saved = load_ensemble(ensemble_json)
    members, clahe = load_members([m.checkpoint for m in saved.members])  # what they trained with, all agreeing
    if clahe != saved.clahe:
        raise PreprocessingMismatchError(
            f"{ensemble_json} records CLAHE clip limit {saved.clahe_clip_limit:g}, tile grid {saved.clahe_tile_grid} "
            f"but {saved.members[0].checkpoint} was trained with clip limit {clahe.clip_limit:g}, tile grid "
            f"{clahe.tile_grid}; fit the ensemble again (spine-cad fit-ensemble)"
        )
    sizes = [int(m.hparams.image_size) for m in members]
    lesion = load_lesion_member(saved.lesion_types.checkpoint, clahe) if saved.lesion_types else None
    lesion_size = int(lesion.hparams.image_size) if lesion is not None else None
    warn_about_resized_members(
        ensemble_json, dict(zip(saved.names, sizes, strict=True)) | ({"lesion_types": lesion_size} if lesion else {})
    )
    normal = normal_index(saved.classes, ensemble_json) if saved.classes else None
    graph = EnsembleGraph(members, sizes, list(saved.weights), saved.combine, lesion, lesion_size, normal).eval()
    outputs = OUTPUTS + (("class_probabilities",) if saved.classes else ()) + (
        ("lesion_probabilities",) if lesion is not None else ()
    )
    data = read_data_preprocessing(data_dir)
    summary = read_summary(data_dir)
    inputs = np.concatenate(
        sample_inputs(data_dir, "val", samples, lambda cached: classifier_array(cached, graph.input_size, clahe))
    )

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "dernet.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice; it is the faster path
            torch.onnx.export(
                graph,
                (torch.from_numpy(inputs[:1]),),
                str(tmp_path),
                dynamo=False,
                opset_version=OPSET,
                input_names=["image"],
                output_names=list(outputs),
                dynamic_axes={name: {0: "batch"} for name in ("image", *outputs)},
            )
        check_onnx(tmp_path)
        worst = _verify(graph, tmp_path, inputs, outputs)
        out_dir.mkdir(parents=True, exist_ok=True)
        digest = install_model_file(tmp_path, out_dir / "dernet.onnx")

    spec = ClassifierSpec(
        file="dernet.onnx",
        sha256=digest,
        input_size=graph.input_size,
        members=tuple(saved.names),
        member_sizes=tuple(sizes),
        member_thresholds=tuple(m.threshold for m in saved.members),
        weights=tuple(saved.weights),
        combine=saved.combine,
        threshold=saved.threshold,
        chosen_on=record_dict(saved.chosen_on),
        outputs=outputs,
        verified_max_abs_diff=worst,
        classes=saved.classes,
        lesion_classes=saved.lesion_types.classes if saved.lesion_types else (),
        lesion_thresholds=saved.lesion_types.thresholds if saved.lesion_types else (),
    )
    update_manifest(
        out_dir,
        spec,
        Preprocessing(data.cache_long_side, clahe.clip_limit, clahe.tile_grid),
        provenance={
            "ensemble": str(ensemble_json),
            "data": str(data_dir),
            "data_summary": {k: summary.get(k) for k in ("source", "created", "splits")},
        },
        trained_with=saved.members[0].checkpoint,
    )
    return spec


@torch.inference_mode()
def _verify(graph: EnsembleGraph, path: Path, inputs: np.ndarray, outputs: tuple[str, ...] = ("probability",
            "member_probabilities")) -> float:  # fmt: skip
    session = ort_session(path)
    worst = 0.0
    for batch in [inputs[i : i + 1] for i in range(len(inputs))] + [inputs]:
        expected = [t.numpy() for t in graph(torch.from_numpy(batch))]
        got = session.run(None, {"image": batch})
        for name, e, g in zip(outputs, expected, got, strict=True):
            if e.shape != g.shape:
                raise ExportVerificationError(f"{path}: {name} has shape {g.shape} in ONNX Runtime, {e.shape} in torch")
            worst = max(worst, float(np.abs(e - g).max()))
    if worst > TOLERANCE:
        raise ExportVerificationError(
            f"{path}: ONNX Runtime and PyTorch probabilities differ by {worst:.2e} (> {TOLERANCE:g}); not exported"
        )
    return worst
