"""PNG/JPEG reading, the model-ready pipeline, CLAHE, resizing and box mapping."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from dernet.imaging import (
    ClaheParams,
    ImageReadError,
    apply_clahe,
    letterbox,
    load_windowed,
    model_input,
    read_image,
    resize_long_side,
    resized_size,
    scale_boxes,
)


@pytest.fixture()
def gradient() -> np.ndarray:
    y, x = np.mgrid[0:120, 0:90]
    return ((x + 2 * y) / (89 + 238) * 255).astype(np.uint8)


def test_png_8_and_16_bit_and_jpeg_read_alike(tmp_path: Path, gradient: np.ndarray) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), gradient)
    cv2.imwrite(str(tmp_path / "b.png"), gradient.astype(np.uint16) * 16)  # 12-bit data in a 16-bit PNG
    cv2.imwrite(str(tmp_path / "c.jpg"), gradient, [cv2.IMWRITE_JPEG_QUALITY, 98])
    eight, meta8 = read_image(tmp_path / "a.png")
    sixteen, meta16 = read_image(tmp_path / "b.png")
    jpeg, meta_jpeg = read_image(tmp_path / "c.jpg")
    assert (meta8.format, meta8.bits_stored, meta16.bits_stored, meta_jpeg.format) == ("png", 8, 16, "jpeg")
    np.testing.assert_allclose(sixteen, eight, atol=1e-6)  # stretched to its own range, not left dark
    assert np.abs(jpeg - eight).max() < 0.05


def test_colour_png_is_converted_with_a_note_only_when_channels_differ(tmp_path: Path, gradient) -> None:
    grey_rgb = np.dstack([gradient] * 3)
    cv2.imwrite(str(tmp_path / "grey.png"), grey_rgb)
    colour = grey_rgb.copy()
    colour[..., 2] = 255 - colour[..., 2]
    cv2.imwrite(str(tmp_path / "colour.png"), colour)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # notes are data on the metadata, never warnings
        image, grey_meta = read_image(tmp_path / "grey.png")
        _, colour_meta = read_image(tmp_path / "colour.png")
    np.testing.assert_allclose(image, gradient / 255.0, atol=1e-6)
    assert grey_meta.notes == () and colour_meta.notes == ("colour image converted to grayscale",)


def test_truncated_png_is_rejected(tmp_path: Path, gradient: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", gradient)
    (tmp_path / "cut.png").write_bytes(data.tobytes()[:60])
    with pytest.raises(ImageReadError, match="cut.png: corrupt or truncated PNG data"):
        read_image(tmp_path / "cut.png")


def test_png_chunk_longer_than_the_file_is_rejected_before_decoding(tmp_path: Path, gradient: np.ndarray) -> None:
    """A flipped high bit in IDAT's length (the fuzzer's seed25:flip): libpng would size its read by it (~2 GB)."""
    data = bytearray(cv2.imencode(".png", gradient)[1].tobytes())
    assert data[37:41] == b"IDAT"  # the first chunk after the 13-byte IHDR
    data[33] |= 0x80
    (tmp_path / "flip.png").write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match=r"flip.png: corrupt or truncated PNG data \('IDAT' chunk of 2147\d+ bytes "
                       "at byte 33 runs past the end"):  # fmt: skip
        read_image(tmp_path / "flip.png")


def _gate_input(source, cache_side: int, model_side: int):
    """What the gate's Screener computes from a file: load_windowed at the cache's side, then model_input."""
    windowed, meta = load_windowed(source, cache_side)
    return model_input(windowed, model_side), meta


def test_the_gate_input_equals_model_input_of_the_windowed_cache(tmp_path: Path, gradient: np.ndarray) -> None:
    """Training turns the cache into model input; the gate reads the file: one path, same pixels."""
    noisy = np.clip(gradient.astype(int) + np.random.default_rng(0).integers(-4, 4, gradient.shape), 0, 255)
    cv2.imwrite(str(tmp_path / "x.png"), noisy.astype(np.uint8))
    for cache_side in (64, 96):
        ready, meta = _gate_input(tmp_path / "x.png", cache_side, 64)
        assert ready.dtype == np.uint8 and ready.shape == (64, 48) and (meta.width, meta.height) == (90, 120)
        windowed, _ = load_windowed(tmp_path / "x.png", cache_side)
        cv2.imwrite(str(tmp_path / "cache.png"), windowed)
        from_cache = model_input(cv2.imread(str(tmp_path / "cache.png"), cv2.IMREAD_GRAYSCALE), 64)
        np.testing.assert_array_equal(from_cache, ready)


def test_bytes_and_arrays_follow_the_same_path(tmp_path: Path, gradient: np.ndarray) -> None:
    cv2.imwrite(str(tmp_path / "x.png"), gradient)
    from_file, _ = _gate_input(tmp_path / "x.png", 64, 64)
    from_bytes, _ = _gate_input((tmp_path / "x.png").read_bytes(), 64, 64)
    from_array, meta = _gate_input(gradient, 64, 64)
    np.testing.assert_array_equal(from_file, from_bytes)
    np.testing.assert_array_equal(from_file, from_array)
    assert meta.format == "array"


def test_clahe_is_deterministic_and_follows_its_parameters() -> None:
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(60, 120, (128, 96)).astype(np.uint8), (0, 0), 3)
    first, second = apply_clahe(image), apply_clahe(image.copy())
    np.testing.assert_array_equal(first, second)
    assert first.std() > image.std()  # it does equalise
    assert not np.array_equal(first, apply_clahe(image, ClaheParams(clip_limit=4.0)))
    assert not np.array_equal(first, apply_clahe(image, ClaheParams(tile_grid=4)))
    with pytest.raises(ValueError, match="uint8"):
        apply_clahe(image.astype(np.float32))


def test_resize_keeps_aspect_and_is_deterministic() -> None:
    image = np.random.default_rng(1).random((300, 200), dtype=np.float32)
    small = resize_long_side(image, 96)
    assert small.shape == (96, 64)
    np.testing.assert_array_equal(small, resize_long_side(image.copy(), 96))
    assert resize_long_side(image, 600).shape == (600, 400)
    assert resized_size(2614, 3072, 1024) == (871, 1024)


def test_boxes_map_between_original_resized_and_letterboxed() -> None:
    boxes = np.array([[10.0, 20.0, 110.0, 220.0], [0.0, 0.0, 200.0, 300.0]])
    resized = scale_boxes(boxes, (200, 300), (100, 150))
    np.testing.assert_allclose(resized, boxes / 2)
    np.testing.assert_allclose(scale_boxes(resized, (100, 150), (200, 300)), boxes)

    canvas, box = letterbox(np.zeros((300, 200), np.uint8), 150)
    assert canvas.shape == (150, 150) and box.scale == 0.5 and (box.pad_x, box.pad_y) == (25, 0)
    assert canvas[:, :25].min() == 114 and canvas[:, 25:125].max() == 0
    on_canvas = boxes * box.scale + np.array([box.pad_x, box.pad_y] * 2)
    np.testing.assert_allclose(box.to_original(on_canvas, (200, 300)), boxes)
