"""The gate as a web page and a JSON API (FastAPI), on the gate's own core: one Screener, loaded once at start.

POST /api/analyze  multipart `file` (+ optional `mode`, `conf`): the gate's report plus `overlay_png_base64` (and
                   `heatmap_png_base64`, Grad-CAM over the overlay, when the server was started with checkpoints);
                   413 over the size limit, 415 not a DICOM/PNG/JPEG, 422 unreadable or rejected (with the report)
GET  /api/health   status and model hashes
GET  /             the page (no external scripts, styles or fonts)
GET  /docs         OpenAPI documentation (FastAPI's default)
"""

from __future__ import annotations

import base64
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import cv2
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse

from ..deploy.engines import RuntimeOptions
from ..deploy.report import build_report, render_overlay
from ..deploy.screening import MODES, Screener, Screening

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "create_app"]

DEFAULT_MAX_UPLOAD_MB = 100.0
UNSUPPORTED_MEDIA = {"not_an_image"}  # reason codes answered 415; every other rejection is 422
CHUNK = 1 << 20


def create_app(
    models: str | Path = "export",
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    runtime: RuntimeOptions | None = None,
    screener: Screener | None = None,
    checkpoints: str | Path | None = None,
) -> FastAPI:
    """The app, with the models loaded now (a missing or broken export fails here, at start, not per request).

    With ``checkpoints`` (the folder holding ensemble.json) each report also carries a Grad-CAM heatmap; that loads
    the PyTorch members (and torch) once, here.
    """
    screener = screener or Screener(models, runtime)
    explainer = None
    if checkpoints is not None:
        from ..explain import explainer_for_export  # torch, only when heatmaps are asked for

        explainer = explainer_for_export(checkpoints, screener.manifest)
    explain_lock = threading.Lock()  # grad-cam hooks the members per call: one explanation at a time
    limit = int(max_upload_mb * 1024 * 1024)
    page = resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")
    app = FastAPI(
        title="spine-cad screening gate",
        description="Abnormality score and lesion boxes for spine radiographs. Not for clinical use without "
        "validation on your own data.",
    )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        """Whether the models are loaded, their sha256, and the defaults the page shows."""
        m = screener.manifest
        return {
            "status": "ok",
            "models": screener.model_hashes,
            "threshold": m.classifier.threshold,
            "conf": m.detector.conf,
            "modes": list(MODES),
            "max_upload_mb": max_upload_mb,
            "explain": explainer is not None,
        }

    @app.post("/api/analyze")
    def analyze(
        request: Request,
        file: Annotated[UploadFile, File()],
        mode: Annotated[str, Form()] = "gate",
        conf: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
    ) -> JSONResponse:
        """Screen one uploaded radiograph (kept in memory only); the gate's report plus the overlay as base64 PNG.

        ``conf`` is the detector's minimum box confidence (default: the manifest's), as the gate's ``--conf``.
        """
        if mode not in MODES:
            raise HTTPException(422, f"mode must be one of {', '.join(MODES)}, got '{mode}'")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + CHUNK:
            raise HTTPException(413, f"upload larger than the {max_upload_mb:g} MB limit")
        data = _read_limited(file, limit, max_upload_mb)
        result = screener.screen(data, name=_upload_name(file.filename), mode=mode, conf=conf)
        heatmap = None
        if explainer is not None and result.status == "ok":
            with explain_lock:
                heatmap = explainer.heatmap_on_windowed(result.windowed)
        report = _report(result, screener, heatmap)
        if result.status == "ok":
            return JSONResponse(report)
        return JSONResponse(report, status_code=415 if result.reason_code in UNSUPPORTED_MEDIA else 422)

    return app


def _read_limited(file: UploadFile, limit: int, limit_mb: float) -> bytes:
    """The upload's bytes, refusing (413) as soon as it passes the limit; nothing is written to disk by us."""
    chunks, size = [], 0
    while chunk := file.file.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"upload larger than the {limit_mb:g} MB limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _upload_name(filename: str | None) -> str:
    """A neutral name for the report: file names can carry patient names, so only the extension is kept."""
    suffix = Path(filename or "").suffix.lower()
    return "upload" + (suffix if suffix in {".dcm", ".dicom", ".png", ".jpg", ".jpeg"} else "")


def _report(result: Screening, screener: Screener, heatmap=None) -> dict[str, Any]:
    report = build_report(result, None, screener.model_hashes)
    report["overlay_png_base64"] = _png_base64(render_overlay(result))
    if heatmap is not None:
        report["heatmap_png_base64"] = _png_base64(render_overlay(result, heatmap))
    return report


def _png_base64(image) -> str | None:
    if image is None:
        return None
    ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    return base64.b64encode(png.tobytes()).decode("ascii") if ok else None
