"""Voting weights and the Youden operating point, chosen on validation predictions; saved as ensemble.json."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from ..datasets.tables import read_table, split_rows
from ..errors import UsageError
from ..imaging import ClaheParams
from ..metrics import youden_threshold
from ..metrics.types import multilabel_thresholds
from .ensemble_config import EnsembleConfig
from .predict import (
    abnormal_probabilities,
    load_lesion_member,
    load_members,
    predict_probabilities,
    voting_classes,
)
from .record import ChosenOn, EnsembleRecord, LesionTypesRecord, MemberRecord
from .tasks import task_targets
from .voting import PAPER_WEIGHTS_BY_MEMBER, combine, fit_weights

__all__ = ["fit_ensemble", "member_probabilities"]


def member_probabilities(
    config: EnsembleConfig, split: str, val_fold: int | None = None
) -> tuple[np.ndarray, Any, ClaheParams]:
    """P(abnormal) [N, M] of every member on ``split``, the rows they belong to, and the CLAHE the members were
    trained with (each member sees its training preprocessing). Multiclass members give 1 - P(normal)."""
    probs, rows, clahe, classes = _member_outputs(config, split, val_fold)
    return np.stack([abnormal_probabilities(p, classes) for p in probs], axis=1), rows, clahe


def _member_outputs(
    config: EnsembleConfig, split: str, val_fold: int | None = None
) -> tuple[list[np.ndarray], Any, ClaheParams, tuple[str, ...]]:
    """Each member's probabilities ([N] binary, [N, K] multiclass), the rows, the CLAHE and the classes voted over."""
    rows = split_rows(read_table(config.data_dir), split, val_fold)
    checkpoints = list(config.members.values())
    models, clahe = load_members(checkpoints)
    classes = voting_classes(checkpoints, models)
    outputs = [
        predict_probabilities(model, config.data_dir, rows, clahe, config.batch_size, desc=f"{name} on {split}")
        for name, model in zip(config.members, models, strict=True)
    ]
    return outputs, rows, clahe, classes


def fit_ensemble(config: EnsembleConfig) -> EnsembleRecord:
    """Choose weights and thresholds on ``config.fit_split`` (never test) and write ``config.output``."""
    outputs, rows, clahe, classes = _member_outputs(config, config.fit_split, config.val_fold)
    probs = np.stack([abnormal_probabilities(p, classes) for p in outputs], axis=1)
    labels = rows.abnormal.to_numpy().astype(int)
    if len(np.unique(labels)) < 2:
        raise UsageError(f"the {config.fit_split} split needs normal and abnormal images to choose a threshold")
    if config.weights == "fit":
        weights, _ = fit_weights(probs, labels, config.weight_step, config.combine)
        source = f"fitted on {config.fit_split} (best AUROC on a {config.weight_step} simplex grid)"
    else:
        paper = [PAPER_WEIGHTS_BY_MEMBER[name] for name in config.members] if config.weights == "paper" else None
        weights = np.array(paper or config.weights, dtype=float)
        weights = weights / weights.sum()
        source = "DERNet paper" if config.weights == "paper" else "config"
    ensemble = combine(probs, weights, config.combine)
    result = EnsembleRecord(
        members=tuple(
            MemberRecord(
                name=name,
                checkpoint=str(checkpoint),
                threshold=youden_threshold(labels, probs[:, m]),
                auroc=float(roc_auc_score(labels, probs[:, m])),
            )
            for m, (name, checkpoint) in enumerate(config.members.items())
        ),
        weights=tuple(round(float(w), 6) for w in weights),
        weights_source=source,
        combine=config.combine,
        threshold=youden_threshold(labels, ensemble),
        auroc=float(roc_auc_score(labels, ensemble)),
        chosen_on=ChosenOn(
            split=config.fit_split,
            val_fold=config.val_fold,
            images=int(len(rows)),
            abnormal=int(labels.sum()),
            data_dir=str(config.data_dir),
        ),
        clahe_clip_limit=clahe.clip_limit,
        clahe_tile_grid=clahe.tile_grid,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        lesion_types=_lesion_types(config, rows, clahe) if config.lesion_types else None,
        classes=classes,
    )
    result.save(config.output)
    return result


def _lesion_types(config: EnsembleConfig, rows: Any, clahe: ClaheParams) -> LesionTypesRecord:
    """The lesion-type member's per-class thresholds, chosen on the same split as the vote's (Youden)."""
    checkpoint = str(config.lesion_types)
    model = load_lesion_member(checkpoint, clahe)
    classes = list(model.hparams.classes)
    probs = predict_probabilities(model, config.data_dir, rows, clahe, config.batch_size, desc="lesion types")
    thresholds = multilabel_thresholds(task_targets(rows, "multilabel", classes), probs)
    return LesionTypesRecord(checkpoint, tuple(classes), tuple(thresholds))
