"""Shared fixtures: a small phantom in the release layout and its prepared dataset. No network, ever."""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports Ultralytics, timm or albumentations: nothing in the tests may wait on the network.
_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("YOLO_CONFIG_DIR", str(_ROOT / ".ultralytics"))
for _key in ("YOLO_OFFLINE", "HF_HUB_OFFLINE", "NO_ALBUMENTATIONS_UPDATE"):
    os.environ.setdefault(_key, "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

import pytest  # noqa: E402

from dernet.datasets import PrepareConfig, prepare_dataset, synthesize  # noqa: E402
from dernet.runtime_env import ensure_ultralytics_config_dir  # noqa: E402

PHANTOM_IMAGES = 24
PHANTOM_SEED = 7
PHANTOM_LONG_SIDE = 256
CACHE_LONG_SIDE = 128


ensure_ultralytics_config_dir()


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom release: 24 images at 256 px, every encoding variant represented."""
    out = tmp_path_factory.mktemp("phantom")
    synthesize(out, images=PHANTOM_IMAGES, seed=PHANTOM_SEED, long_side=PHANTOM_LONG_SIDE, progress=False)
    return out


@pytest.fixture(scope="session")
def prepared_dir(phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The phantom prepared at a 128 px cache (read-only for tests: copy it before changing anything)."""
    out = tmp_path_factory.mktemp("prepared")
    config = PrepareConfig(long_side=CACHE_LONG_SIDE, folds=3, workers=1)
    result = prepare_dataset(phantom_dir, out, config, progress=False)
    assert not result.skipped
    return out
