"""`python -m dernet.node [--config FILE] [--ae-title AE] [--host H] [--port P] [--allow-calling-ae AE ...]
[--models DIR] [--spool DIR] [--workers N] [--mode M] [--forward AE@HOST:PORT ...]`: a DICOM node that receives
radiographs (C-STORE), screens them and sends the SR, SC and PR back; `python -m dernet.node retry` resends what
could not be delivered. Needs the 'dicom' extra (pynetdicom, highdicom).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..cliutil import run_command
from ..errors import require_extra

__all__ = ["log_to_stderr", "main"]


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A DICOM node: receive radiographs from a PACS or modality (C-STORE), screen them, send the "
        "results (SR, Secondary Capture, presentation state) on by C-STORE. `retry` as the first argument resends "
        "results that could not be delivered.",
        epilog="Flags override --config, which overrides the defaults (configs/node.yaml lists every key).",
    )
    parser.add_argument("--config", type=Path, help="YAML with the node's settings (configs/node.yaml)")
    parser.add_argument("--ae-title", dest="ae_title", help="this node's AE title (default SPINECAD)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, help="DICOM port (default 11112)")
    parser.add_argument("--allow-calling-ae", dest="allow_calling_ae", action="append", metavar="AE",
                        help="a calling AE title allowed to send (repeatable; default: any)")  # fmt: skip
    parser.add_argument("--models", type=Path, help="the export folder (default export)")
    parser.add_argument("--spool", type=Path, help="received instances and results (default spool)")
    parser.add_argument("--workers", type=int, help="screening threads (default 1)")
    parser.add_argument("--mode", choices=("gate", "fusion", "all"), help="the gate's mode (default gate)")
    parser.add_argument("--forward", action="append", metavar="AE@HOST:PORT",
                        help="a destination for the results (repeatable), e.g. PACS@10.0.0.5:104")  # fmt: skip
    parser.add_argument("--dicom-config", dest="dicom_config", type=Path,
                        help="YAML over the DICOM results' defaults (manufacturer, series numbers, ...)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m dernet.node") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    retry = bool(argv) and argv[0] == "retry"
    args = _parser(f"{prog} retry" if retry else prog).parse_args(argv[1:] if retry else argv)

    def run(args: argparse.Namespace) -> int:
        require_extra("dicom")
        from .config import load_node_config
        from .node import Node, retry_failed

        overrides = {k: v for k, v in vars(args).items() if k != "config"}
        if overrides["allow_calling_ae"] is not None:
            overrides["allow_calling_ae"] = tuple(overrides["allow_calling_ae"])
        config = load_node_config(args.config, overrides)
        log_to_stderr()
        if retry:
            delivered, failing = retry_failed(config)
            print(f"{delivered} result set(s) delivered, {failing} still failing (see {config.spool / 'failed'})")
            return 1 if failing else 0
        Node(config).serve_forever()
        return 0

    return run_command(run, args)


def log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    node = logging.getLogger("dernet.node")
    node.addHandler(handler)
    node.setLevel(logging.INFO)
    # pynetdicom logs each network event (per PDU at INFO, a refused connection at ERROR); every failure it reports
    # also reaches one line of the node's own that names the peer and the fix, so its lines would only repeat them
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
