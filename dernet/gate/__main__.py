"""`python -m dernet.gate`: see dernet/gate/cli.py."""

from .cli import main

raise SystemExit(main())
