"""A real web server on loopback under load: 3 rounds of 200 concurrent mixed uploads (radiographs, a PNG, broken and
hostile files), zero 5xx, memory steady across rounds; then SIGTERM with requests in flight stops it in seconds."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .fuzzing import reproducers
from .test_export_gate import _phantom_files

httpx = pytest.importorskip("httpx")

ROOT = Path(__file__).resolve().parents[1]
ROUNDS, CONCURRENT = 3, 200


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of the server and its decoding workers."""
    listed = subprocess.run(["ps", "-o", "pid=,ppid=,rss="], capture_output=True, text=True).stdout.split()
    rows = [tuple(map(int, listed[i : i + 3])) for i in range(0, len(listed), 3)]
    family = {pid} | {p for p, parent, _ in rows if parent == pid}
    return sum(rss for p, _, rss in rows if p in family) / 1024


async def _round(url: str, uploads: list[tuple[str, bytes]]) -> list[tuple[int, float]]:
    async def one(client, name: str, data: bytes) -> tuple[int, float]:
        start = time.perf_counter()
        response = await client.post(url, files={"file": (name, data)}, data={"mode": "all"})
        return response.status_code, time.perf_counter() - start

    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        return await asyncio.gather(*(one(client, *uploads[i % len(uploads)]) for i in range(CONCURRENT)))


@pytest.mark.slow
def test_load_and_sigterm(exported_models: Path, phantom_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    command = [sys.executable, "-m", "dernet.web", "--models", str(exported_models), "--port", str(port)]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        uploads = [(p.name, p.read_bytes()) for p in _phantom_files(phantom_dir, True, 2)]
        uploads += [(p.name, p.read_bytes()) for p in _phantom_files(phantom_dir, False, 2)]
        uploads += [(p.name, p.read_bytes()) for p in reproducers(tmp_path)[::8]]  # broken and hostile files
        uploads.append(("notes.txt", b"not an image\n"))
        statuses, latencies, memory = {}, [], []
        for _ in range(ROUNDS):
            results = asyncio.run(_round(f"{base}/api/analyze", uploads))
            for status, seconds in results:
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(seconds)
            memory.append(round(_tree_rss_mb(server.pid), 1))
        p50, p99 = (round(float(v), 3) for v in np.percentile(latencies, [50, 99]))
        summary = {"rounds": ROUNDS, "concurrent": CONCURRENT, "statuses": statuses, "p50_s": p50, "p99_s": p99,
                   "memory_mb_after_each_round": memory}  # fmt: skip

        in_flight = asyncio.new_event_loop()
        task = in_flight.create_task(_round(f"{base}/api/analyze", uploads))
        in_flight.run_until_complete(asyncio.sleep(1.0))  # requests in hand
        sent = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        summary["sigterm_to_exit_s"] = round(time.perf_counter() - sent, 2)
        task.cancel()
        in_flight.run_until_complete(asyncio.gather(task, return_exceptions=True))
        in_flight.close()
    finally:
        if server.poll() is None:
            server.kill()
    artifacts = ROOT / "runs" / "test-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "load_test.json").write_text(json.dumps(summary, indent=2) + "\n")
    assert not [s for s in statuses if s >= 500], summary
    assert sum(statuses.values()) == ROUNDS * CONCURRENT and statuses.get(200, 0) > 0
    assert memory[-1] <= memory[0] * 1.10, summary
    assert summary["sigterm_to_exit_s"] < 10, summary
