"""Reading DICOM: transfer syntaxes (pydicom's bundled files), photometric orientation, rejections."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset

from dernet.datasets.phantom import render_phantom, sample_spec
from dernet.datasets.phantom_dicom import Encoding, write_phantom_dicom
from dernet.imaging import ImageReadError, load_windowed, read_image, resize_long_side, to_uint8


def bundled(name: str) -> str:
    path = get_testdata_file(name, download=False)  # the default would download from GitHub
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    return path


# Lossless encodings of the same MR image: every one must decode to exactly the same pixels.
LOSSLESS_TWINS = [
    "MR_small_implicit.dcm",  # Implicit VR Little Endian
    "MR_small_bigendian.dcm",  # Explicit VR Big Endian
    "MR_small_RLE.dcm",  # RLE Lossless
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless
    "MR_small_jp2klossless.dcm",  # JPEG 2000 Lossless
]


@pytest.mark.parametrize("name", LOSSLESS_TWINS)
def test_lossless_syntaxes_decode_like_the_uncompressed_original(name: str) -> None:
    reference, _ = read_image(bundled("MR_small.dcm"))
    image, meta = read_image(bundled(name))
    assert meta.transfer_syntax == str(pydicom.dcmread(bundled(name)).file_meta.TransferSyntaxUID)
    np.testing.assert_allclose(image, reference, atol=1e-6)


@pytest.mark.parametrize(
    "name",
    [
        "image_dfl.dcm",  # Deflated Explicit VR Little Endian
        "JPGExtended.dcm",  # JPEG Extended 12-bit
        "JPEGLSNearLossless_16.dcm",  # JPEG-LS near-lossless
        "JPEG2000.dcm",  # JPEG 2000 (lossy)
        "693_J2KI.dcm",  # JPEG 2000 (lossy), 14 bits
        "CT_small.dcm",  # signed, rescale slope/intercept
    ],
)
def test_other_syntaxes_decode_to_a_full_range_image(name: str) -> None:
    image, meta = read_image(bundled(name))
    assert image.dtype == np.float32 and image.ndim == 2
    assert image.shape == (meta.height, meta.width)
    assert 0.0 <= image.min() < 0.1 and 0.9 < image.max() <= 1.0
    assert image.std() > 0.05


@pytest.mark.parametrize(
    "name", ["SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_jpeg_gdcm.dcm", "examples_palette.dcm", "SC_rgb_rle.dcm"]
)
def test_colour_dicom_becomes_grayscale_with_a_note(name: str) -> None:
    """JPEG baseline (YBR), JPEG lossless (RGB), palette colour and RLE colour files."""
    image, meta = read_image(bundled(name))
    assert any("converted to grayscale" in note for note in meta.notes), meta.notes
    assert image.ndim == 2 and image.shape == (meta.height, meta.width)
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.01


@pytest.mark.parametrize(
    ("name", "reason", "kind"),
    [
        ("test-SR.dcm", "without pixel data", "no_pixel_data"),
        ("rtdose.dcm", "multi-frame DICOM \\(15 frames\\)", "multi_frame"),
        ("MR_truncated.dcm", "truncated pixel data", "corrupt"),
    ],
)
def test_bundled_files_that_are_not_radiographs_are_rejected(name: str, reason: str, kind: str) -> None:
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(bundled(name))
    assert name in str(info.value) and "\n" not in str(info.value)
    assert info.value.kind == kind


def test_rejections_name_the_file_and_the_reason(tmp_path: Path) -> None:
    text = tmp_path / "notes.dcm"
    text.write_text("not an image at all")
    with pytest.raises(ImageReadError, match=r"notes\.dcm: not a DICOM, PNG or JPEG file") as info:
        read_image(text)
    assert info.value.kind == "not_an_image"
    with pytest.raises(ImageReadError, match=r"missing\.dicom: no such file") as info:
        read_image(tmp_path / "missing.dicom")
    assert info.value.kind == "not_found"
    with pytest.raises(ImageReadError, match="is a folder") as info:
        read_image(tmp_path)
    assert info.value.kind == "unreadable"


PHANTOM_LESIONS = [1, 4]


def _phantom_dicom(tmp_path: Path, name: str, encoding: Encoding, long_side: int = 192) -> Path:
    image, _ = render_phantom(sample_spec(11, long_side, PHANTOM_LESIONS))
    path = tmp_path / name
    write_phantom_dicom(
        path,
        image,
        encoding,
        {"study_id": "1.2.3", "series_id": "1.2.3.4", "image_id": "1.2.3.4.5"},
        "00001",
        np.random.default_rng(3),
    )
    return path


def test_dicom_is_recognised_by_magic_not_by_extension(tmp_path: Path) -> None:
    path = _phantom_dicom(tmp_path, "no_extension", Encoding())
    image, meta = read_image(path)
    assert meta.format == "dicom" and image.shape == (meta.height, meta.width)


@pytest.mark.parametrize("window", [True, False])
@pytest.mark.parametrize("rescale", [True, False])
def test_monochrome1_twin_reads_like_monochrome2(tmp_path: Path, window: bool, rescale: bool) -> None:
    base = Encoding(photometric="MONOCHROME2", bits_stored=12, rescale=rescale, window=window)
    m2, _ = read_image(_phantom_dicom(tmp_path, "m2.dicom", base))
    m1, meta = read_image(_phantom_dicom(tmp_path, "m1.dicom", replace(base, photometric="MONOCHROME1")))
    assert meta.photometric == "MONOCHROME1"
    np.testing.assert_allclose(m1, m2, atol=2e-3)


@pytest.mark.parametrize(
    "encoding",
    [
        Encoding(photometric="MONOCHROME1", bits_stored=16, syntax="rle"),
        Encoding(photometric="MONOCHROME2", bits_stored=16, rescale=True, window=False, syntax="j2k"),
        Encoding(photometric="MONOCHROME1", bits_stored=12, rescale=True, syntax="j2k", modality=False),
        Encoding(photometric="MONOCHROME2", bits_stored=12, window=False, syntax="explicit"),
    ],
    ids=str,
)
def test_every_phantom_variant_reads_bone_bright(tmp_path: Path, encoding: Encoding) -> None:
    spec = sample_spec(11, 192, PHANTOM_LESIONS)
    reference, _ = render_phantom(spec)
    image, _ = read_image(_phantom_dicom(tmp_path, "variant.dicom", encoding))
    body = spec.bodies[2]
    centre = image[int(body.cy) - 3 : int(body.cy) + 3, int(body.cx) - 3 : int(body.cx) + 3].mean()
    corner = image[:8, :8].mean()
    assert centre > corner + 0.15  # bone is bright whatever the encoding
    assert np.corrcoef(image.ravel(), reference.ravel())[0, 1] > 0.99


def test_reduced_jpeg2000_decode_matches_full_decode_and_resize(tmp_path: Path) -> None:
    path = _phantom_dicom(tmp_path, "j2k.dicom", Encoding(syntax="j2k", bits_stored=12, modality=False), long_side=640)
    fast, meta = load_windowed(path, 256)
    assert meta.reduction == 1  # 640 -> 320 >= 256: one resolution level skipped
    full, full_meta = read_image(path)
    assert full_meta.reduction == 0
    reference = to_uint8(resize_long_side(full, 256, (meta.width, meta.height)))
    assert fast.shape == reference.shape
    difference = np.abs(fast.astype(int) - reference.astype(int))
    # The wavelet low-pass and an area resize differ at sharp edges and in noise: about one grey level on
    # average (measured 1.0-1.5), larger only along the phantom's 1-px cortical edges.
    assert difference.mean() < 2.0 and np.percentile(difference, 99) <= 20
    assert np.corrcoef(fast.ravel(), reference.ravel())[0, 1] > 0.99


def test_non_jpeg2000_files_decode_fully(tmp_path: Path) -> None:
    path = _phantom_dicom(tmp_path, "rle.dicom", Encoding(syntax="rle"), long_side=640)
    _, meta = load_windowed(path, 128)
    assert meta.reduction == 0


def test_dicom_without_rows_is_rejected(tmp_path: Path) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = "1.2.3"
    ds.BitsAllocated = 16
    ds.PixelData = b"\x00" * 16
    path = tmp_path / "broken.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ImageReadError, match="without Rows"):
        read_image(path)


def test_metadata_carries_no_patient_identifiers(tmp_path: Path) -> None:
    _, meta = read_image(_phantom_dicom(tmp_path, "p.dicom", Encoding()))
    text = repr(meta.to_dict())
    assert "PHANTOM" not in text and "PID-" not in text and "1970" not in text
