"""The gate as a web page and a JSON API (FastAPI), on the gate's own core: one Screener, loaded once at start.

POST /api/analyze  multipart `file` (+ optional `mode`, `conf`, `dicom`): the gate's report plus
                   `overlay_png_base64` (and `heatmap_png_base64`, Grad-CAM over the overlay, when the server was
                   started with checkpoints; with `dicom=true`, `dicom`: the SR, SC and PR of a DICOM upload as
                   base64 Part 10 files, which carry its patient and study modules, or a note why there are none);
                   413 over the size limit (refused while streaming), 415 not a DICOM/PNG/JPEG, 422 unreadable or
                   rejected (with the report), 500 a bug met on the input (with the report), 503 busy
GET  /api/health   status and model hashes
GET  /api/node     the DICOM node's counts, queue depth and uptime (with --node)
POST /dicomweb/studies  STOW-RS (multipart/related; type="application/dicom") into the node (with --node): the
                   standard response (DICOM JSON); 200 all stored, 202 some failed, 409 none stored
GET  /             the page (no external scripts, styles or fonts)
GET  /docs         OpenAPI documentation (FastAPI's default)
"""

from __future__ import annotations

import base64
import importlib.util
import logging
import os
import threading
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import cv2
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from ..deploy.engines import RuntimeOptions
from ..deploy.isolation import IsolationLimits
from ..deploy.report import build_report, render_overlay
from ..deploy.screening import MODES, Screener, Screening
from ..errors import require_extra
from .guard import AnalyzeGuard
from .limits import ServerLimits

if TYPE_CHECKING:
    from ..node.config import NodeConfig

LOG = logging.getLogger(__name__)

__all__ = ["ServerLimits", "create_app"]

UNSUPPORTED_MEDIA = {"not_an_image"}  # reason codes answered 415; every other rejection is 422
ANALYZE = "/api/analyze"
STOW = "/dicomweb/studies"
DEFAULT_ISOLATION = IsolationLimits()
ERRORS = {
    413: "The upload is larger than the server's limit (refused while it streams).",
    415: "Not a DICOM, PNG or JPEG file: the report, with reason_code not_an_image.",
    422: "Unreadable or rejected (the report, with reason and reason_code), or a form field out of range.",
    500: "A bug met on this input: the report, with reason_code internal_error (the traceback is in the log).",
    503: "Busy: more requests in hand than the server takes on, or no screening slot within the queue timeout.",
}


STOW_ANSWERS = {
    200: "Every instance stored (DICOM JSON: ReferencedSOPSequence).",
    202: "Some stored, some not (FailedSOPSequence gives each failure's reason).",
    404: "This server runs no DICOM node (start it with --node).",
    409: "No instance stored.",
    413: "The body is larger than the server's limit.",
    415: 'Not multipart/related; type="application/dicom".',
}


