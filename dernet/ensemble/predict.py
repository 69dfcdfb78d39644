"""Member probabilities on a split of the prepared data, from trained checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..datasets.preprocessing import PreprocessingMismatchError, agreed_clahe
from ..errors import MissingFileError, UsageError
from ..imaging import ClaheParams
from .data import RadiographDataset
from .member import MemberClassifier

__all__ = [
    "NORMAL_CLASS",
    "abnormal_probabilities",
    "load_lesion_member",
    "load_member",
    "load_members",
    "normal_index",
    "predict_probabilities",
    "voting_classes",
]

NORMAL_CLASS = "normal"  # a multiclass ensemble's abnormality score is 1 - P(this class), matched case-blind


def load_member(checkpoint: str | Path) -> MemberClassifier:
    """A trained member in eval mode on the CPU; never fetches pretrained weights (the checkpoint has them)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such checkpoint; train the member first (make train-ensemble)")
    model = MemberClassifier.load_from_checkpoint(path, map_location="cpu", pretrained=False, pretrained_path=None)
    return model.eval()


def load_members(checkpoints: list[str | Path]) -> tuple[list[MemberClassifier], ClaheParams]:
    """The members, and the CLAHE they were all trained with (from their checkpoints). Raises naming the two
    checkpoints when members disagree, or the checkpoint that does not record its data settings."""
    models = [load_member(c) for c in checkpoints]
    for checkpoint, model in zip(checkpoints, models, strict=True):
        if model.trained_clahe is None:
            raise PreprocessingMismatchError(
                f"{checkpoint}: records no data settings (CLAHE); train it with `spine-cad train-ensemble` "
                "(python -m dernet fit)"
            )
    return models, agreed_clahe([(str(c), m.trained_clahe) for c, m in zip(checkpoints, models, strict=True)])


def load_lesion_member(checkpoint: str | Path, clahe: ClaheParams) -> MemberClassifier:
    """A multi-label lesion-type member to carry beside the vote; it must share the members' ``clahe``."""
    (model,), trained = load_members([checkpoint])
    if model.hparams.task != "multilabel":
        task = model.hparams.task
        raise UsageError(f"{checkpoint}: lesion_types needs a multilabel member (task: multilabel), not {task}")
    if trained != clahe:
        raise PreprocessingMismatchError(
            f"{checkpoint} was trained with CLAHE {trained}, the members with {clahe}; train it on the same data"
        )
    return model


def normal_index(classes: list[str] | tuple[str, ...], source: str | Path) -> int:
    """Where the 'normal' class sits among a multiclass member's ``classes``; one line naming ``source`` without it."""
    found = [i for i, name in enumerate(classes) if name.lower() == NORMAL_CLASS]
    if not found:
        raise UsageError(
            f"{source}: a multiclass ensemble scores abnormality as 1 - P(normal), but its classes {list(classes)} "
            "have no 'normal'; add a normal/ folder to the dataset, or evaluate the member alone (evaluate-types)"
        )
    return found[0]


def voting_classes(checkpoints: list[str | Path], models: list[MemberClassifier]) -> tuple[str, ...]:
    """What the members vote over: () when all are binary (normal vs abnormal), the classes when all are multiclass
    with the same classes, one of them 'normal'. Anything else is one line naming the checkpoint."""
    first = models[0].hparams
    for checkpoint, model in zip(checkpoints, models, strict=True):
        task = model.hparams.task
        if task == "multilabel":
            raise UsageError(
                f"{checkpoint}: a multilabel member; an ensemble votes on normal vs abnormal, so carry it as "
                "ensemble.yaml's lesion_types (or score it alone: python -m dernet evaluate-types)"
            )
        if task != first.task:
            raise UsageError(
                f"{checkpoint}: a {task} member beside {first.task} ones; an ensemble's members share one task"
            )
        if task == "multiclass" and list(model.hparams.classes) != list(first.classes):
            raise UsageError(
                f"{checkpoint}: classes {list(model.hparams.classes)}, but {checkpoints[0]} has "
                f"{list(first.classes)}; train the members on the same folder-per-class data"
            )
    if first.task == "binary":
        return ()
    normal_index(first.classes, checkpoints[0])
    return tuple(first.classes)


def abnormal_probabilities(probabilities: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """P(abnormal) [N] from a member's probabilities: as they are (binary, ``classes`` empty), or 1 - P(normal)
    (multiclass softmax [N, K])."""
    if not classes:
        return probabilities
    return 1.0 - probabilities[:, normal_index(classes, "the members")]


@torch.inference_mode()
def predict_probabilities(
    model: MemberClassifier,
    data_dir: str | Path,
    rows: pd.DataFrame,
    clahe: ClaheParams,
    batch_size: int = 32,
    num_workers: int = 0,
    desc: str | None = None,
) -> np.ndarray:
    """The member's probabilities for each row, at its own input size, without augmentation: P(abnormal) [N]
    (binary), or [N, classes] (lesion types)."""
    dataset = RadiographDataset(Path(data_dir), rows, model.hparams.image_size, clahe, augment=None)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    probs = [model.probabilities(model(images)).numpy() for images, _ in tqdm(loader, desc=desc, disable=desc is None)]
    return np.concatenate(probs) if probs else np.zeros((0,) if model.outputs == 1 else (0, model.outputs))
