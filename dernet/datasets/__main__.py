"""`python -m dernet.datasets {synth,prepare}`."""

from .cli import main

raise SystemExit(main())
