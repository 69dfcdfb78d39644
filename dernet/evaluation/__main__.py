"""`python -m dernet.evaluation`: see dernet/evaluation/cli.py."""

from ..cliutil import run_main

raise SystemExit(run_main("dernet.evaluation.cli"))
