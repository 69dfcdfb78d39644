"""Evaluation of the exported models through the gate's core, per gate mode (`make evaluate`, `python -m
dernet.evaluation`), and scoring of gate reports against release annotations. Needs the metrics stack (the
'train' extra: pandas, scikit-learn, pycocotools, matplotlib), which the gate itself does not; names are imported
on first use (dernet.lazy).
"""

from ..lazy import lazy_exports

_NAMES = ("FUSION_NAME", "ScoredImage", "evaluate_exported", "format_result", "fused_score", "score_images",
          "score_reports")  # fmt: skip
__getattr__, __all__ = lazy_exports(__name__, dict.fromkeys(_NAMES, "exported"))
