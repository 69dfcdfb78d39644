"""A batch job from listed inputs to Parquet rows: skip what earlier runs finished, stream the rest through the
Ray pipeline, write rows (and, with --reports, the gate's report and overlay files) as they come."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..fileio import write_bytes_atomic, write_json_atomic
from .listing import BatchInput
from .pipeline import Layout, ScreenSettings, report_paths, screen_dataset
from .store import RowStore

__all__ = ["JobSummary", "run_job"]


@dataclass
class JobSummary:
    """What a run did: rows by status, what earlier runs had done, how long, and why it stopped if it did."""

    listed: int = 0
    skipped: int = 0  # finished by an earlier run
    statuses: dict[str, int] = field(default_factory=dict)  # of this run's rows
    earlier_not_ok: int = 0  # rejected or failed rows of the skipped inputs
    seconds: float = 0.0
    stopped: str | None = None  # why the job stopped before the end (the rows so far are kept)
    active: tuple[float, float] | None = None  # when the first actor batch began and the last ended (Unix s)

    def note_active(self, batch: pa.Table) -> None:
        """Widen the span the actors worked in by this batch's."""
        began, ended = pc.min(batch["batch_started"]).as_py(), pc.max(batch["batch_finished"]).as_py()
        if self.active is not None:
            began, ended = min(began, self.active[0]), max(ended, self.active[1])
        self.active = (began, ended)

    @property
    def steady_images_per_s(self) -> float | None:
        """Throughput once the actors are up: their start-up and model loading left out, as an archive amortizes
        them."""
        if self.active is None or self.active[1] <= self.active[0]:
            return None
        return self.written / (self.active[1] - self.active[0])

    @property
    def written(self) -> int:
        return sum(self.statuses.values())

    @property
    def not_ok(self) -> int:
        return self.written - self.statuses.get("ok", 0) + self.earlier_not_ok

    def line(self, out: Path) -> str:
        rate = self.written / self.seconds if self.seconds else 0.0
        return (
            f"{self.statuses.get('ok', 0)} screened, {self.written - self.statuses.get('ok', 0)} rejected or failed; "
            f"{self.written} rows written, {self.skipped} done earlier; {rate:.2f} images/s; rows in {out / 'rows'}/"
        )


def run_job(
    inputs: list[BatchInput], store: RowStore, settings: ScreenSettings, layout: Layout, max_pixels: int
) -> JobSummary:
    """Screen the inputs ``store`` has no row for; a Ray error stops the job with the rows so far kept."""
    import ray.exceptions

    summary = JobSummary(listed=len(inputs))
    finished = store.finished()
    todo = [i for i in inputs if (i.name, i.key) not in finished]
    summary.skipped = len(inputs) - len(todo)
    summary.earlier_not_ok = sum(finished[(i.name, i.key)] != "ok" for i in inputs if (i.name, i.key) in finished)
    stems = {i.name: i.stem for i in todo}
    started = time.perf_counter()
    try:
        if todo:
            for batch in screen_dataset(todo, settings, layout, max_pixels).iter_batches(
                batch_size=None, batch_format="pyarrow"
            ):
                if settings.reports is not None:
                    _write_files(batch, Path(settings.reports), stems)
                store.append(batch)
                summary.note_active(batch)
                for status in batch.column("status").to_pylist():
                    summary.statuses[status] = summary.statuses.get(status, 0) + 1
    except ray.exceptions.RayError as err:
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        summary.stopped = f"{type(err).__name__}: {first}"
    finally:
        store.flush()  # whatever came back is kept, even on Ctrl-C
        summary.seconds = time.perf_counter() - started
    return summary


def _write_files(batch: pa.Table, reports: Path, stems: dict[str, str]) -> None:
    """With --reports: each row's report JSON and overlay PNG, where the actor's row says they are."""
    columns = (batch.column(c).to_pylist() for c in ("input", "report_json", "overlay_png"))
    for name, report, png in zip(*columns, strict=True):
        report_path, overlay_path = report_paths(reports, stems[name])
        if png is not None:
            write_bytes_atomic(overlay_path, png)
        else:
            overlay_path.unlink(missing_ok=True)  # nothing stale from an earlier run
        write_json_atomic(report_path, json.loads(report))
