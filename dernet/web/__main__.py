"""`python -m dernet.web [--host 127.0.0.1] [--port 8000] [--models export] [--max-upload-mb 100]
[--ensemble FILE] [--dicom-config FILE] [--node [--node-config FILE]]`: the gate as a web page (the 'web' extra;
DICOM results and the node with the 'dicom' extra)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cliutil import add_models, run_command
from ..deploy.isolation import IsolationLimits
from ..errors import require_extra
from ..imaging import set_decoder_threads
from .limits import ServerLimits

SHUTDOWN_S = 5  # seconds the server gives in-flight requests on SIGTERM


def main(argv: list[str] | None = None, prog: str = "python -m dernet.web") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Serve the screening gate as a web page.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    add_models(parser)
    limits, isolation = ServerLimits(), IsolationLimits()
    parser.add_argument("--max-upload-mb", type=float, default=limits.max_upload_mb, help="larger uploads: 413")
    parser.add_argument(
        "--max-pending", type=int, default=limits.max_pending, help="analyze requests in hand at once; more: 503"
    )
    parser.add_argument(
        "--max-concurrent", type=int, default=limits.max_concurrent, help="screenings at once (0: one per core)"
    )
    parser.add_argument(
        "--queue-timeout", type=float, default=limits.queue_timeout_s, help="seconds a request waits its turn; 503"
    )
    parser.add_argument("--threads", type=int, default=0, help="inference and decoding threads (0: all cores)")
    parser.add_argument(
        "--decode-workers", type=int, default=isolation.workers, help="processes that decode uploads (0: in-process)"
    )
    parser.add_argument(
        "--decode-timeout", type=float, default=isolation.timeout_s, help="seconds per upload's decoding"
    )
    parser.add_argument("--decode-memory-mb", type=int, default=isolation.memory_mb, help="memory per decoding process")
    parser.add_argument(
        "--ensemble",
        type=Path,
        help="the fitted ensemble (runs/ensemble/ensemble.json or its folder): adds a Grad-CAM heatmap toggle "
        "(loads torch)",
    )
    parser.add_argument(
        "--dicom-config",
        type=Path,
        metavar="FILE",
        help="YAML over dernet/dicom_results/defaults.yaml for the DICOM results (needs the 'dicom' extra)",
    )
    parser.add_argument(
        "--node",
        action="store_true",
        help="also run the DICOM node in this process on the same models: /api/node, STOW-RS on /dicomweb/studies "
        "(the 'dicom' extra)",
    )
    parser.add_argument(
        "--node-config", type=Path, metavar="FILE", help="with --node: its settings (configs/node.yaml)"
    )
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        import uvicorn

        from ..deploy.engines import RuntimeOptions
        from .app import create_app

        set_decoder_threads(args.threads or None)
        limits = ServerLimits(args.max_upload_mb, args.max_pending, args.max_concurrent, args.queue_timeout)
        isolation = None
        if args.decode_workers:
            isolation = IsolationLimits(args.decode_workers, args.decode_timeout, args.decode_memory_mb)
        runtime = RuntimeOptions(threads=args.threads)
        node_config = None
        if args.node:
            require_extra("dicom")
            from ..node.cli import log_to_stderr
            from ..node.config import load_node_config

            node_config = load_node_config(args.node_config, {"models": args.models})
            log_to_stderr()
        app = create_app(args.models, limits, runtime, checkpoints=args.ensemble, isolation=isolation,
                         dicom_config=args.dicom_config, node_config=node_config)  # fmt: skip
        explain = f"; heatmaps from {args.ensemble}" if args.ensemble else ""
        print(f"serving the gate on http://{args.host}:{args.port}/ (models: {args.models}{explain}; Ctrl+C stops)")
        # SIGTERM: in-flight requests get a few seconds to finish (decoding is bounded by --decode-timeout anyway)
        uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=SHUTDOWN_S)
        return 0

    return run_command(run, args)


if __name__ == "__main__":
    raise SystemExit(main())
