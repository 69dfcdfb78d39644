"""The output folder of a batch job: Parquet parts written whole (temp file + rename), what earlier runs finished,
and the settings the rows were made with, so that a rerun resumes the same job and never mixes two.

Ray Data's own Parquet sink writes straight to the final path, so a killed job would leave half a file for the
resume to trip on; the rows are small (no pixels), so the driver writes them, a part at a time.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UsageError
from ..fileio import remove_stale_temp_files, write_bytes_atomic, write_json_atomic
from .rows import ROW_SCHEMA

__all__ = ["RowStore"]

SETTINGS_FILE = "batch.json"


class RowStore:
    """``<out>/rows/part-*.parquet`` plus ``<out>/batch.json``. Rows are buffered and written as one part when
    ``rows_per_part`` have come or ``seconds_per_part`` have passed: a killed job loses at most that much work."""

    def __init__(self, out: Path, settings: dict[str, Any], rows_per_part: int = 512, seconds_per_part: float = 15.0):
        self.out, self.rows_dir = out, out / "rows"
        self.rows_per_part, self.seconds_per_part = rows_per_part, seconds_per_part
        try:
            self.rows_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            reason = f"cannot create the output folder ({err.strerror or err}); choose another --out"
            raise UsageError(f"{out}: {reason}") from None
        remove_stale_temp_files(self.rows_dir)
        _check_settings(out / SETTINGS_FILE, settings)
        self._run = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self._buffer: list[pa.Table] = []
        self._buffered, self._since, self._parts = 0, time.monotonic(), 0
        self.written = 0

    def finished(self) -> dict[tuple[str, str], str]:
        """(input, key) -> status of every row earlier runs wrote."""
        done: dict[tuple[str, str], str] = {}
        for part in sorted(self.rows_dir.glob("part-*.parquet")):
            try:
                table = pq.read_table(part, columns=["input", "key", "status"])
            except (OSError, pa.ArrowException) as err:
                raise UsageError(f"{part}: not a readable Parquet part ({err}); move it away and run again") from None
            for name, key, status in zip(*(table.column(c).to_pylist() for c in ("input", "key", "status")),
                                         strict=True):  # fmt: skip
                done[(name, key)] = status
        return done

    def append(self, table: pa.Table) -> None:
        """Buffer rows; write a part when enough have come or enough time has passed."""
        if table.num_rows:
            self._buffer.append(table.select(ROW_SCHEMA.names).cast(ROW_SCHEMA))
            self._buffered += table.num_rows
        if self._buffered >= self.rows_per_part or time.monotonic() - self._since >= self.seconds_per_part:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one part, whole and synced, or nothing."""
        self._since = time.monotonic()
        if not self._buffered:
            return
        buffer = io.BytesIO()
        pq.write_table(pa.concat_tables(self._buffer), buffer)
        self._parts += 1
        part = self.rows_dir / f"part-{self._run}-{self._parts:05d}.parquet"
        write_bytes_atomic(part, buffer.getvalue(), durable=True)
        self.written += self._buffered
        self._buffer, self._buffered = [], 0

    def read(self) -> pa.Table:
        """Every row written so far, from every run (for a summary, or a test)."""
        parts = sorted(self.rows_dir.glob("part-*.parquet"))
        return pa.concat_tables([pq.read_table(p) for p in parts]) if parts else ROW_SCHEMA.empty_table()


def _check_settings(path: Path, settings: dict[str, Any]) -> None:
    """A rerun resumes only the same job: rows made with other models or settings would mix two answers."""
    if path.exists():
        try:
            earlier = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise UsageError(f"{path}: unreadable ({err}); delete it only if the rows beside it are yours") from None
        changed = sorted(k for k in {*earlier, *settings} if earlier.get(k) != settings.get(k))
        if changed:
            raise UsageError(
                f"{path.parent}: holds rows made with other settings ({', '.join(changed)}); choose another --out, "
                "or run with the same models and flags to resume"
            )
        return
    write_json_atomic(path, settings)
