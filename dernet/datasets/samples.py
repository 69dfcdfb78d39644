"""A handful of release test images (normal and abnormal) to try the gate on, plus one as PNG."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import cv2

from ..errors import MissingFileError
from ..fileio import write_bytes_atomic
from ..imaging import load_windowed
from .vindr import read_annotations

__all__ = ["pick_samples"]


def pick_samples(release: str | Path, out_dir: str | Path, count: int = 6) -> list[Path]:
    """Copy ``count`` test DICOMs (half abnormal) to ``out_dir/abnormal/`` and ``out_dir/normal/`` (by ground truth)
    and write the first abnormal one also as an 8-bit PNG (windowed, full size), the way a user might export it
    from a viewer. Both views of an abnormal two-view study come first when the split has one, so the samples show a
    study decision. Returns the written files."""
    release, out_dir = Path(release), Path(out_dir)
    annotations = read_annotations(release / "annotations" / "test.csv", "test", Counter())
    abnormal = [i for i in annotations.values() if i.abnormal]
    normal = [i for i in annotations.values() if not i.abnormal]
    study_of = {i.image_id: _study(release / "test_images" / f"{i.image_id}.dicom") for i in abnormal}
    views = Counter(study_of.values())
    two_view = next((s for s in study_of.values() if views[s] == 2), None)
    abnormal.sort(key=lambda i: study_of[i.image_id] != two_view)  # stable: the two views first, then as listed
    chosen = abnormal[: (count + 1) // 2] + normal[: count // 2]
    if not chosen:
        raise MissingFileError(f"{release}/annotations/test.csv: no test images to pick from")
    written = []
    for image in chosen:
        source = release / "test_images" / f"{image.image_id}.dicom"
        target = out_dir / ("abnormal" if image.abnormal else "normal") / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(target)
    first = release / "test_images" / f"{chosen[0].image_id}.dicom"
    windowed, meta = load_windowed(first, max(1, *_size(first)))
    ok, png = cv2.imencode(".png", windowed)
    if ok:
        png_path = written[0].with_suffix(".png")
        write_bytes_atomic(png_path, png.tobytes())
        written.append(png_path)
    return written


def _header(path: Path):
    import pydicom

    return pydicom.dcmread(path, stop_before_pixels=True)


def _study(path: Path) -> str:
    return str(_header(path).StudyInstanceUID)


def _size(path: Path) -> tuple[int, int]:
    ds = _header(path)
    return int(ds.Columns), int(ds.Rows)
