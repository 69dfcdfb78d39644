"""`python -m dernet.study`: the same as `python -m dernet study-fit`."""

from ..cliutil import run_main

raise SystemExit(run_main("dernet.study.cli"))
