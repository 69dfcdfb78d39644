"""`python -m benchmarks` (`make bench`): see benchmarks/run.py."""

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: the bench logs its own steps

from .run import main  # noqa: E402

raise SystemExit(main())
