"""The node's DICOM side: Verification and Storage SCP (pynetdicom). An instance is answered "stored" only once it
is on disk durably; AE-title and negotiation problems are logged in one line that says what to change."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from ..errors import UsageError
from .config import NodeConfig
from .spool import Spool, spool_name

LOG = logging.getLogger("dernet.node")

__all__ = ["Receiver"]

OUT_OF_RESOURCES = 0xA700  # C-STORE failure: the instance could not be stored
CANNOT_UNDERSTAND = 0xC000


class Receiver:
    def __init__(self, config: NodeConfig, spool: Spool, ingest: Callable[[str, bytes], bool]) -> None:
        self.config, self.spool, self.ingest = config, spool, ingest
        ae = AE(ae_title=config.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = config.network_timeout_s
        ae.maximum_associations = 16
        ae.require_called_aet = True
        ae.require_calling_aet = list(config.allow_calling_ae)
        ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        self.ae = ae
        self.server = None

    def start(self) -> None:
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo),
                    (evt.EVT_REQUESTED, self._on_requested), (evt.EVT_ACCEPTED, self._on_accepted)]  # fmt: skip
        address = (self.config.host, self.config.port)
        try:
            self.server = self.ae.start_server(address, block=False, evt_handlers=handlers)
        except OSError as err:
            raise UsageError(f"cannot listen on {self.config.host}:{self.config.port} ({err.strerror or err}); choose "
                             "another --port or --host, or stop what uses it") from None  # fmt: skip

    def stop(self, wait_s: float = 30.0) -> None:
        """Stop listening; the associations in flight finish (up to ``wait_s``)."""
        if self.server is None:
            return
        active = self.server.active_associations
        self.server.shutdown()
        deadline = time.monotonic() + wait_s
        while any(a.is_alive() for a in active) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.server = None

    def _on_requested(self, event) -> None:
        """An association request: say why it will be rejected, naming both AE titles and the fix."""
        request = event.assoc.requestor.primitive
        calling = str(request.calling_ae_title).strip()
        called = str(request.called_ae_title).strip()
        peer = f"{event.assoc.requestor.address}:{event.assoc.requestor.port}"
        if called != self.config.ae_title:
            LOG.warning("association from %s (calling AE %r) rejected: it called AE %r, this node is %r; set the "
                        "sender's called AE title to %r (or start the node with --ae-title %r)", peer, calling, called,
                        self.config.ae_title, self.config.ae_title, called)  # fmt: skip
        elif self.config.allow_calling_ae and calling not in self.config.allow_calling_ae:
            LOG.warning("association from %s rejected: calling AE %r is not allowed (allowed: %s); add "
                        "--allow-calling-ae %r or fix the sender's AE title", peer, calling,
                        ", ".join(self.config.allow_calling_ae), calling)  # fmt: skip

    def _on_accepted(self, event) -> None:
        refused = [cx for cx in event.assoc.rejected_contexts]
        for context in refused:
            LOG.warning("association from AE %r: refused %s with transfer syntaxes %s (not supported by this node)",
                        str(event.assoc.requestor.ae_title).strip(), context.abstract_syntax.name,
                        ", ".join(str(ts) for ts in context.transfer_syntax))  # fmt: skip

    def _on_echo(self, event) -> int:
        return 0x0000

    def _on_store(self, event) -> int:
        uid = str(event.request.AffectedSOPInstanceUID or "")
        if not uid:
            return CANNOT_UNDERSTAND
        try:
            self.ingest(uid, event.encoded_dataset(include_meta=True))  # blocks while the queue is full
        except OSError as err:
            LOG.error("could not store %s in %s (%s): answered with a failure status; free space or fix the "
                      "spool's permissions", spool_name(uid), self.spool.incoming, err.strerror or err)  # fmt: skip
            return OUT_OF_RESOURCES
        return 0x0000
