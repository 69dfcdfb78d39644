"""`python -m dernet.explain`: see dernet/explain/cli.py (the 'train' extra)."""

from ..cliutil import run_main

raise SystemExit(run_main("dernet.explain.cli"))
