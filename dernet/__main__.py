"""`python -m dernet ...`: see dernet.ensemble.cli."""

from .ensemble.cli import main

raise SystemExit(main())
