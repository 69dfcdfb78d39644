"""`python -m dernet.gate`: see dernet/gate/cli.py."""

from ..cliutil import run_main

raise SystemExit(run_main("dernet.gate.cli"))
