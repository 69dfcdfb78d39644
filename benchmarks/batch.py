"""Batch screening on Ray Data beside the gate on one machine: the same folder and models, 1 actor x 2 threads and
2 actors x 1 thread, throughput with and without start-up, and where an image's time goes inside the actors."""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import ray

from dernet.batch.job import run_job
from dernet.batch.listing import list_inputs
from dernet.batch.pipeline import Layout, ScreenSettings
from dernet.batch.store import RowStore
from dernet.deploy.manifest import load_manifest

__all__ = ["batch_vs_gate"]

LAYOUTS = ((1, 2), (2, 1))  # (actors, threads per actor) on a 2-core machine


def batch_vs_gate(models: Path, folder: Path, gate_s: float, mode: str = "all") -> dict[str, Any]:
    """``gate_s``: the gate's wall time on ``folder`` with its models loaded (the bench's folder run, reports and
    overlays written); the batch jobs write them too (--reports)."""
    images = sum(1 for p in folder.rglob("*") if p.is_file())
    max_pixels = load_manifest(models).rejection.max_pixels
    cpus = os.cpu_count() or 1
    ray.init(num_cpus=cpus, object_store_memory=512 << 20, include_dashboard=False, logging_level=logging.WARNING)
    layouts = {}
    try:
        for actors, threads in LAYOUTS:
            layout = Layout(actors=actors, cpus_per_actor=float(threads), batch_size=4)
            with tempfile.TemporaryDirectory() as out:  # reports and overlays too: the gate's work, all of it
                settings = ScreenSettings(models=str(models.resolve()), mode=mode, threads=threads,
                                          reports=str(Path(out) / "reports"))  # fmt: skip
                started = time.perf_counter()
                store = RowStore(Path(out), {"bench": True})
                summary = run_job(list_inputs([str(folder)], Path(out)), store, settings, layout, max_pixels)
                wall = time.perf_counter() - started
                rows = pq.read_table(Path(out) / "rows").to_pylist()
            if summary.stopped or summary.written != images:
                raise RuntimeError(f"batch run failed: {summary.stopped or summary.written}")
            steady = summary.steady_images_per_s
            layouts[f"{actors}x{threads}"] = {
                "wall_s": round(wall, 2),
                "images_per_s": round(images / wall, 2),
                "steady_images_per_s": round(steady, 2) if steady else None,
                "per_image_ms": {step: round(statistics.median(r["timings_ms"][step] for r in rows), 1)
                                 for step in ("read", "preprocess", "classify", "detect", "total")},
            }  # fmt: skip
    finally:
        ray.shutdown()
    gate_rate = images / gate_s
    best = max(layouts, key=lambda k: layouts[k]["steady_images_per_s"] or 0)
    actors, threads = best.split("x")
    commands = {  # as a user runs them: start-up (Ray, actors, model loading) included
        "gate_cli_s": ["dernet.gate", str(folder), "--mode", mode],
        "batch_cli_s": ["dernet.batch", str(folder), "--mode", mode, "--reports", "--actors", actors,
                        "--threads-per-actor", threads],
    }  # fmt: skip
    walls = {name: _command_wall(module, models) for name, module in commands.items()}
    return {
        "images": images,
        "gate_images_per_s": round(gate_rate, 2),
        "layouts": layouts,
        "best_layout": best,
        "steady_vs_gate": round((layouts[best]["steady_images_per_s"] or 0) / gate_rate, 2),
        **walls,
        "with_startup_vs_gate": round(walls["gate_cli_s"] / walls["batch_cli_s"], 2),
    }


def _command_wall(command: list[str], models: Path) -> float:
    """Seconds of one command line run in a fresh process, outputs written to a temporary folder."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", *command, "--models", str(models), "--out", out],
                              capture_output=True, text=True)  # fmt: skip
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:1])} failed: {done.stderr[-2000:]}")
    return round(wall, 2)
