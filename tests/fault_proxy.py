"""A fault-injecting HTTP proxy on 127.0.0.1 for client tests.

It forwards requests to a real server and, where a test's plan requests it, breaks
the exchange in ways a healthy server will not on demand: it drops the connection
after the server handled the request (the response is lost), drops it before, holds
the response past the client's timeout, or responds by itself (a 500, a 429 with a
chosen ``Retry-After``, a 401 that echoes the caller's key).

This is the one deliberate stand-in in the client tests: every job still comes
from the real local backend behind it.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
}


@dataclass
class Fault:
    """What the proxy does with one request.

    ``kind`` is one of ``drop_after`` (forward, then close without responding),
    ``drop_before`` (close without forwarding), ``slow`` (forward, then wait
    ``delay`` seconds before responding) or ``respond`` (respond with ``status``,
    ``headers`` and ``body`` without forwarding; ``{auth}`` in the body or a header
    value becomes the request's bearer token, and ``{auth_escaped}`` in the body
    becomes the token written as JSON ``\\uXXXX`` escapes).
    """

    kind: str
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    delay: float = 0.0


@dataclass
class Seen:
    """One request as the proxy saw it, and what came of it."""

    method: str
    path: str
    fault: str | None
    forwarded: bool
    status: int | None
    at: float
    idempotency_key: str | None


@dataclass(frozen=True)
class Request:
    """The request data a plan receives.

    ``attempt`` counts requests with the same method, path and
    ``Idempotency-Key``, from 1, so it numbers the retries of one create.
    """

    method: str
    path: str
    attempt: int
    idempotency_key: str | None


Plan = Callable[[Request], "Fault | None"]


class FaultProxy:
    """Forward to ``upstream``, applying ``plan(request)`` to each request."""

    def __init__(self, upstream: str, plan: Plan | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port
        self.plan: Plan = plan or (lambda request: None)
        self.seen: list[Seen] = []
        self._counts: dict[tuple[str, str, str | None], int] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening, release held responses and close the socket."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def requests_to(self, method: str, prefix: str) -> list[Seen]:
        """Return what was seen for ``method`` on paths starting with ``prefix``."""
        with self._lock:
            return [
                s for s in self.seen if s.method == method and s.path.startswith(prefix)
            ]

    def _record(
        self,
        handler: BaseHTTPRequestHandler,
        fault: Fault | None,
        forwarded: bool,
        status: int | None,
    ) -> None:
        with self._lock:
            self.seen.append(
                Seen(
                    handler.command,
                    handler.path,
                    fault.kind if fault else None,
                    forwarded,
                    status,
                    time.monotonic(),
                    handler.headers.get("Idempotency-Key"),
                )
            )

    def _forward(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(
            self.upstream_host, self.upstream_port, timeout=30
        )
        try:
            headers = {
                k: v for k, v in handler.headers.items() if k.lower() not in HOP_HEADERS
            }
            conn.request(
                handler.command, handler.path, body=body or None, headers=headers
            )
            response = conn.getresponse()
            data = response.read()
            out_headers = [
                (k, v) for k, v in response.getheaders() if k.lower() not in HOP_HEADERS
            ]
            return response.status, out_headers, data
        finally:
            conn.close()

    def _respond(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        headers: list[tuple[str, str]],
        data: bytes,
    ) -> None:
        try:
            handler.send_response(status)
            for name, value in headers:
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            # The client gave up (its timeout passed); nothing to send.
            pass
        handler.close_connection = True

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = handler.path
        ikey = handler.headers.get("Idempotency-Key")
        with self._lock:
            key = (handler.command, path, ikey)
            self._counts[key] = self._counts.get(key, 0) + 1
            attempt = self._counts[key]
        fault = self.plan(Request(handler.command, path, attempt, ikey))
        handler.close_connection = True
        if fault is not None and fault.kind == "drop_before":
            self._record(handler, fault, False, None)
            return
        if fault is not None and fault.kind == "respond":
            token = handler.headers.get("Authorization", "").removeprefix("Bearer ")
            escaped = "".join(f"\\u{ord(ch):04x}" for ch in token)
            data = (
                fault.body.replace("{auth}", token)
                .replace("{auth_escaped}", escaped)
                .encode()
            )
            headers = [
                ("Content-Type", "application/json"),
                *((k, v.replace("{auth}", token)) for k, v in fault.headers.items()),
            ]
            self._record(handler, fault, False, fault.status)
            self._respond(handler, fault.status, headers, data)
            return
        status, headers, data = self._forward(handler, body)
        self._record(handler, fault, True, status)
        if fault is not None and fault.kind == "drop_after":
            return
        if fault is not None and fault.kind == "slow":
            self._stopping.wait(fault.delay)
        self._respond(handler, status, headers, data)
