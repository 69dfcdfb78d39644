"""The node's spool: every received instance on disk (fsynced) before its sender hears "stored", and markers that
say what has been done with it, so a restart finishes exactly what was left.

    incoming/<uid>.dcm           received instances
    results/<uid>.json           the report, written last: the instance is screened
    results/<uid>.{sr,sc,pr}.dcm the DICOM results (and <uid>.overlay.png)
    forwarded/<uid>@<AE>         the results reached that destination
    failed/<uid>@<AE>.json       they did not, after every retry: the reason (`python -m dernet.node retry`)
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from ..fileio import remove_stale_temp_files, write_bytes_atomic, write_json_atomic

__all__ = ["Spool", "spool_name"]

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def spool_name(sop_instance_uid: str) -> str:
    """The instance's file stem: its SOP Instance UID when it is a well-formed UID, a hash of it otherwise (a name
    from the network never becomes a path as it is)."""
    uid = sop_instance_uid.strip().rstrip("\x00")
    if _UID.match(uid) and len(uid) <= 64:
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:40]


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.incoming, self.results = self.root / "incoming", self.root / "results"
        self.forwarded, self.failed = self.root / "forwarded", self.root / "failed"
        for folder in (self.incoming, self.results, self.forwarded, self.failed):
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_temp_files(folder)

    def store(self, name: str, data: bytes) -> Path:
        """Write a received instance durably (temp file, fsync, rename, fsync of the folder)."""
        path = self.incoming / f"{name}.dcm"
        write_bytes_atomic(path, data, durable=True)
        return path

    def report_path(self, name: str) -> Path:
        return self.results / f"{name}.json"

    def is_screened(self, name: str) -> bool:
        return self.report_path(name).is_file()

    def unscreened(self) -> list[str]:
        """Received instances without a report, oldest first: what a restart screens."""
        received = sorted(self.incoming.glob("*.dcm"), key=lambda p: (p.stat().st_mtime, p.name))
        return [p.stem for p in received if not self.is_screened(p.stem)]

    def result_files(self, name: str) -> list[Path]:
        """The DICOM results of a screened instance (SR, SC, PR; none for a rejected one)."""
        candidates = (self.results / f"{name}{suffix}" for suffix in (".sr.dcm", ".sc.dcm", ".pr.dcm"))
        return [path for path in candidates if path.is_file()]

    def is_forwarded(self, name: str, destination: str) -> bool:
        return (self.forwarded / f"{name}@{_safe(destination)}").is_file()

    def mark_forwarded(self, name: str, destination: str) -> None:
        write_bytes_atomic(self.forwarded / f"{name}@{_safe(destination)}", b"", durable=True)
        (self.failed / f"{name}@{_safe(destination)}.json").unlink(missing_ok=True)

    def mark_failed(self, name: str, destination: str, reason: str) -> None:
        failed = {"instance": name, "destination": destination, "reason": reason}
        write_json_atomic(self.failed / f"{name}@{_safe(destination)}.json", failed)

    def failures(self) -> list[dict[str, str]]:
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(self.failed.glob("*.json"))]

    def is_failed(self, name: str, destination: str) -> bool:
        return (self.failed / f"{name}@{_safe(destination)}.json").is_file()


def _safe(destination: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", destination)
