"""`python -m dernet.web [--host 127.0.0.1] [--port 8000] [--models export] [--max-upload-mb 100]
[--checkpoints DIR]`: the gate as a web page (the 'web' extra)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cliutil import run_command
from ..imaging import set_decoder_threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dernet.web", description="Serve the screening gate as a web page.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--models", type=Path, default=Path("export"), help="exported models folder")
    parser.add_argument("--max-upload-mb", type=float, default=100.0, help="larger uploads are refused with 413")
    parser.add_argument("--threads", type=int, default=0, help="inference and decoding threads (0: all cores)")
    parser.add_argument(
        "--checkpoints",
        type=Path,
        help="folder holding ensemble.json (e.g. runs/ensemble): adds a Grad-CAM heatmap toggle (loads torch)",
    )
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        import uvicorn

        from ..deploy.engines import RuntimeOptions
        from .app import create_app

        set_decoder_threads(args.threads or None)
        runtime = RuntimeOptions(threads=args.threads)
        app = create_app(args.models, args.max_upload_mb, runtime, checkpoints=args.checkpoints)  # loads the models
        explain = f"; heatmaps from {args.checkpoints}" if args.checkpoints else ""
        print(f"serving the gate on http://{args.host}:{args.port}/ (models: {args.models}{explain}; Ctrl+C stops)")
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")
        return 0

    return run_command(run, args)


if __name__ == "__main__":
    raise SystemExit(main())
