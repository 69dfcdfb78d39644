"""The node put together: spool, screener, workers, forwarder and the DICOM receiver; runs until SIGTERM/SIGINT,
then finishes the associations in flight and the queue."""

from __future__ import annotations

import logging
import signal
import threading

from ..deploy.screening import Screener
from ..dicom_results import load_settings
from .config import NodeConfig
from .forwarder import Forwarder
from .processor import Processor
from .receiver import Receiver
from .spool import Spool
from .status import NodeStatus

LOG = logging.getLogger("dernet.node")

__all__ = ["Node", "retry_failed"]


class Node:
    def __init__(self, config: NodeConfig, screener: Screener | None = None) -> None:
        self.config = config
        settings = load_settings(config.dicom_config)
        self.spool = Spool(config.spool)
        self._owned = screener is None
        self.screener = screener or Screener(config.models)
        self.status = NodeStatus(self.spool.root / "status.json")
        self.processor = Processor(config, self.spool, self.screener, settings, self.status)
        self.status.queue_depth = lambda: self.processor.depth
        self.receiver = Receiver(config, self.spool, self.processor.ingest)

    def start(self) -> None:
        self.processor.start()
        self.receiver.start()  # listening before the backlog is queued: a restart answers senders at once
        threading.Thread(target=self.processor.resume, name="node-resume", daemon=True).start()
        self.status.set_state("running")
        c = self.config
        forward = ", ".join(map(str, c.forward)) or "nowhere (results stay in the spool)"
        allowed = ", ".join(c.allow_calling_ae) or "any"
        LOG.info("DICOM node %r listening on %s:%d (calling AE titles allowed: %s); spool %s; results to %s",
                 c.ae_title, c.host, c.port, allowed, self.spool.root, forward)  # fmt: skip

    def stop(self) -> None:
        self.status.set_state("stopping")
        self.receiver.stop()
        self.processor.stop()
        if self._owned:
            self.screener.close()
        self.status.set_state("stopped")
        LOG.info("stopped: %s", {k: v for k, v in self.status.snapshot().items() if isinstance(v, int)})

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()


def retry_failed(config: NodeConfig) -> tuple[int, int]:
    """Resend every result in ``spool/failed/`` to its destination; (delivered, still failing)."""
    from .config import Destination

    spool = Spool(config.spool)
    forwarder = Forwarder(config, spool)
    delivered = failing = 0
    for failure in spool.failures():
        destination = Destination.parse(failure["destination"])
        if forwarder.deliver(failure["instance"], (destination,)):
            delivered += 1
        else:
            failing += 1
    return delivered, failing
