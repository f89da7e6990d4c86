"""Shared fixtures: a real local backend on 127.0.0.1 for the whole test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_backend(tmp_path_factory):
    """A LocalBackend on a temporary data directory, one-minute rate window.

    Call ``local_backend.create_key(org=unique_name, tier=..., credits=...)`` for an
    isolated organization; ``local_backend.api_key`` belongs to a shared one with
    generous limits.
    """
    from opennote_jupyter.local import start_local_backend

    backend = start_local_backend(
        tmp_path_factory.mktemp("local-backend"), minute_seconds=60.0
    )
    yield backend
    backend.stop()
