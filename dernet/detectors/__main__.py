"""`python -m dernet.detectors ...`: see dernet.detectors.cli (the 'train' extra)."""

from ..cliutil import run_main

raise SystemExit(run_main("dernet.detectors.cli"))
