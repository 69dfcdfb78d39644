"""Screening the spool: a bounded queue, worker threads sharing one Screener, results written beside the instance,
then handed to the forwarder. A full queue makes the receiver wait: senders slow down instead of memory growing."""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from ..deploy.report import render_overlay, write_outputs
from ..deploy.screening import Screener
from ..dicom_results import DicomResultSettings, build_results, write_results
from .config import NodeConfig
from .forwarder import Forwarder
from .spool import Spool, spool_name
from .status import NodeStatus

LOG = logging.getLogger("dernet.node")

__all__ = ["Processor"]

_STOP = object()


class Processor:
    def __init__(
        self,
        config: NodeConfig,
        spool: Spool,
        screener: Screener,
        settings: DicomResultSettings,
        status: NodeStatus,
    ) -> None:
        self.config, self.spool, self.screener, self.settings, self.status = config, spool, screener, settings, status
        self.queue: queue.Queue = queue.Queue(maxsize=config.queue_size)
        self.outbox: queue.Queue = queue.Queue()
        self.forwarder = Forwarder(config, spool, status.count)
        self._pending: set[str] = set()  # queued or being screened: a re-sent instance is not queued twice
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._work, name=f"node-worker-{i}", daemon=True)
                         for i in range(config.workers)]  # fmt: skip
        self._sender = threading.Thread(target=self._send, name="node-forwarder", daemon=True)

    def start(self) -> None:
        for thread in (*self._workers, self._sender):
            thread.start()

    def resume(self) -> None:
        """Queue what a stopped node left: instances not screened yet, results not forwarded yet."""
        left = self.spool.unscreened()
        if left:
            LOG.info("resuming: %d received instance(s) not screened yet", len(left))
        for name in left:
            self.submit(name)
        for report in sorted(self.spool.results.glob("*.json")):
            name = report.stem
            if self._unsent(name):
                self.outbox.put(name)

    def ingest(self, sop_instance_uid: str, data: bytes) -> bool:
        """A received Part 10 instance: stored durably, counted and queued (blocks while the queue is full). Raises
        OSError when it cannot be stored (the sender must then be told it failed)."""
        name = spool_name(sop_instance_uid)
        if self.spool.is_screened(name):
            self.status.count("duplicates")
            LOG.info("received %s again: already screened, nothing to do", name)
            return False
        self.spool.store(name, data)
        queued = self.submit(name)
        self.status.count("received" if queued else "duplicates")
        return queued

    def submit(self, name: str) -> bool:
        """Queue a received instance (blocks while the queue is full); False if it is queued or screened already."""
        with self._lock:
            if name in self._pending or self.spool.is_screened(name):
                return False
            self._pending.add(name)
        self.queue.put(name)
        return True

    def stop(self) -> None:
        """Finish what is queued, then stop the workers and the forwarder."""
        for _ in self._workers:
            self.queue.put(_STOP)
        for thread in self._workers:
            thread.join()
        self.outbox.put(_STOP)
        self._sender.join()

    def _work(self) -> None:
        while (name := self.queue.get()) is not _STOP:
            try:
                self._screen(name)
            except Exception:  # a bug met on this instance: logged with its traceback, the next one goes on
                LOG.exception("screening %s failed", name)
                self.status.count("errors")
            finally:
                with self._lock:
                    self._pending.discard(name)

    def _screen(self, name: str) -> None:
        path = self.spool.incoming / f"{name}.dcm"
        result = self.screener.screen(path, name=f"{name}.dcm", mode=self.config.mode)
        overlay = render_overlay(result)
        conf = self.screener.manifest.detector.conf
        built = build_results(path, result, overlay, self.screener.model_hashes, conf, self.settings)
        if built.error_traceback:
            LOG.error("%s: %s\n%s", name, built.note, built.error_traceback)
        target = self.spool.results / name
        dicom = write_results(built, target)
        write_outputs(result, self.spool.results, Path(name), self.screener.model_hashes, overlay_image=overlay,
                      dicom=dicom)  # fmt: skip (the report is written last: it marks the instance screened)
        if result.status == "ok":
            self.status.count("screened")
            verdict = "abnormal" if result.abnormal else "normal"
            LOG.info("screened %s: %s p=%.3f, %d finding(s)", name, verdict, result.probability, len(result.findings))
        else:
            self.status.count("rejected" if result.status == "rejected" else "errors")
            LOG.warning("not screened %s: %s (%s)", name, result.reason, result.reason_code)
            if result.error_traceback:
                LOG.error("%s\n%s", name, result.error_traceback)
        if built.objects and self.config.forward:
            self.outbox.put(name)

    def _send(self) -> None:
        while (name := self.outbox.get()) is not _STOP:
            try:
                self.forwarder.deliver(name)
            except Exception:
                LOG.exception("forwarding %s failed", name)
                self.status.count("errors")

    def _unsent(self, name: str) -> bool:
        if not self.config.forward or not self.spool.result_files(name):
            return False
        return any(not self.spool.is_forwarded(name, str(d)) and not self.spool.is_failed(name, str(d))
                   for d in self.config.forward)  # fmt: skip

    @property
    def depth(self) -> int:
        return self.queue.qsize()
