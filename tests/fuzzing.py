"""A seeded mutator of radiograph files (DICOM, PNG, JPEG) and a runner that holds the reader to its contract.

Structured mutations change what a hostile or broken sender changes (header values of the wrong type, range or
count; contradicting geometry; transfer syntaxes; window and LUT tags; palette tags; truncated or padded pixel
data; image headers of PNG, JPEG and JPEG 2000 streams); byte mutations flip, cut, insert and repeat bytes.
"""

from __future__ import annotations

import io
import resource
import signal
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from dernet.imaging import ImageReadError, load_windowed

ROOT = Path(__file__).resolve().parents[1]
REPRODUCERS = ROOT / "tests" / "fixtures" / "reproducers.tar.xz"  # shared/reliability/reproducers, as found
PYDICOM_SEEDS = ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
                 "MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_16.dcm", "SC_rgb_rle.dcm", "image_dfl.dcm",
                 "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_small_odd.dcm", "JPEG2000.dcm", "MR_small_bigendian.dcm",
                 "SC_rgb_rle_32bit.dcm", "JPEG-lossy.dcm", "rtdose.dcm", "test-SR.dcm")  # fmt: skip
WEIRD_VALUES = (0, 1, -1, 65535, 65536, 2**31, "", "abc", "1\\2", [3, 4], 1e308, None)
SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian,
            JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless, RLELossless, "1.2.3.4", "")  # fmt: skip
PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR", "CMYK", "", "X")
HEADER_TAGS = ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
               "NumberOfFrames", "PlanarConfiguration", "WindowCenter", "WindowWidth", "RescaleSlope",
               "RescaleIntercept", "Modality", "PhotometricInterpretation")  # fmt: skip


def reproducers(folder: Path) -> list[Path]:
    """The shared reproducers, unpacked into ``folder`` from the fixture archive (INDEX.md says what each did)."""
    with tarfile.open(REPRODUCERS) as archive:
        archive.extractall(folder, filter="data")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in {".dcm", ".png", ".jpg"})


def seeds(phantoms: list[Path]) -> list[bytes]:
    """Seed files: phantom DICOMs (several encodings), pydicom's small bundled files, PNG and JPEG rasters."""
    found = [p.read_bytes() for p in phantoms]
    found += [Path(p).read_bytes() for n in PYDICOM_SEEDS if (p := get_testdata_file(n, download=False))]
    gradient = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (80, 1))
    rasters = [(".png", gradient), (".png", gradient.astype(np.uint16) * 257), (".jpg", gradient),
               (".png", np.dstack([gradient, 255 - gradient, gradient]))]  # fmt: skip
    for ext, image in rasters:
        found.append(cv2.imencode(ext, image)[1].tobytes())
    return found


