"""What the analyze endpoint accepts before any of it is read: how many requests at once, how large a body.

An ASGI middleware in front of one path. It answers 503 when more requests are pending than the server takes on
(they would otherwise queue without bound), and 413 as soon as a body passes the upload limit while it streams, a
declared Content-Length or a chunked upload alike, so nothing beyond the limit is buffered in memory or spooled to
disk. Starlette has a body limiter (RequestBodyLimitMiddleware), but it answers a declared oversize in plain text,
and the page and API clients read JSON; admission has no library counterpart at this level.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AnalyzeGuard"]


class AnalyzeGuard:
    """Guards ``path``: at most ``max_pending`` requests in flight (uploading, waiting or screening), bodies of at most
    ``max_body`` bytes. Runs on the event loop, so its counter needs no lock."""

    def __init__(self, app: ASGIApp, path: str, max_body: int, max_pending: int) -> None:
        self.app, self.path, self.max_body, self.max_pending = app, path, max_body, max_pending
        self.pending = 0

    @property
    def too_large(self) -> str:
        return f"upload larger than the {self.max_body / 2**20:.3g} MB limit"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if self.pending >= self.max_pending:
            busy = {"detail": f"the server has {self.pending} requests in hand; try again shortly"}
            await JSONResponse(busy, status_code=503, headers={"Retry-After": "5"})(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await JSONResponse({"detail": self.too_large}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:  # FastAPI passes an HTTPException on from the body parser
                    raise HTTPException(413, self.too_large)
            return message

        self.pending += 1
        try:
            await self.app(scope, receive_limited, send)
        finally:
            self.pending -= 1


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None
