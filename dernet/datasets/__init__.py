"""VinDr-SpineXR data: the release format, preparation into a training cache, study-level splits, phantoms.

Names are imported on first use (dernet.lazy), so that light submodules (the prepare worker) do not pull in pandas
and scikit-learn.
"""

from ..lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "CLASS_NAMES": "vindr",
        "PAPER_ORDER": "vindr",
        "PrepareConfig": "prepare",
        "PrepareResult": "prepare",
        "prepare_dataset": "prepare",
        "phantom_plan": "synth",
        "read_table": "tables",
        "split_rows": "tables",
        "synthesize": "synth",
    },
)
