"""`python -m dernet.node`: see dernet/node/cli.py."""

from ..cliutil import run_main

raise SystemExit(run_main("dernet.node.cli"))