class Mutator:
    """Seeded mutations of seed files; :meth:`inputs` yields ``count`` of them, about half structured.

    ``byte_only`` seeds (the reproducers: some inflate to gigabytes when parsed) get byte mutations only, so that the
    mutator's own parsing never dwarfs what the reader is measured on.
    """

    def __init__(self, seeds: list[bytes], seed: int, byte_only: list[bytes] = ()) -> None:
        self.seeds, self.structured = [*seeds, *byte_only], len(seeds)
        self.rng = np.random.default_rng(seed)
        self.datasets: dict[int, Dataset | None] = {}

    def inputs(self, count: int) -> Iterator[tuple[str, bytes]]:
        for _ in range(count):
            index = int(self.rng.integers(len(self.seeds)))
            data = self.seeds[index]
            structured = index < self.structured and self.rng.random() < 0.5
            kind, mutated = self._structured(index, data) if structured else (None, None)
            if mutated is None:
                kind, mutated = self._bytes(data)
            yield f"seed{index}:{kind}", mutated

    def _bytes(self, data: bytes) -> tuple[str, bytes]:
        buf = bytearray(data)
        kind = str(self.rng.choice(["flip", "cut", "insert", "repeat", "zero", "ff"]))
        at = int(self.rng.integers(len(buf))) if buf else 0
        if kind == "flip":
            for pos in self.rng.integers(0, len(buf), int(self.rng.integers(1, 9))):
                buf[pos] ^= 1 << int(self.rng.integers(8))
        elif kind == "cut":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = self.rng.integers(0, 256, int(self.rng.integers(1, 64)), dtype=np.uint8).tobytes()
        elif kind == "repeat":
            buf[at:at] = buf[at : at + int(self.rng.integers(1, 4096))] * int(self.rng.integers(2, 8))
        else:
            end = at + int(self.rng.integers(1, 256))
            buf[at:end] = (b"\x00" if kind == "zero" else b"\xff") * len(buf[at:end])
        return kind, bytes(buf)

    def _structured(self, index: int, data: bytes) -> tuple[str, bytes | None]:
        if data[128:132] == b"DICM":
            return self._dicom(index, data)
        if data.startswith(b"\x89PNG"):  # IHDR width and height (CRC left as it is half the time)
            buf = bytearray(data)
            buf[16:24] = int(self.rng.choice([0, 1, 65535, 2**31 - 1])).to_bytes(4, "big") * 2
            return "png_ihdr", bytes(buf)
        if data.startswith(b"\xff\xd8"):  # SOF0 height and width
            at = data.find(b"\xff\xc0")
            if at > 0:
                buf = bytearray(data)
                buf[at + 5 : at + 9] = int(self.rng.choice([0, 1, 65500, 65535])).to_bytes(2, "big") * 2
                return "jpeg_sof", bytes(buf)
        return "none", None

    def _dicom(self, index: int, data: bytes) -> tuple[str, bytes | None]:
        if index not in self.datasets:
            try:
                self.datasets[index] = pydicom.dcmread(io.BytesIO(data))
            except Exception:  # a seed pydicom cannot read back: byte mutations only
                self.datasets[index] = None
        if self.datasets[index] is None:
            return "none", None
        ds = pydicom.dcmread(io.BytesIO(data))  # a fresh copy to change
        kind = str(self.rng.choice(["value", "drop", "syntax", "photometric", "pixels", "window", "palette"]))
        try:
            if kind == "value":
                tag = str(self.rng.choice(HEADER_TAGS))
                setattr(ds, tag, WEIRD_VALUES[int(self.rng.integers(len(WEIRD_VALUES)))])
                kind = f"value:{tag}"
            elif kind == "drop":
                tag = str(self.rng.choice(HEADER_TAGS))
                if tag in ds:
                    del ds[tag]
                kind = f"drop:{tag}"
            elif kind == "syntax":
                ds.file_meta.TransferSyntaxUID = SYNTAXES[int(self.rng.integers(len(SYNTAXES)))]
            elif kind == "photometric":
                ds.PhotometricInterpretation = str(self.rng.choice(PHOTOMETRICS))
                ds.SamplesPerPixel = int(self.rng.choice([1, 3]))
            elif kind == "pixels" and "PixelData" in ds:
                pixels = bytes(ds.PixelData)
                cut = int(self.rng.integers(len(pixels) + 1))
                ds.PixelData = pixels[:cut] if self.rng.random() < 0.7 else pixels + pixels[:cut]
            elif kind == "window":
                ds.WindowCenter = self.rng.choice(["0", "-5", "1\\2\\3", "abc", "1e308"])
                ds.WindowWidth = self.rng.choice(["0", "-1", "1", "abc", "1e-308"])
            elif kind == "palette":
                ds.PhotometricInterpretation = "PALETTE COLOR"
                ds.RedPaletteColorLookupTableDescriptor = [int(v) for v in self.rng.integers(0, 65536, 3)]
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=False)
            return kind, out.getvalue()
        except Exception:  # pydicom refuses to write some values: byte mutations instead
            return kind, None


@dataclass
class Outcomes:
    """What became of the inputs: counts by outcome, the slowest one, memory, and anything that broke the contract."""

    counts: Counter = field(default_factory=Counter)
    slowest_s: float = 0.0
    slowest: str = ""
    peak_rss_growth_mb: float = 0.0
    broken: list[str] = field(default_factory=list)  # "<name>: <exception type>: <message>"


class Hang(BaseException):
    """Raised by the alarm when one input takes longer than the limit (interrupts Python code only)."""


def run_reader(
    inputs: Iterator[tuple[str, bytes]], long_side: int = 128, time_limit_s: float = 10.0, read: Callable = None
) -> Outcomes:
    """Every input through the reader; the contract: an image, or ImageReadError, within ``time_limit_s``."""
    read = read or load_windowed
    outcomes = Outcomes()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def alarm(*_):
        raise Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    try:
        for name, data in inputs:
            start = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, time_limit_s)
            try:
                read(data, long_side, name=name)
                outcomes.counts["ok"] += 1
            except ImageReadError as err:
                outcomes.counts[f"rejected:{err.kind}"] += 1
            except Hang:
                outcomes.broken.append(f"{name}: took over {time_limit_s} s")
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as err:  # anything else breaks the contract, native panics included
                outcomes.broken.append(f"{name}: {type(err).__name__}: {str(err)[:200]}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = time.perf_counter() - start
            if elapsed > outcomes.slowest_s:
                outcomes.slowest_s, outcomes.slowest = elapsed, name
    finally:
        signal.signal(signal.SIGALRM, previous)
    outcomes.peak_rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    return outcomes


def main() -> None:
    """`python -m tests.fuzzing --count N --seed S --phantoms DIR [--out result.json]`: a fuzz run in a fresh
    process (so that its memory growth is its own), printed as JSON."""
    import argparse
    import json
    import tempfile

    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phantoms", type=Path, required=True, help="a folder of phantom DICOMs to seed from")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        phantoms = sorted(p for p in args.phantoms.iterdir() if p.is_file())[:8]
        byte_only = [p.read_bytes() for p in reproducers(Path(folder))]
        mutator = Mutator(seeds(phantoms), args.seed, byte_only)
        start = time.perf_counter()
        outcomes = run_reader(mutator.inputs(args.count))
    result = {"inputs": args.count, "seed": args.seed, "seconds": round(time.perf_counter() - start, 1),
              "outcomes": dict(outcomes.counts.most_common()), "slowest_s": round(outcomes.slowest_s, 3),
              "slowest": outcomes.slowest, "peak_rss_growth_mb": round(outcomes.peak_rss_growth_mb, 1),
              "broken": outcomes.broken}  # fmt: skip
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
