"""DERNet ensemble: members (timm backbones as LightningModules), data, soft voting, fitting, evaluation."""

from .data import RadiographDataModule, RadiographDataset
from .member import MemberClassifier
from .voting import PAPER_WEIGHTS, combine, fit_weights

__all__ = [
    "PAPER_WEIGHTS",
    "MemberClassifier",
    "RadiographDataModule",
    "RadiographDataset",
    "combine",
    "fit_weights",
]
