"""OpennoteClient against the real local backend over HTTP: the plain paths."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import uuid

import pytest

from opennote_jupyter.client import OpennoteClient
from opennote_jupyter.errors import (
    AuthenticationError,
    ConfigurationError,
    InsufficientCreditsError,
    RequestValidationError,
    VideoFailedError,
    WaitTimeoutError,
)
from opennote_jupyter.models import VideoResult, VideoStatus


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENNOTE_API_KEY", raising=False)
    monkeypatch.delenv("OPENNOTE_BASE_URL", raising=False)


def _org_client(backend, **kwargs) -> OpennoteClient:
    key = backend.create_key(
        org=f"org-{uuid.uuid4().hex[:8]}",
        tier="enterprise",
        credits=1000.0,
        per_minute=1000,
        per_day=10000,
    )
    kwargs.setdefault("tier", "enterprise")
    kwargs.setdefault("per_minute", 1000)
    kwargs.setdefault("per_day", 10000)
    return OpennoteClient(key, backend.base_url, poll_interval=0.1, **kwargs)


def test_import_pulls_no_notebook_libraries():
    code = (
        "import sys, opennote_jupyter.client, opennote_jupyter.cli_create\n"
        "bad = [m for m in ('IPython', 'pandas', 'ipywidgets') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_generate_returns_typed_result(local_backend):
    client = _org_client(local_backend)
    seen: list[VideoStatus] = []
    result = client.generate(
        "Explain why the sky is blue",
        title="Blue sky",
        length=1,
        on_progress=seen.append,
    )
    assert isinstance(result, VideoResult)
    assert result.success
    assert result.url is not None
    assert result.url.startswith(local_backend.base_url + "/files/")
    assert result.title == "Blue sky"
    assert result.cost > 0
    assert seen
    assert seen[-1].status == "completed"


def test_create_without_upload_gives_bytes(local_backend):
    client = _org_client(local_backend)
    result = client.generate("Momentum", length=1, upload_to_s3=False)
    assert result.url is None
    data = result.video_bytes()
    assert data is not None
    assert data[4:8] == b"ftyp"


@pytest.mark.parametrize(
    ("args", "field", "words"),
    [
        ({"length": 9}, "length", "from 1 to 5"),
        ({"length": 0}, "length", "from 1 to 5"),
        ({"length": True}, "length", "integer"),
        ({"source_count": 6}, "source_count", "from 1 to 5"),
        ({"search_for": "x" * 101}, "search_for", "at most 100"),
        ({"script": "a" * 6001, "prompt": None}, "script", "maximum of 6000"),
        ({"webhook_url": "ftp://x"}, "webhook_url", "http"),
        ({"webhook_url": "http://127.0.0.1:99999/"}, "webhook_url", "http"),
        ({"prompt": "  "}, "prompt", "non-empty"),
        ({"include_sources": "yes"}, "include_sources", "True or False"),
    ],
)
def test_create_validates_before_sending(args, field, words):
    # An unroutable base URL proves no request is made: validation comes first.
    client = OpennoteClient("on-test-key-1234", "http://127.0.0.1:9", journal=False)
    call = {"prompt": "Gravity", **args}
    with pytest.raises(RequestValidationError) as info:
        client.create(**call)
    assert info.value.field == field
    assert field in str(info.value)
    assert words in str(info.value)


def test_messages_must_end_with_user():
    client = OpennoteClient("on-test-key-1234", "http://127.0.0.1:9", journal=False)
    with pytest.raises(RequestValidationError, match="last message must be a user"):
        client.create(
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ]
        )
    with pytest.raises(RequestValidationError, match="only the first message"):
        client.create(
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "gravity"},
            ]
        )


@pytest.mark.parametrize(
    "key",
    [
        "",
        "   ",
        "token",
        "$OPENNOTE_API_KEY",
        "<your key>",
        "your-api-key",
        "YOUR_API_KEY",
        "xxxxxxxx",
        "Bearer token",
        "sk-...",
    ],
)
def test_placeholder_keys_rejected(key):
    with pytest.raises(ConfigurationError, match="OPENNOTE_API_KEY") as info:
        OpennoteClient(key, "http://127.0.0.1:9")
    if key.strip():
        assert key not in str(info.value) or key == "token"


def test_placeholder_key_from_environment(monkeypatch):
    monkeypatch.setenv("OPENNOTE_API_KEY", "$OPENNOTE_API_KEY")
    with pytest.raises(ConfigurationError, match="placeholder"):
        OpennoteClient()


def test_base_url_without_key_rejected():
    with pytest.raises(ConfigurationError, match="no API key"):
        OpennoteClient(base_url="http://127.0.0.1:9")


def test_key_resolution_from_environment(local_backend, monkeypatch):
    key = local_backend.create_key(org=f"org-{uuid.uuid4().hex[:8]}", credits=10.0)
    monkeypatch.setenv("OPENNOTE_API_KEY", key)
    monkeypatch.setenv("OPENNOTE_BASE_URL", local_backend.base_url)
    client = OpennoteClient(poll_interval=0.1)
    assert client.base_url == local_backend.base_url
    assert client.tier.name == "developer"
    assert key not in repr(client)
    job = client.create("Ohm's law", length=1)
    assert client.status(job.video_id).video_id == job.video_id


def test_hosted_default_base_url():
    client = OpennoteClient("on-test-key-1234", journal=False)
    assert client.base_url == "https://api.opennote.com"
    assert client.tier.name == "developer"


def test_wrong_key_raises_authentication_error(local_backend):
    client = OpennoteClient("on-wrong-key-0000", local_backend.base_url)
    with pytest.raises(AuthenticationError, match="OPENNOTE_API_KEY") as info:
        client.create("Gravity", length=1)
    assert info.value.status_code == 401
    assert info.value.response is not None
    sent = info.value.response.request.headers["Authorization"]
    assert "on-wrong-key-0000" not in sent


def test_no_credits_raises_402(local_backend):
    key = local_backend.create_key(org=f"org-{uuid.uuid4().hex[:8]}", credits=0.0)
    client = OpennoteClient(key, local_backend.base_url)
    with pytest.raises(InsufficientCreditsError, match="Load credits"):
        client.create("Gravity", length=1)


def test_wait_timeout_keeps_job(local_backend):
    client = _org_client(local_backend)
    job = client.create("Thermodynamics", length=5)
    with pytest.raises(WaitTimeoutError, match="resume") as info:
        client.wait(job.video_id, timeout=0.0)
    assert info.value.video_id == job.video_id
    result = client.resume(job.video_id, timeout=60)
    assert result.success


def test_unknown_video_id(local_backend):
    client = _org_client(local_backend)
    with pytest.raises(Exception, match="404"):
        client.status("00000000-0000-4000-8000-000000000000")


def test_failed_job_raises_video_failed(tmp_path):
    from opennote_jupyter.local import start_local_backend

    # A backend stopped mid-render marks the job failed when it starts again.
    backend = start_local_backend(tmp_path / "backend")
    key = backend.create_key("org-fail", credits=50.0)
    try:
        client = OpennoteClient(key, backend.base_url, poll_interval=0.05)
        job = client.create("Maxwell's equations", length=5)
        deadline = time.monotonic() + 30
        while client.status(job.video_id).completion_percentage in (None, 0.0):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        backend.stop()
    backend = start_local_backend(tmp_path / "backend")
    try:
        client = OpennoteClient(key, backend.base_url, poll_interval=0.05)
        with pytest.raises(VideoFailedError, match="ended failed") as info:
            client.wait(job.video_id, timeout=30)
    finally:
        backend.stop()
    assert info.value.video_id == job.video_id
    assert info.value.status.status == "failed"


def test_no_key_uses_local_backend(monkeypatch, caplog):
    import opennote_jupyter.client as client_module

    # The notice is logged once per process; another test may have used it.
    monkeypatch.setattr(client_module, "_local_notice_logged", False)
    caplog.set_level(logging.INFO, logger="opennote_jupyter.client")
    client = OpennoteClient(poll_interval=0.1)
    assert client.uses_local_backend
    assert "not started" in repr(client)
    result = client.generate("Kepler's laws", length=1, timeout=60)
    assert result.success
    assert client.base_url.startswith("http://127.0.0.1:")
    assert client.tier.name == "enterprise"
    assert client.tier.per_minute >= 1000
    notices = [r for r in caplog.records if "local Opennote backend" in r.getMessage()]
    assert len(notices) == 1
    assert "OPENNOTE_API_KEY" in notices[0].getMessage()
    assert client.base_url in notices[0].getMessage()
    assert list(client.jobs()["video_id"]) == [result.video_id]
    OpennoteClient().jobs()
    assert len([r for r in caplog.records if "local Opennote" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [("timeout", float("nan")), ("timeout", -1), ("poll_interval", float("nan"))],
)
def test_wait_rejects_endless_or_negative_seconds(local_backend, name, value):
    client = _org_client(local_backend)
    job = client.create("Capillary action", length=1)
    started = time.monotonic()
    with pytest.raises(RequestValidationError, match=name):
        client.wait(job.video_id, **{name: value})
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pacing_windows": (0, 86400)},
        {"pacing_windows": (float("nan"), 86400)},
        {"pacing_windows": (60, -1)},
        {"tier": "enterprise", "per_minute": 2.5, "per_day": 10},
        {"per_minute": True, "per_day": True},
        {"tier": "developer", "per_minute": 100},
        {"max_retry_wait": float("nan")},
        {"max_pacing_wait": -1},
        {"wait_timeout": float("nan")},
        {"poll_interval": -0.5},
        {"backoff": (float("nan"), 1.0)},
    ],
)
def test_bad_pacing_settings_fail_at_construction(kwargs):
    with pytest.raises(ConfigurationError):
        OpennoteClient("sk-test-0123456789", "http://127.0.0.1:9", **kwargs)


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://127.0.0.1:port"])
def test_base_url_with_bad_port_fails_at_construction(url):
    with pytest.raises(ConfigurationError, match="port"):
        OpennoteClient("sk-test-0123456789", url)


@pytest.mark.parametrize("prompts", ["Tides", {"prompt": "Tides"}])
def test_generate_many_rejects_single_item(prompts):
    client = OpennoteClient("sk-test-0123456789", "http://127.0.0.1:9")
    with pytest.raises(RequestValidationError, match="not a list"):
        client.generate_many(prompts)
