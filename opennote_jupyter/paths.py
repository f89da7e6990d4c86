"""Data directories of opennote_jupyter: journal, pacing counters, local backend."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HOME_ENV = "OPENNOTE_JUPYTER_HOME"


def data_home() -> Path:
    """Return the user's data directory for opennote_jupyter, creating it.

    ``$OPENNOTE_JUPYTER_HOME`` wins; otherwise the platform's user data directory
    (``$XDG_DATA_HOME`` or ``~/.local/share`` on Linux, ``~/Library/Application
    Support`` on macOS, ``%LOCALAPPDATA%`` on Windows).

    Raises
    ------
    ConfigurationError
        If the directory cannot be created.
    """
    override = os.environ.get(HOME_ENV)
    if override:
        home = Path(override).expanduser()
    elif sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
        home = Path(base) / "opennote-jupyter"
    elif sys.platform == "darwin":
        home = Path.home() / "Library" / "Application Support" / "opennote-jupyter"
    else:
        base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        home = Path(base) / "opennote-jupyter"
    _make_dir(home)
    return home


def local_backend_dir() -> Path:
    """Return the data directory of the embedded local backend."""
    path = data_home() / "local-backend"
    _make_dir(path)
    return path


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from opennote_jupyter.errors import ConfigurationError

        raise ConfigurationError(
            f"cannot create the data directory {path} "
            f"({exc.strerror or type(exc).__name__}): set {HOME_ENV} to a "
            "writable directory"
        ) from exc
