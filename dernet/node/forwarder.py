"""Send an instance's results (SR, SC, PR) to each destination by C-STORE, with retries and exponential backoff;
what still fails goes to ``spool/failed/`` with the reason."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    ComprehensiveSRStorage,
    GrayscaleSoftcopyPresentationStateStorage,
    SecondaryCaptureImageStorage,
)

from .config import Destination, NodeConfig
from .spool import Spool

LOG = logging.getLogger("dernet.node")

__all__ = ["DeliveryError", "Forwarder"]

RESULT_CLASSES = (ComprehensiveSRStorage, SecondaryCaptureImageStorage, GrayscaleSoftcopyPresentationStateStorage)


class DeliveryError(Exception):
    """A destination that did not take the results; the message says what to check."""


class Forwarder:
    def __init__(self, config: NodeConfig, spool: Spool, count: Callable[[str], None] = lambda _c: None) -> None:
        self.config, self.spool, self.count = config, spool, count

    def deliver(self, name: str, destinations: tuple[Destination, ...] | None = None) -> bool:
        """Send ``name``'s results to every destination that has not had them; True when all have them now."""
        files = self.spool.result_files(name)
        if not files:
            return True
        delivered = True
        for destination in destinations if destinations is not None else self.config.forward:
            if self.spool.is_forwarded(name, str(destination)):
                continue
            delivered &= self._deliver_to(name, files, destination)
        return delivered

    def _deliver_to(self, name: str, files: list[Path], destination: Destination) -> bool:
        wait = self.config.retry_backoff_s
        for attempt in range(self.config.retries + 1):
            try:
                self.send(files, destination)
            except DeliveryError as err:
                last = str(err)
                more = attempt < self.config.retries
                LOG.warning("forward %s to %s: %s%s", name, destination, last,
                            f"; retrying in {wait:g} s" if more else "")  # fmt: skip
                if more:
                    time.sleep(wait)
                    wait *= 2
                continue
            self.spool.mark_forwarded(name, str(destination))
            self.count("forwarded")
            LOG.info("forwarded %s results of %s to %s", len(files), name, destination)
            return True
        self.spool.mark_failed(name, str(destination), last)
        self.count("failed")
        LOG.error("forward %s to %s failed after %d attempts: %s; results kept in %s, resend with "
                  "`python -m dernet.node retry`", name, destination, self.config.retries + 1, last,
                  self.spool.failed)  # fmt: skip
        return False

    def send(self, files: list[Path], destination: Destination) -> None:
        """One association, one C-STORE per file; any failure raises :class:`DeliveryError` naming the fix."""
        ae = AE(ae_title=self.config.ae_title)
        timeout = self.config.network_timeout_s
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
        for sop_class in RESULT_CLASSES:
            ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        connected: list[bool] = []
        assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title,
                             evt_handlers=[(evt.EVT_CONN_OPEN, lambda _event: connected.append(True))])  # fmt: skip
        if not assoc.is_established:
            raise DeliveryError(_why_not_established(assoc, bool(connected), destination, self.config.ae_title))
        try:
            for path in files:
                dataset = pydicom.dcmread(path)
                status = assoc.send_c_store(dataset)
                code = getattr(status, "Status", None)
                if code is None:
                    raise DeliveryError(f"no answer to C-STORE of {path.name} (the connection ended or timed out)")
                if code not in (0x0000, 0xB000, 0xB007, 0xB006):  # success, or stored with a warning
                    raise DeliveryError(f"{destination.ae_title} refused {path.name} with status 0x{code:04X}")
        finally:
            if assoc.is_established:
                assoc.release()


def _why_not_established(assoc, connected: bool, destination: Destination, own_ae: str) -> str:
    if not connected:
        return (f"no association with {destination} (connection refused or timed out): check that a DICOM node "
                f"listens on {destination.host}:{destination.port}")  # fmt: skip
    if assoc.is_rejected:
        return (f"association rejected by {destination} (calling AE {own_ae!r}, called AE {destination.ae_title!r}): "
                f"check that {destination.host}:{destination.port} knows AE {own_ae!r} and calls itself "
                f"{destination.ae_title!r}")  # fmt: skip
    if assoc.is_aborted:
        return f"association aborted by {destination}: check its logs (it may not accept SR, SC or PR objects)"
    return f"no association with {destination}: it did not answer the association request within the timeout"
