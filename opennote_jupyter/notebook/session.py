"""The kernel's shared Opennote client, and the key set with ``%opennote login``.

The key typed at ``%opennote login`` lives only in this module's memory: it is
never written to disk, the notebook or the history, and it is gone when the
kernel stops. Without it the client reads ``OPENNOTE_API_KEY`` and
``OPENNOTE_BASE_URL``, and with no key anywhere it uses the embedded local backend.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_lock = threading.Lock()
_login_key: str | None = None
_client: Any = None
_client_config: tuple[Any, ...] | None = None
_pinned: Any = None


def set_api_key(key: str | None) -> None:
    """Use ``key`` for every later request in this kernel; ``None`` clears it."""
    global _login_key
    with _lock:
        _login_key = key or None


def has_login_key() -> bool:
    """Return whether ``%opennote login`` stored a key in this kernel."""
    return _login_key is not None


def use_client(client: Any) -> None:
    """Make the magics and forms of this kernel use ``client``; ``None`` undoes it.

    For a client with its own settings, such as ``OpennoteClient(tier="scale")``.
    """
    global _pinned
    with _lock:
        _pinned = client


def has_own_client() -> bool:
    """Return whether :func:`use_client` set a client for this kernel."""
    return _pinned is not None


def get_client() -> Any:
    """Return the shared client, built again when the key or base URL changed."""
    global _client, _client_config
    if _pinned is not None:
        return _pinned
    config = (
        _login_key,
        os.environ.get("OPENNOTE_API_KEY"),
        os.environ.get("OPENNOTE_BASE_URL"),
    )
    with _lock:
        if _client is None or config != _client_config:
            from opennote_jupyter.client import OpennoteClient

            old = _client
            _client = OpennoteClient(api_key=_login_key)
            _client_config = config
            close = getattr(old, "close", None)
            if close is not None:
                close()
        return _client


def reset() -> None:
    """Forget the login key and the clients (``%opennote logout`` calls it)."""
    global _client, _client_config, _login_key, _pinned
    with _lock:
        old = _client
        _client = None
        _client_config = None
        _login_key = None
        _pinned = None
    close = getattr(old, "close", None)
    if close is not None:
        close()
