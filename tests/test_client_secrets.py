"""The API key stays out of everything a user can see, even when a server echoes it."""

from __future__ import annotations

import logging
import pickle
import signal
import traceback
import uuid
from pathlib import Path

import pytest
from fault_proxy import Fault, FaultProxy, Request

from opennote_jupyter.client import OpennoteClient
from opennote_jupyter.errors import APIError, AuthenticationError, NetworkError


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENNOTE_API_KEY", raising=False)
    monkeypatch.delenv("OPENNOTE_BASE_URL", raising=False)


def _visible_text(exc: BaseException) -> str:
    """Everything a notebook shows or a user could print about an exception."""
    parts = [
        str(exc),
        repr(exc),
        "".join(traceback.format_exception(exc)),
        _library_locals(exc),
    ]
    response = getattr(exc, "response", None)
    if response is not None:
        parts += [response.text, repr(response.headers), repr(response.request.headers)]
        parts.append(repr(response.request.body))
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        parts += [str(cause), repr(cause)]
        request = getattr(cause, "request", None)
        if request is not None:
            parts.append(repr(request.headers))
        cause = cause.__cause__ or cause.__context__
    return "\n".join(parts)


def _library_locals(exc: BaseException) -> str:
    """Locals of the library frames, as tracebacks with locals print them.

    The test's own frames are skipped: they hold the key because the test does.
    """
    summary: traceback.TracebackException | None = (
        traceback.TracebackException.from_exception(exc, capture_locals=True)
    )
    parts = []
    while summary is not None:
        for frame in summary.stack:
            if Path(frame.filename).parent.name != "tests":
                parts.append(repr(frame.locals))
        summary = summary.__cause__ or summary.__context__
    return "\n".join(parts)


def _files_text(root) -> str:
    return "\n".join(
        path.read_text(encoding="utf-8", errors="replace")
        for path in root.rglob("*")
        if path.is_file()
    )


def test_echoed_key_in_401_is_hidden(local_backend, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    key = local_backend.create_key(f"org-{uuid.uuid4().hex[:8]}", credits=10.0)

    def plan(request: Request) -> Fault | None:
        return Fault(
            "respond",
            status=401,
            body='{"detail": "Invalid API key {auth} for this organization"}',
        )

    with FaultProxy(local_backend.base_url, plan) as proxy:
        client = OpennoteClient(key, proxy.base_url, poll_interval=0.1)
        with pytest.raises(AuthenticationError) as create_info:
            client.create("Entropy", length=1)
        with pytest.raises(AuthenticationError) as status_info:
            client.status("00000000-0000-4000-8000-000000000000")

    for info in (create_info, status_info):
        text = _visible_text(info.value)
        # The echo arrived: the server text is in the message, minus the key.
        assert "Invalid API key *** for this organization" in text
        assert key not in text
        assert key not in info.value.response.text
        assert key not in str(info.value.response.json())
    assert key not in caplog.text
    for record in caplog.records:
        assert key not in record.getMessage()
    assert key not in _files_text(tmp_path / "home")
    assert key not in repr(client)
    assert key not in repr(vars(client))
    assert key not in str(client.jobs().to_dict())


def test_key_hidden_in_network_errors(local_backend, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    key = local_backend.create_key(f"org-{uuid.uuid4().hex[:8]}", credits=10.0)

    def plan(request: Request) -> Fault | None:
        return Fault("drop_before")

    with FaultProxy(local_backend.base_url, plan) as proxy:
        client = OpennoteClient(
            key, proxy.base_url, max_retries=1, backoff=(0.01, 0.01)
        )
        with pytest.raises(NetworkError) as info:
            client.create("Enthalpy", length=1)
    assert key not in _visible_text(info.value)
    assert key not in caplog.text
    assert key not in _files_text(tmp_path / "home")


def test_key_hidden_after_success(local_backend, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    key = local_backend.create_key(f"org-{uuid.uuid4().hex[:8]}", credits=10.0)
    client = OpennoteClient(key, local_backend.base_url, poll_interval=0.1)
    job = client.create("Heat engines", length=1)
    result = client.wait(job.video_id, timeout=60)
    for obj in (client, job, result, client.status(job.video_id)):
        assert key not in repr(obj)
        assert key not in str(obj)
    assert key not in caplog.text
    assert key not in _files_text(tmp_path / "home")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(client)


def test_placeholder_message_omits_value():
    with pytest.raises(Exception) as info:
        OpennoteClient("<sk-live-1234-your key>", "http://127.0.0.1:9")
    assert "sk-live-1234" not in str(info.value)


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (
            401,
            {"WWW-Authenticate": 'Bearer error="invalid_token" token="{auth}"'},
            '{"detail": "Invalid API key"}',
        ),
        (401, {}, '{"detail": "Invalid API key {auth_escaped}"}'),
        (302, {"Location": "http://127.0.0.1:9/login?key={auth}"}, ""),
    ],
    ids=["header", "json-escaped", "redirect"],
)
def test_key_echoed_outside_plain_body_is_hidden(local_backend, status, headers, body):
    key = local_backend.create_key(f"org-{uuid.uuid4().hex[:8]}", credits=10.0)

    def plan(request: Request) -> Fault | None:
        return Fault("respond", status=status, headers=headers, body=body)

    with FaultProxy(local_backend.base_url, plan) as proxy:
        client = OpennoteClient(key, proxy.base_url, max_retries=0)
        with pytest.raises(APIError) as info:
            client.create("Entropy", length=1)
    response = info.value.response
    text = _visible_text(info.value)
    text += repr(response.json()) if response.content else ""
    text += repr(dict(response.raw.headers)) + repr(response.reason)
    assert "***" in text  # the echo arrived and was replaced
    assert key not in text


def test_key_hidden_in_interrupted_request(local_backend):
    key = local_backend.create_key(f"org-{uuid.uuid4().hex[:8]}", credits=10.0)

    def plan(request: Request) -> Fault | None:
        return Fault("slow", delay=5.0)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C in a notebook arrives while the client waits for the response.
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with FaultProxy(local_backend.base_url, plan) as proxy:
            client = OpennoteClient(key, proxy.base_url)
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(KeyboardInterrupt) as info:
                client.status("00000000-0000-4000-8000-000000000000")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert key not in _library_locals(info.value)
