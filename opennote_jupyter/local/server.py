"""Run the local backend with uvicorn, in the foreground or in a daemon thread."""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from opennote_jupyter.local import auth
from opennote_jupyter.local.app import Settings, create_app
from opennote_jupyter.local.jobs import JobRunner, RenderFunction
from opennote_jupyter.local.render import render_video
from opennote_jupyter.local.store import Store
from opennote_jupyter.local.webhook import WebhookSender

logger = logging.getLogger(__name__)


class Backend:
    """A store, a job runner and the HTTP app for one data directory.

    ``render`` replaces the renderer (tests use it to slow a render down or hold
    it mid-way). ``recover_seconds`` is how often an idle runner looks for jobs
    left by stopped servers that share the data directory.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        minute_seconds: float = 60.0,
        day_seconds: float = 86400.0,
        workers: int = 1,
        render: RenderFunction = render_video,
        webhooks: WebhookSender | None = None,
        recover_seconds: float = 30.0,
    ) -> None:
        for name, value in (
            ("minute_seconds", minute_seconds),
            ("day_seconds", day_seconds),
        ):
            if not value > 0:
                raise ValueError(
                    f"{name} must be a positive number of seconds, got {value!r}"
                )
        self.data_dir = Path(data_dir)
        self.store = Store(self.data_dir)
        self.settings = Settings(
            data_dir=self.data_dir,
            minute_seconds=minute_seconds,
            day_seconds=day_seconds,
        )
        self.runner = JobRunner(
            self.store,
            self.data_dir,
            webhooks=webhooks or WebhookSender(),
            status_payload=lambda job: {},
            workers=workers,
            render=render,
            recover_seconds=recover_seconds,
        )
        self.app = create_app(self.store, self.runner, self.settings)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def bind(self, host: str, port: int) -> socket.socket:
        """Open the listening socket and set the base URL from its real port."""
        # asyncio sets TCP_NODELAY on accepted connections only when the listening
        # socket's proto is IPPROTO_TCP. Without it, a keep-alive client waits
        # about 40 ms per request for the delayed ACK (Nagle's algorithm).
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno,
                f"cannot listen on {host}:{port} ({exc.strerror}): choose another "
                "port, or 0 for a free one",
            ) from exc
        except OverflowError as exc:
            sock.close()
            raise OSError(
                f"cannot listen on {host}:{port}: the port must be from 0 to 65535"
            ) from exc
        sock.listen(128)
        sock.set_inheritable(True)
        bound_port = sock.getsockname()[1]
        self.settings.base_url = public_base_url(host, bound_port)
        return sock

    def serve_forever(self, host: str = "127.0.0.1", port: int = 8000) -> None:
        """Serve in this thread until interrupted by SIGINT (Ctrl-C) or SIGTERM.

        uvicorn shuts down gracefully on either signal and then raises it again
        with the handler that was installed before it started. Here SIGINT comes
        back as ``KeyboardInterrupt`` and SIGTERM as ``SystemExit``; both end
        this call normally, after the render workers are stopped.
        """
        sock = self._bind_or_release(host, port)
        server = uvicorn.Server(self._config())
        self.runner.start()
        logger.info(
            "local backend serving %s from %s", self.settings.base_url, self.data_dir
        )
        warning = exposure_warning(host, self.settings.base_url)
        if warning is not None:
            logger.warning("%s", warning)
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread:
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            server.run(sockets=[sock])
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous)
            self.runner.stop()
            sock.close()
            logger.info("local backend at %s stopped", self.settings.base_url)

    def start_in_thread(self, port: int = 0, timeout: float = 20.0) -> None:
        """Serve on 127.0.0.1 from a daemon thread until :meth:`stop`.

        Returns once the server accepts connections.
        """
        sock = self._bind_or_release("127.0.0.1", port)
        self._server = uvicorn.Server(self._config())
        self.runner.start()

        def run() -> None:
            try:
                self._server.run(sockets=[sock])
            except Exception:
                logger.exception("local backend at %s crashed", self.settings.base_url)
            finally:
                sock.close()

        self._thread = threading.Thread(
            target=run, name="opennote-local-backend", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the local backend at {self.settings.base_url} did not start "
                    f"within {timeout:g} s; see the log of 'opennote_jupyter.local'"
                )
            time.sleep(0.01)
        logger.info(
            "local backend serving %s from %s", self.settings.base_url, self.data_dir
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and stop the render workers."""
        self.runner.stop()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        logger.info("local backend at %s stopped", self.settings.base_url)

    def create_key(
        self,
        org: str,
        tier: str = "developer",
        credits: float = 100.0,
        per_minute: int | None = None,
        per_day: int | None = None,
    ) -> str:
        """Create an API key for ``org``, as :func:`.auth.create_key` does."""
        return auth.create_key(
            self.store,
            org,
            tier=tier,
            credits=credits,
            per_minute=per_minute,
            per_day=per_day,
        )

    def _bind_or_release(self, host: str, port: int) -> socket.socket:
        try:
            return self.bind(host, port)
        except OSError:
            # This backend will never run, so its jobs lock must not stay held.
            self.runner.instance.release()
            raise

    def _config(self) -> Any:
        return uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )


def public_base_url(host: str, port: int) -> str:
    """Return the URL that clients and ``s3_url`` links use for ``host``:``port``.

    A wildcard address (``0.0.0.0``, ``::`` or empty) accepts connections on every
    interface but cannot be connected to, so it is replaced by the loopback
    address of its family.
    """
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def exposure_warning(host: str, base_url: str) -> str | None:
    """Return a warning when ``host`` accepts connections from other machines.

    Returns ``None`` for ``localhost`` and loopback addresses.
    """
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # A host name other than localhost, or the empty wildcard.
    warning = (
        f"listening on {host or 'all interfaces'} exposes the server beyond this "
        "machine: anyone who can reach the port can fetch videos by their links, and "
        "anyone with one of its keys can create jobs. Use --host 127.0.0.1 to "
        "accept local connections only."
    )
    if host in ("", "0.0.0.0", "::"):
        warning += f" Video links name {base_url}, which works on this machine only."
    return warning


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)
