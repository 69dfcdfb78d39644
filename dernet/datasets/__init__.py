"""VinDr-SpineXR data: the release format, preparation into a training cache, study-level splits, phantoms."""

from .prepare import PrepareConfig, PrepareResult, prepare_dataset
from .synth import phantom_plan, synthesize
from .vindr import CLASS_NAMES, PAPER_ORDER

__all__ = ["CLASS_NAMES", "PAPER_ORDER", "PrepareConfig", "PrepareResult", "phantom_plan", "prepare_dataset", "synthesize"]
