"""What a decoder bug could do, as module-level functions a decoding worker can import (tests/test_reliability.py)."""

from __future__ import annotations

import os
import time

import numpy as np


def sleep_forever() -> None:
    time.sleep(3600)


def crash() -> None:
    os.abort()  # as a native decoder's segmentation fault would end the process


def allocate_gigabytes() -> int:
    return int(np.ones(4 << 30, dtype=np.uint8).sum())
