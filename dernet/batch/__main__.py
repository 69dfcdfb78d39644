"""`python -m dernet.batch`: see dernet/batch/cli.py."""

from ..cliutil import run_main

raise SystemExit(run_main("dernet.batch.cli"))
