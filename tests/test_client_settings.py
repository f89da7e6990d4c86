"""Client settings, journal write failures, loopback detection and saving."""

from __future__ import annotations

import base64
import errno
import logging
import os
import subprocess
import sys
import threading
import uuid

import pytest

from opennote_jupyter import journal as journal_module
from opennote_jupyter.client import OpennoteClient
from opennote_jupyter.errors import (
    AuthenticationError,
    ConfigurationError,
    OpennoteError,
)
from opennote_jupyter.journal import Journal
from opennote_jupyter.models import VideoResult

KEY = "sk-test-0123456789"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    path = tmp_path / "home"
    monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(path))
    monkeypatch.delenv("OPENNOTE_API_KEY", raising=False)
    monkeypatch.delenv("OPENNOTE_BASE_URL", raising=False)
    return path


def _org_client(backend) -> OpennoteClient:
    key = backend.create_key(
        org=f"org-{uuid.uuid4().hex[:8]}",
        tier="enterprise",
        credits=100.0,
        per_minute=1000,
        per_day=1000,
    )
    return OpennoteClient(
        key,
        backend.base_url,
        tier="enterprise",
        per_minute=1000,
        per_day=1000,
        poll_interval=0.1,
    )


# -- journal write failures ------------------------------------------------


def test_wait_survives_broken_journal(local_backend, home, caplog):
    client = _org_client(local_backend)
    job = client.create("Buoyancy", length=1)
    # A directory in place of the journal file makes every read and write fail.
    journal_path = home / "journal.jsonl"
    journal_path.unlink()
    journal_path.mkdir()

    with caplog.at_level(logging.WARNING, logger="opennote_jupyter.client"):
        result = client.wait(job.video_id, timeout=60)

    assert result.success
    assert result.video_id == job.video_id
    assert "journal could not record" in caplog.text
    assert job.video_id in caplog.text


def test_rejected_create_keeps_api_error(local_backend, monkeypatch, caplog):
    # A full disk cannot be produced on demand, so the append of the "rejected"
    # event raises ENOSPC here; the other events are written for real.
    real_append = Journal.append

    def append(self, event, **fields):
        if event == "rejected":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_append(self, event, **fields)

    monkeypatch.setattr(Journal, "append", append)
    client = OpennoteClient("on-wrong-key-0000", local_backend.base_url)

    with caplog.at_level(logging.WARNING, logger="opennote_jupyter.client"):
        with pytest.raises(AuthenticationError):
            client.create("Gravity", length=1)

    assert "could not record rejected create" in caplog.text


# -- settings checked at construction --------------------------------------


@pytest.mark.parametrize(
    "timeout",
    [float("nan"), float("inf"), (5.0, float("inf")), 1e12, 0, -1],
)
def test_bad_timeout_rejected(timeout):
    with pytest.raises(ConfigurationError, match="timeout=") as info:
        OpennoteClient(KEY, "http://127.0.0.1:9", timeout=timeout)
    assert "86400" in str(info.value)


@pytest.mark.parametrize("value", ["x", -3, True, 2.5, 101, None])
def test_bad_max_retries_rejected(value):
    with pytest.raises(ConfigurationError, match="max_retries=") as info:
        OpennoteClient(KEY, "http://127.0.0.1:9", max_retries=value)
    assert repr(value) in str(info.value)
    assert "0 to 100" in str(info.value)


@pytest.mark.parametrize("value", [0, 100])
def test_max_retries_bounds_accepted(value):
    OpennoteClient(KEY, "http://127.0.0.1:9", max_retries=value)


# -- plain-http warning ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("http://127.example.com", True),
        ("http://127.0.0.1.example.com", True),
        ("http://example.com", True),
        ("http://127.0.0.1:8000", False),
        ("http://127.5.6.7", False),
        ("http://localhost:8000", False),
        ("http://[::1]:8000", False),
        ("https://example.com", False),
    ],
)
def test_plain_http_warning(url, warned, caplog):
    with caplog.at_level(logging.WARNING, logger="opennote_jupyter.client"):
        OpennoteClient(KEY, url)
    assert ("plain http" in caplog.text) is warned


# -- process liveness ------------------------------------------------------


def test_pid_alive_never_kills_on_windows(monkeypatch):
    # Windows cannot run here, so the platform and os.kill are replaced.
    calls = []
    monkeypatch.setattr(journal_module.sys, "platform", "win32")
    monkeypatch.setattr(journal_module.os, "kill", lambda *a: calls.append(a))
    assert journal_module._pid_alive(12345) is True
    assert calls == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signal check")
def test_pid_alive_on_posix():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert journal_module._pid_alive(os.getpid()) is True
    assert journal_module._pid_alive(child.pid) is False


# -- save ------------------------------------------------------------------


def _b64_result(data: bytes) -> VideoResult:
    return VideoResult(
        video_id="v1", success=True, b64_video=base64.b64encode(data).decode()
    )


def test_save_ignores_existing_part_path(tmp_path):
    target = tmp_path / "video.mp4"
    # Another writer's fixed-name temporary path must not be reused.
    other = tmp_path / "video.mp4.part"
    other.mkdir()

    OpennoteClient(KEY, "http://127.0.0.1:9").save(_b64_result(b"mp4"), target)

    assert target.read_bytes() == b"mp4"
    assert other.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video.mp4", "video.mp4.part"]


def test_concurrent_saves_to_one_path(tmp_path):
    client = OpennoteClient(KEY, "http://127.0.0.1:9")
    target = tmp_path / "video.mp4"
    payloads = [bytes([n]) * 2_000_000 for n in range(4)]
    errors: list[BaseException] = []

    def save(data: bytes) -> None:
        try:
            client.save(_b64_result(data), target)
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(data,)) for data in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["video.mp4"]


def test_save_permissions_match_plain_file(tmp_path):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    target = tmp_path / "video.mp4"
    OpennoteClient(KEY, "http://127.0.0.1:9").save(_b64_result(b"mp4"), target)
    assert target.stat().st_mode == plain.stat().st_mode


def test_failed_save_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "video.mp4"
    empty = VideoResult(video_id="v1", success=True)
    with pytest.raises(OpennoteError, match="neither a URL nor base64"):
        OpennoteClient(KEY, "http://127.0.0.1:9").save(empty, target)
    assert list(tmp_path.iterdir()) == []
