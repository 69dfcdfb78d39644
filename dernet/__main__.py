"""`python -m dernet ...`: see dernet.ensemble.cli (the 'train' extra); `study-fit` is dernet.study.cli, a layer above
(it reads an export), so it is dispatched here by name rather than imported by the training CLI."""

import sys

from .cliutil import run_main

if sys.argv[1:2] == ["study-fit"]:
    raise SystemExit(run_main("dernet.study.cli", sys.argv[2:]))
raise SystemExit(run_main("dernet.ensemble.cli"))
