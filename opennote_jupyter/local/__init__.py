"""The embedded Opennote-compatible backend: HTTP API, job store and renderer.

:func:`start_local_backend` serves the Opennote Video API on a free loopback port
from a daemon thread of this process. Importing this package is cheap: FastAPI,
uvicorn and the renderer load when a backend starts.
"""

from __future__ import annotations

import atexit
import threading
from pathlib import Path
from typing import Any

__all__ = ["LocalBackend", "default_backend", "start_local_backend"]

# Limits of the organization behind LocalBackend.api_key: high enough that a
# notebook user never meets them, finite so the rate limiter still runs.
DEFAULT_ORGANIZATION = "local"
DEFAULT_PER_MINUTE = 1000
DEFAULT_PER_DAY = 100_000
DEFAULT_CREDITS = 1e9


class LocalBackend:
    """A running local backend.

    Attributes
    ----------
    base_url
        Where it listens, for example ``"http://127.0.0.1:41234"``.
    api_key
        A key of an enterprise organization with generous limits and credits.
    data_dir
        The directory with its database and video files.
    """

    def __init__(self, backend: Any, api_key: str) -> None:
        self._backend = backend
        self.base_url: str = backend.settings.base_url
        self.api_key = api_key
        self.data_dir: Path = backend.data_dir

    def create_key(
        self,
        org: str,
        tier: str = "developer",
        credits: float = 100.0,
        per_minute: int | None = None,
        per_day: int | None = None,
    ) -> str:
        """Create an API key of organization ``org``, creating the organization if new.

        A new organization gets ``tier`` and ``credits``; ``enterprise`` needs
        ``per_minute`` and ``per_day``. An existing organization keeps its tier
        and credits, so two calls with one name give two keys sharing one limit.
        """
        return self._backend.create_key(
            org, tier=tier, credits=credits, per_minute=per_minute, per_day=per_day
        )

    def stop(self) -> None:
        """Stop serving; a render in progress aborts at its next stage."""
        self._backend.stop()

    def __repr__(self) -> str:
        return (
            f"LocalBackend(base_url={self.base_url!r}, data_dir={str(self.data_dir)!r})"
        )


def start_local_backend(
    data_dir: str | Path | None = None,
    *,
    port: int = 0,
    minute_seconds: float = 60.0,
    day_seconds: float = 86400.0,
) -> LocalBackend:
    """Start a local backend on 127.0.0.1 in a daemon thread and return it.

    Parameters
    ----------
    data_dir
        Directory for the database and videos; default
        :func:`opennote_jupyter.paths.local_backend_dir`.
    port
        Port to listen on; 0 picks a free one.
    minute_seconds, day_seconds
        Lengths of the two rate-limit windows in seconds; shorten them to test
        pacing quickly.

    Returns
    -------
    LocalBackend
        Started and accepting connections.
    """
    from opennote_jupyter.local.server import Backend
    from opennote_jupyter.paths import local_backend_dir

    directory = Path(data_dir) if data_dir is not None else local_backend_dir()
    backend = Backend(directory, minute_seconds=minute_seconds, day_seconds=day_seconds)
    api_key = backend.create_key(
        DEFAULT_ORGANIZATION,
        tier="enterprise",
        credits=DEFAULT_CREDITS,
        per_minute=DEFAULT_PER_MINUTE,
        per_day=DEFAULT_PER_DAY,
    )
    backend.start_in_thread(port=port)
    return LocalBackend(backend, api_key)


_default: LocalBackend | None = None
_default_lock = threading.Lock()


def default_backend() -> LocalBackend:
    """Return this process's shared local backend, starting it on first call.

    Its data directory is :func:`opennote_jupyter.paths.local_backend_dir`, so
    videos made in earlier sessions stay available. It stops when Python exits.
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = start_local_backend()
            atexit.register(_default.stop)
        return _default
