"""Opennote educational videos from Jupyter.

``%load_ext opennote_jupyter`` registers the ``%%opennote_video`` cell magic and the
``%opennote`` line magic. The public names below load on first use, so loading the
extension imports neither pandas, ipywidgets nor the local backend.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> module that defines it, imported on first attribute access.
_LAZY = {
    "OpennoteClient": "opennote_jupyter.client",
    "VideoJob": "opennote_jupyter.models",
    "VideoResult": "opennote_jupyter.models",
    "VideoStatus": "opennote_jupyter.models",
    "Source": "opennote_jupyter.models",
    "OpennoteError": "opennote_jupyter.errors",
    "ConfigurationError": "opennote_jupyter.errors",
    "RequestValidationError": "opennote_jupyter.errors",
    "APIError": "opennote_jupyter.errors",
    "AuthenticationError": "opennote_jupyter.errors",
    "InsufficientCreditsError": "opennote_jupyter.errors",
    "RateLimitError": "opennote_jupyter.errors",
    "ServerError": "opennote_jupyter.errors",
    "VideoFailedError": "opennote_jupyter.errors",
    "WaitTimeoutError": "opennote_jupyter.errors",
    "NetworkError": "opennote_jupyter.errors",
    "BatchError": "opennote_jupyter.errors",
    "build_video_key": "opennote_jupyter.urls",
    "parse_video_url": "opennote_jupyter.urls",
    "parse_video_urls": "opennote_jupyter.urls",
    "parse_video_urls_dask": "opennote_jupyter.urls",
    "VideoUrl": "opennote_jupyter.urls",
    "VideoForm": "opennote_jupyter.notebook.form",
}

__all__ = sorted([*_LAZY, "load_ipython_extension", "unload_ipython_extension"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'opennote_jupyter' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics; called by ``%load_ext opennote_jupyter``."""
    from opennote_jupyter.notebook.magics import register

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Nothing to undo: IPython keeps registered magics until the kernel stops."""
