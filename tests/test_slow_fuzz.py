"""The long fuzz run: 20,000 seeded mutations through the reader in a fresh process (make test-slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_twenty_thousand_mutations_keep_the_contract(phantom_dir: Path) -> None:
    out = ROOT / "runs" / "test-artifacts" / "fuzz_slow.json"
    command = [sys.executable, "-m", "tests.fuzzing", "--count", "20000", "--seed", "2026",
               "--phantoms", str(phantom_dir / "train_images"), "--out", str(out)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["broken"] == [], result["broken"][:10]
    assert sum(result["outcomes"].values()) == 20000
    assert result["slowest_s"] < 5 and result["peak_rss_growth_mb"] < 1024
