"""`python -m dernet.explain`: see dernet/explain/cli.py."""

from .cli import main

raise SystemExit(main())
