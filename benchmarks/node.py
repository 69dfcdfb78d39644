"""The DICOM node under load: two senders at once (one association each), images per minute, and the time from
the end of an image's C-STORE to its SR arriving at the destination."""

from __future__ import annotations

import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pydicom
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    ComprehensiveSRStorage,
    GrayscaleSoftcopyPresentationStateStorage,
    SecondaryCaptureImageStorage,
)

from dernet.deploy.screening import Screener
from dernet.node.config import Destination, NodeConfig
from dernet.node.node import Node

__all__ = ["node_throughput"]

SENDERS = 2


def node_throughput(models: Path, images: list[Path], workers: int = 2) -> dict[str, Any]:
    """Send ``images`` to a node on ``models`` from two senders at once; throughput and result latency."""
    arrived: dict[str, float] = {}
    stored: dict[str, float] = {}
    done = threading.Event()
    destination_ae = AE(ae_title="RESULTS")
    for sop_class in (ComprehensiveSRStorage, SecondaryCaptureImageStorage, GrayscaleSoftcopyPresentationStateStorage):
        destination_ae.add_supported_context(sop_class)

    def on_result(event) -> int:
        ds = event.dataset
        if ds.SOPClassUID == ComprehensiveSRStorage:
            evidence = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
            arrived[str(evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)] = time.monotonic()
            if len(arrived) == len(images):
                done.set()
        return 0x0000

    handlers = [(evt.EVT_C_STORE, on_result)]
    destination = destination_ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    port = destination.server_address[1]
    with tempfile.TemporaryDirectory() as spool, Screener(models) as screener:
        config = NodeConfig(port=_free_port(), spool=Path(spool), workers=workers, mode="all",
                            forward=(Destination("RESULTS", "127.0.0.1", port),))  # fmt: skip
        node = Node(config, screener)
        node.start()
        try:
            started = time.monotonic()
            senders = [threading.Thread(target=_send, args=(images[i::SENDERS], config.port, stored))
                       for i in range(SENDERS)]  # fmt: skip
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            finished = done.wait(timeout=1800)
            elapsed = time.monotonic() - started
        finally:
            node.stop()
            destination.shutdown()
    if not finished:
        raise RuntimeError(f"the node delivered {len(arrived)} of {len(images)} results within 30 minutes")
    latencies = [arrived[uid] - stored[uid] for uid in stored]
    return {
        "images": len(images),
        "senders": SENDERS,
        "workers": workers,
        "images_per_min": round(len(images) / elapsed * 60, 1),
        "median_result_latency_s": round(statistics.median(latencies), 2),
        "max_result_latency_s": round(max(latencies), 2),
    }


def _send(files: list[Path], port: int, stored: dict[str, float]) -> None:
    """One association, one C-STORE per file, each file's transfer syntax as it is."""
    datasets = [pydicom.dcmread(path) for path in files]
    ae = AE(ae_title="BENCH")
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="SPINECAD")
    if not assoc.is_established:
        raise RuntimeError("the node refused the bench's association")
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            if getattr(status, "Status", None) != 0x0000:
                raise RuntimeError(f"C-STORE of {ds.SOPInstanceUID} failed: {status}")
            stored[str(ds.SOPInstanceUID)] = time.monotonic()
    finally:
        assoc.release()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
