"""`python -m dernet.datasets {synth,prepare,samples}`: see dernet/datasets/cli.py (the 'train' extra)."""

from ..cliutil import run_main

raise SystemExit(run_main("dernet.datasets.cli"))