def create_app(
    models: str | Path = "export",
    limits: ServerLimits | None = None,
    runtime: RuntimeOptions | None = None,
    screener: Screener | None = None,
    checkpoints: str | Path | None = None,
    isolation: IsolationLimits | None = DEFAULT_ISOLATION,
    dicom_config: str | Path | None = None,
    node_config: NodeConfig | None = None,
) -> FastAPI:
    """The app, with the models loaded now (a missing or broken export fails here, at start, not per request).

    Uploads are decoded in worker processes bounded by ``isolation`` (None: in the server's own process). A given
    ``screener`` is used as it is (and stays the caller's to close). With ``checkpoints`` (the folder holding
    ensemble.json) each report also carries a Grad-CAM heatmap; that loads the PyTorch members (and torch) once, here.
    DICOM results are offered when the 'dicom' extra is installed (``dicom_config``: YAML over its defaults).
    With ``node_config`` a DICOM node runs in this process on the same models (started and stopped with the app),
    its status on ``/api/node`` and STOW-RS into it on ``/dicomweb/studies``.
    """
    limits = limits or ServerLimits()
    owned = screener is None
    screener = screener or Screener(models, runtime, isolation=isolation)
    explainer = None
    if checkpoints is not None:
        from ..explain import explainer_for_export  # torch, only when heatmaps are asked for

        explainer = explainer_for_export(checkpoints, screener.manifest)
    dicom_settings = _dicom_settings(dicom_config)
    explain_lock = threading.Lock()  # grad-cam hooks the members per call: one explanation at a time
    slots = threading.BoundedSemaphore(limits.max_concurrent or os.cpu_count() or 1)
    page = resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")

    node = None
    if node_config is not None:
        from ..node.node import Node  # pynetdicom: only when a node is asked for

        node = Node(node_config, screener)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if node is not None:
            node.start()
        yield
        if node is not None:
            node.stop()
        if owned:
            screener.close()  # the decoding workers

    app = FastAPI(
        title="spine-cad screening gate",
        description="Abnormality score and lesion boxes for spine radiographs. Not for clinical use without "
        "validation on your own data.",
        lifespan=lifespan,
    )
    for guarded in (ANALYZE, STOW):
        app.add_middleware(
            AnalyzeGuard, path=guarded, max_body=int(limits.max_upload_mb * 2**20), max_pending=limits.max_pending
        )
    app.add_exception_handler(RequestValidationError, _short_validation_errors)

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
            "max_upload_mb": limits.max_upload_mb,
            "explain": explainer is not None,
            "dicom": dicom_settings is not None,
        }

    @app.get("/api/node")
    def node_status() -> dict[str, Any]:
        """The DICOM node's counts (received, screened, forwarded, ...), queue depth and uptime."""
        if node is None:
            raise HTTPException(404, "no DICOM node in this server: start it with --node")
        return node.status.snapshot()

    @app.post(STOW, responses={code: {"description": text} for code, text in STOW_ANSWERS.items()})
    async def stow(request: Request) -> JSONResponse:
        """STOW-RS: store DICOM instances (multipart/related; type="application/dicom") into the node's spool, where
        they are screened and their results forwarded as if they had come by C-STORE."""
        if node is None:
            raise HTTPException(404, "STOW-RS feeds the DICOM node: start the server with --node")
        from ..node.stow import StowError, ingest_parts, parse_multipart_related, stow_response

        body = await request.body()  # within the upload limit: the guard refused anything larger
        try:
            parts = parse_multipart_related(request.headers.get("content-type", ""), body)
        except StowError as err:
            raise HTTPException(415, str(err)) from None
        stored, failed = await run_in_threadpool(ingest_parts, node.processor.ingest, parts)
        code = 200 if not failed else 202 if stored else 409
        return JSONResponse(stow_response(stored, failed), status_code=code, media_type="application/dicom+json")

    @app.post(ANALYZE, responses={code: {"description": text} for code, text in ERRORS.items()})
    def analyze(
        file: Annotated[UploadFile, File()],
        mode: Annotated[str, Form()] = "gate",
        conf: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
        dicom: Annotated[bool, Form()] = False,
    ) -> JSONResponse:
        """Screen one uploaded radiograph (kept in memory only); the gate's report plus the overlay as base64 PNG.

        ``conf`` is the detector's minimum box confidence (default: the manifest's), as the gate's ``--conf``.
        ``dicom``: also the SR, SC and PR of a DICOM upload (base64), as the gate's ``--dicom`` writes them.
        """
        if mode not in MODES:
            raise HTTPException(422, f"mode must be one of {', '.join(MODES)}, got {_short(mode)}")
        if dicom and dicom_settings is None:
            raise HTTPException(422, "this server cannot write DICOM results: install spine-cad[dicom] and restart")
        data = file.file.read()  # within the upload limit: AnalyzeGuard refused anything larger
        if not slots.acquire(timeout=limits.queue_timeout_s):
            detail = f"no screening slot within {limits.queue_timeout_s:g} s; try again shortly"
            raise HTTPException(503, detail, headers={"Retry-After": "5"})
        try:
            result = screener.screen(data, name=_upload_name(file.filename), mode=mode, conf=conf)
            heatmap = None
            if explainer is not None and result.status == "ok":
                with explain_lock:
                    heatmap = explainer.heatmap_on_windowed(result.windowed)
        finally:
            slots.release()
        if result.error_traceback:
            LOG.error("%s: %s\n%s", result.input, result.reason, result.error_traceback)
        overlay = render_overlay(result)  # drawn once: the answer's PNG and the Secondary Capture
        report = _report(result, screener, overlay, heatmap)
        if dicom:
            used_conf = screener.manifest.detector.conf if conf is None else conf
            report["dicom"] = _dicom_answer(data, result, overlay, screener, used_conf, dicom_settings)
        return JSONResponse(report, status_code=_status(result))

    return app


def _dicom_settings(config: str | Path | None):
    """The DICOM results' settings when the 'dicom' extra is installed; None (the page hides the option) when not,
    unless a config file asks for them, which then needs the extra."""
    if config is None and importlib.util.find_spec("highdicom") is None:
        return None
    require_extra("dicom")
    from ..dicom_results import load_settings

    return load_settings(Path(config) if config is not None else None)


def _dicom_answer(
    data: bytes, result: Screening, overlay, screener: Screener, conf: float, settings
) -> dict[str, Any]:
    """The upload's SR, SC and PR as base64 Part 10 files (``sr_base64``, ...), or nulls and a ``note``."""
    from ..dicom_results import KINDS, build_results

    built = build_results(data, result, overlay, screener.model_hashes, conf, settings)
    if built.error_traceback:
        LOG.error("%s: %s\n%s", result.input, built.note, built.error_traceback)
    answer: dict[str, Any] = {
        f"{kind}_base64": base64.b64encode(built.objects[kind]).decode("ascii") if kind in built.objects else None
        for kind in KINDS
    }
    answer["note"] = built.note
    return answer


def _status(result: Screening) -> int:
    if result.status == "ok":
        return 200
    if result.status == "error":
        return 500
    return 415 if result.reason_code in UNSUPPORTED_MEDIA else 422


async def _short_validation_errors(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 for a malformed form, with what the client sent cut to a short prefix (never echoed in full)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:200], "input": _short(e.get("input"))}
              for e in errors]  # fmt: skip
    return JSONResponse({"detail": detail}, status_code=422)


def _short(value: Any, limit: int = 32) -> str:
    """A client's value as a message may quote it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _upload_name(filename: str | None) -> str:
    """A neutral name for the report: file names can carry patient names, so only the extension is kept."""
    suffix = Path(filename or "").suffix.lower()
    return "upload" + (suffix if suffix in {".dcm", ".dicom", ".png", ".jpg", ".jpeg"} else "")


def _report(result: Screening, screener: Screener, overlay, heatmap=None) -> dict[str, Any]:
    report = build_report(result, None, screener.model_hashes)
    report["overlay_png_base64"] = _png_base64(overlay)
    if heatmap is not None:
        report["heatmap_png_base64"] = _png_base64(render_overlay(result, heatmap))
    return report


def _png_base64(image) -> str | None:
    if image is None:
        return None
    ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    return base64.b64encode(png.tobytes()).decode("ascii") if ok else None
