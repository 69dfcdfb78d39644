"""Release-sized phantoms (2560 px, JPEG 2000 Lossless, 12-bit) through the reduced reader and prepare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from dernet.datasets import PrepareConfig, prepare_dataset, synthesize
from dernet.imaging import load_windowed, read_image, resize_long_side, to_uint8


@pytest.mark.slow
def test_release_like_phantom_prepares_with_reduced_decoding(tmp_path: Path) -> None:
    source = tmp_path / "release"
    synthesize(source, images=4, seed=5, long_side=2560, release_like=True, progress=False)
    files = sorted(source.rglob("*.dicom"))
    header = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert header.file_meta.TransferSyntaxUID.name == "JPEG 2000 Image Compression (Lossless Only)"
    assert (header.BitsStored, header.PhotometricInterpretation, "Modality" in header) == (
        12,
        "MONOCHROME2",
        False,
    )

    fast, meta = load_windowed(files[0], 1024)
    assert meta.reduction >= 1 and max(meta.width, meta.height) == 2560
    full, _ = read_image(files[0])
    reference = to_uint8(resize_long_side(full, 1024, (meta.width, meta.height)))
    difference = np.abs(fast.astype(int) - reference.astype(int))
    assert difference.mean() < 2.0 and np.corrcoef(fast.ravel(), reference.ravel())[0, 1] > 0.99

    result = prepare_dataset(
        source, tmp_path / "prepared", PrepareConfig(long_side=1024, folds=2, workers=2), progress=False
    )
    assert not result.skipped
    assert len(list((tmp_path / "prepared" / "images").rglob("*.png"))) == 4
