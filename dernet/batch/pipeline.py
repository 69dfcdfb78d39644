"""The Ray Data pipeline: inputs -> read bytes (tasks) -> screen (an actor pool, one Screener per actor, models
loaded once) -> rows back to the driver. Every step is the gate's own code; nothing here imports torch."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import pyarrow as pa
import ray
from ray.data import ActorPoolStrategy

from ..deploy.engines import RuntimeOptions
from ..deploy.isolation import IsolationLimits
from ..deploy.report import build_report, render_overlay
from ..deploy.screening import Screener, Screening
from ..deploy.study import study_key
from ..imaging import ImageReadError, max_input_bytes, read_input_file, set_decoder_threads
from ..inputs import display_name
from .listing import BatchInput, is_uri
from .rows import row_of, rows_table

__all__ = ["Layout", "ScreenActor", "ScreenSettings", "read_batch", "report_paths", "screen_dataset"]

MAX_BLOCKS = 4096  # beyond this a block holds several batches: fewer, larger read tasks for a million inputs
READ_TASK_CPUS = 0  # reading bytes waits on storage: it must not hold a CPU an actor could run models on


@dataclass(frozen=True)
class ScreenSettings:
    """What every actor screens with: the gate's flags."""

    models: str  # the export folder, at the same path on every machine
    mode: str = "gate"
    threshold: float | None = None
    conf: float | None = None
    variant: str = "auto"
    providers: tuple[str, ...] | None = None
    threads: int = 2  # ONNX Runtime and JPEG 2000 decoding threads per actor
    isolation: IsolationLimits | None = None
    reports: str | None = None  # the folder of report and overlay files (--reports), as the reports name it
    study_from: str = "dicom"  # how rows are grouped into studies (the gate's --study-from)


@dataclass(frozen=True)
class Layout:
    """How the work spreads: actors (one Screener each), their CPUs and GPUs, and rows per batch."""

    actors: int
    cpus_per_actor: float
    gpus_per_actor: float = 0.0
    batch_size: int = 8


def read_batch(batch: pa.Table, max_pixels: int) -> pa.Table:
    """The bytes of each input, or why they could not be read (the gate's reasons and codes for local files)."""
    data, reasons, codes = [], [], []
    limit = max_input_bytes(max_pixels)
    for source, name in zip(batch.column("source").to_pylist(), batch.column("name").to_pylist(), strict=True):
        try:
            data.append(_read(source, name, limit))
            reasons.append(None)
            codes.append(None)
        except ImageReadError as err:
            data.append(None)
            reasons.append(err.reason)
            codes.append(err.kind)
    return (batch.append_column("data", pa.array(data, pa.binary()))
            .append_column("read_reason", pa.array(reasons, pa.string()))
            .append_column("read_code", pa.array(codes, pa.string())))  # fmt: skip


def _read(source: str, name: str, limit: int) -> bytes:
    if not is_uri(source):
        return read_input_file(Path(source), name, limit)
    import fsspec  # checked on the driver before the job starts

    try:
        with fsspec.open(source, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise ImageReadError(name, "no such object", "not_found") from None
    except Exception as err:  # each filesystem package raises its own errors (botocore, gcsfs, aiohttp, ...)
        raise ImageReadError(name, f"cannot be read ({type(err).__name__}: {str(err)[:160]})", "unreadable") from None
    if len(data) > limit:
        raise ImageReadError(name, f"over the {limit >> 20} MB input limit", "too_large")
    return data


class ScreenActor:
    """One Screener per actor (models loaded once), screening a batch of read inputs into rows. Inside a batch a
    reader thread decodes the next inputs while the models run, as in the gate."""

    def __init__(self, settings: ScreenSettings) -> None:
        set_decoder_threads(settings.threads)
        self.settings = settings
        runtime = RuntimeOptions(list(settings.providers) if settings.providers else None, settings.threads)
        self.screener = Screener(settings.models, runtime, variant=settings.variant, isolation=settings.isolation)
        self.hashes = self.screener.model_hashes

    def __call__(self, batch: pa.Table) -> pa.Table:
        s, started = self.settings, time.time()
        items = batch.to_pylist()
        readable = ((item["data"], item["name"]) for item in items if item["data"] is not None)
        screened = self.screener.screen_many(readable, s.mode, s.threshold, s.conf, prefetch=1)
        rows, transient = [], []
        for item in items:
            if item["data"] is None:
                error = ImageReadError(item["name"], item["read_reason"], item["read_code"])
                result = self.screener.reject(error, s.mode, s.threshold, s.conf)
            else:
                result = next(screened)
            row, files = self._row(result, item)
            rows.append(row)
            transient.append(files)
        screened.close()  # its reader thread ends with the batch
        finished = time.time()
        for files in transient:
            files.update(batch_started=started, batch_finished=finished)
        return rows_table(rows, transient)

    def _row(self, result: Screening, item: dict[str, Any]) -> tuple[dict, dict]:
        """Its row, and with --reports the report JSON and the overlay PNG the driver writes."""
        study = study_key(result, PurePosixPath(item["name"]), self.settings.study_from)
        if self.settings.reports is None:
            return row_of(result, item["key"], self.hashes, None, None, study), {}
        report_path, overlay_path = report_paths(Path(self.settings.reports), item["stem"])
        overlay = render_overlay(result)
        shown = None if overlay is None else display_name(overlay_path)
        png = None if overlay is None else cv2.imencode(".png", overlay, [cv2.IMWRITE_PNG_COMPRESSION, 3])[1].tobytes()
        report = json.dumps(build_report(result, shown, self.hashes))
        row = row_of(result, item["key"], self.hashes, display_name(report_path), shown, study)
        return row, {"report_json": report, "overlay_png": png}


def report_paths(reports: Path, stem: str) -> tuple[Path, Path]:
    """Where an input's report JSON and overlay PNG go: its stem mirrored under the reports folder, as the gate
    mirrors inputs under --out."""
    target = reports / stem
    return target.with_name(target.name + ".json"), target.with_name(target.name + ".overlay.png")


def screen_dataset(inputs: list[BatchInput], settings: ScreenSettings, layout: Layout, max_pixels: int):
    """The lazy Ray Dataset of rows (with the transient report columns) for ``inputs``."""
    items = [{"source": i.source, "name": i.name, "key": i.key, "stem": i.stem} for i in inputs]
    # about a batch per block, so that the actors start on the first batches while later ones are still read
    blocks = max(1, min(MAX_BLOCKS, -(-len(items) // layout.batch_size)))
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    ds = ds.map_batches(read_batch, fn_kwargs={"max_pixels": max_pixels}, batch_format="pyarrow",
                        batch_size=layout.batch_size, num_cpus=READ_TASK_CPUS)  # fmt: skip
    return ds.map_batches(
        ScreenActor,
        fn_constructor_kwargs={"settings": settings},
        batch_format="pyarrow",
        batch_size=layout.batch_size,
        compute=ActorPoolStrategy(size=layout.actors),
        num_cpus=layout.cpus_per_actor,
        num_gpus=layout.gpus_per_actor or None,
    )  # Ray Data restarts a dead actor (its models reloaded) and retries its batch: without limit, so a decoder crash
    # that repeats on one input would retry forever; untrusted archives run with --isolate, which makes it a row

