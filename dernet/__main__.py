"""`python -m dernet ...`: see dernet.ensemble.cli (the 'train' extra)."""

from .cliutil import run_main

raise SystemExit(run_main("dernet.ensemble.cli"))
