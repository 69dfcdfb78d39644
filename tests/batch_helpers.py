"""A fault for the batch tests, set up in every Ray worker (``worker_process_setup_hook``): the first actor to meet
an input named ``crash-once*`` dies, as a native decoder's crash would kill it; its restarted successor screens it."""

from __future__ import annotations

import os
from pathlib import Path

CRASH_MARKER = "SPINE_CAD_TEST_CRASHED"  # names the file that records the crash, so that it happens once


def crash_once_on_marked_inputs() -> None:
    from dernet.deploy import screening

    prepare = screening.Screener.prepare

    def prepare_or_crash(self, source, name=None, mode="gate"):
        marker = Path(os.environ[CRASH_MARKER])
        if name and Path(name).name.startswith("crash-once") and not marker.exists():
            marker.write_text(f"{os.getpid()}\n")
            os._exit(1)
        return prepare(self, source, name, mode)

    screening.Screener.prepare = prepare_or_crash
