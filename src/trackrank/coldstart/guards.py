"""What guards ``trackrank serve`` before an endpoint runs, and what it logs: ASGI middleware that refuses a
body past the upload limit as it streams and a POST sent by another site's page, a bound on the uploads
decoded at once, and one log line per request.

Why here and not in the endpoints: a refusal must come before the body is read (a 413 after 10 GiB is
spooled bounds nothing), and a browser sends another site's multipart form without asking first.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from fastapi import HTTPException
from fastapi.responses import JSONResponse

from trackrank.errors import shortened

log = logging.getLogger("trackrank.coldstart.service")  # the service's log: one line per request


class BodyLimit:
    """Refuse a request body past ``max_bytes`` with 413: on its declared Content-Length before reading
    it, or, for a body without one (chunked), as soon as the bytes received pass the limit, so that
    nothing past the limit is ever spooled."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def refusal(self, received: int | None = None) -> str:
        size = f" ({received / 2**20:.1f} MiB)" if received else ""
        return f"upload larger than the {self.max_bytes / 2**20:.0f} MiB limit{size}"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await JSONResponse({"detail": self.refusal(int(declared))}, status_code=413)(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.refusal())  # FastAPI turns it into the response
            return message

        return await self.app(scope, counted, send)


class RequestLog:
    """One line per request, JSON: method, path, status, milliseconds, and the refusal's reason."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, line = time.perf_counter(), {"method": scope["method"], "path": scope["path"], "status": 500}
        body = bytearray()

        async def recorded(message):
            if message["type"] == "http.response.start":
                line["status"] = message["status"]
            elif message["type"] == "http.response.body" and line["status"] >= 400 and len(body) < 4096:
                body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        finally:
            line["ms"] = round(1000 * (time.perf_counter() - started), 1)
            if line["status"] >= 400:
                try:
                    line["reason"] = json.loads(bytes(body))["detail"]
                except (ValueError, KeyError, TypeError):
                    line["reason"] = bytes(body[:200]).decode("utf-8", "replace")
            log.info("%s", json.dumps(line))


class SameSiteUploads:
    """Refuse with 403 a POST whose ``Origin`` is neither this service's own address nor one of
    ``allowed_origins`` (``*``: any).

    Why: a multipart form is a "simple" request that a browser sends to any address without asking the
    server first (no CORS preflight), so CORS headers alone would not stop a page on another site from
    making the visitor's browser upload files to a server on their machine. Requests without an
    ``Origin`` (curl, scripts, same-origin GETs) are not concerned.
    """

    def __init__(self, app, allowed_origins: list[str] | tuple[str, ...] = ()):
        self.app, self.allowed = app, set(allowed_origins)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            headers = dict(scope["headers"])
            origin = headers.get(b"origin", b"").decode("latin-1")
            own = urlsplit(origin).netloc == headers.get(b"host", b"").decode("latin-1")
            if origin and not own and origin not in self.allowed and "*" not in self.allowed:
                detail = (
                    f"{scope['method']} from a page of {shortened(origin)} refused: only this service's own "
                    "page may send it (trackrank serve --cors-origin allows another site)"
                )
                return await JSONResponse({"detail": detail}, status_code=403)(scope, receive, send)
        return await self.app(scope, receive, send)


class DecodeSlots:
    """At most ``n`` uploads decoded at once; another waits up to ``wait_s`` seconds for a turn, then
    gets 503 with ``Retry-After``. Why: each decode holds its own blocks, CQT and patches, so the
    server's peak memory is its resting size plus ``n`` times one request's."""

    def __init__(self, n: int, wait_s: float):
        self.n, self.wait_s = n, wait_s
        self._free = threading.BoundedSemaphore(n)

    @contextmanager
    def taken(self) -> Iterator[None]:
        if not self._free.acquire(timeout=self.wait_s):
            retry = max(1, round(self.wait_s))
            raise HTTPException(
                503,
                f"busy: {self.n} uploads are being decoded, the most at once; try again in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        try:
            yield
        finally:
            self._free.release()
