"""Client retries and idempotency through a fault-injecting proxy.

The proxy (tests/fault_proxy.py) sits in front of a real local backend and loses
responses, delays them, or sends its own; the server behind it is never mocked.
"""

from __future__ import annotations

import email.utils
import random
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from fault_proxy import Fault, FaultProxy, Request

from opennote_jupyter._transport import parse_retry_after
from opennote_jupyter.client import OpennoteClient
from opennote_jupyter.errors import (
    APIError,
    AuthenticationError,
    InsufficientCreditsError,
    NetworkError,
    RateLimitError,
    RequestValidationError,
    ServerError,
)

CREATE = "/v1/video/create"
STATUS = "/v1/video/status/"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENNOTE_API_KEY", raising=False)
    monkeypatch.delenv("OPENNOTE_BASE_URL", raising=False)


@pytest.fixture(scope="module")
def own_backend(tmp_path_factory):
    """A backend of this module, so hundreds of queued renders stay out of others'."""
    from opennote_jupyter.local import start_local_backend

    backend = start_local_backend(tmp_path_factory.mktemp("faults-backend"))
    yield backend
    backend.stop()


def _org(
    backend, *, credits=1000.0, tier="enterprise", per_minute=100_000, per_day=100_000
) -> tuple[str, str]:
    name = f"org-{uuid.uuid4().hex[:10]}"
    if tier == "enterprise":
        key = backend.create_key(
            name, tier=tier, credits=credits, per_minute=per_minute, per_day=per_day
        )
    else:
        key = backend.create_key(name, tier=tier, credits=credits)
    return name, key


def _server_jobs(backend, org: str) -> list[str]:
    db = sqlite3.connect(
        f"file:{backend.data_dir / 'backend.sqlite3'}?mode=ro", uri=True
    )
    try:
        rows = db.execute(
            "SELECT jobs.id FROM jobs JOIN organizations "
            "ON jobs.organization_id = organizations.id WHERE organizations.name = ?",
            (org,),
        ).fetchall()
    finally:
        db.close()
    return [row[0] for row in rows]


def _client(key, base_url, **kwargs) -> OpennoteClient:
    kwargs.setdefault("tier", "enterprise")
    kwargs.setdefault("per_minute", 100_000)
    kwargs.setdefault("per_day", 100_000)
    kwargs.setdefault("backoff", (0.01, 0.05))
    kwargs.setdefault("poll_interval", 0.1)
    return OpennoteClient(key, base_url, **kwargs)


class SleepRecorder:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


# -- Retry-After parsing ----------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", None),
        ("abc", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("inf", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Mon, 99 Foo 2015 99:99:99 GMT", None),
    ],
)
def test_parse_retry_after(header, expected):
    assert parse_retry_after(header) == expected


def test_parse_retry_after_future_date():
    now = 1_800_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30.0, abs=1.0)


# -- 200 creates through lost responses ---------------------------------------


def test_200_creates_through_drops_make_200_jobs(tmp_path):
    from opennote_jupyter.local import start_local_backend

    # A backend of its own: stopping it drops the 200 queued renders at once.
    own_backend = start_local_backend(tmp_path / "backend")
    org, key = _org(own_backend, credits=10_000.0)
    rng = random.Random(20261204)
    slow_left = [3]

    def plan(request: Request) -> Fault | None:
        if request.method != "POST" or request.attempt > 2:
            return None
        roll = rng.random()
        if request.attempt == 2:
            return Fault("drop_after") if roll < 0.15 else None
        if roll < 0.25:
            return Fault("drop_after")
        if roll < 0.35:
            return Fault("drop_before")
        if roll < 0.45:
            return Fault("respond", status=500, body='{"detail": "injected"}')
        if roll < 0.50:
            return Fault(
                "respond",
                status=429,
                headers={"Retry-After": "0"},
                body='{"detail": "injected"}',
            )
        if roll < 0.53 and slow_left[0] > 0:
            slow_left[0] -= 1
            return Fault("slow", delay=1.5)
        return None

    try:
        with FaultProxy(own_backend.base_url, plan) as proxy:
            client = _client(key, proxy.base_url, timeout=(2.0, 1.0), max_retries=6)
            # Four threads: the client is shared across threads in notebooks too.
            with ThreadPoolExecutor(max_workers=4) as pool:
                jobs = pool.map(
                    lambda i: client.create(f"Topic {i}", length=1), range(200)
                )
                video_ids = [job.video_id for job in jobs]
            creates = proxy.requests_to("POST", CREATE)
        server_ids = _server_jobs(own_backend, org)
    finally:
        own_backend.stop()

    assert len(set(video_ids)) == 200
    assert sorted(server_ids) == sorted(video_ids)
    faults = [s.fault for s in creates if s.fault]
    assert faults.count("drop_after") > 30
    assert "drop_before" in faults
    assert "respond" in faults
    assert "slow" in faults
    assert len({s.idempotency_key for s in creates}) == 200
    assert all(s.idempotency_key for s in creates)


def test_status_read_survives_500_and_drops(own_backend):
    _, key = _org(own_backend)

    def plan(request: Request) -> Fault | None:
        if request.method == "GET" and request.attempt % 3 == 1:
            return Fault("respond", status=500, body="{}")
        if request.method == "GET" and request.attempt % 3 == 2:
            return Fault("drop_after")
        return None

    with FaultProxy(own_backend.base_url, plan) as proxy:
        client = _client(key, proxy.base_url)
        result = client.generate("Buoyancy", length=1, timeout=60)
    assert result.success
    kinds = {s.fault for s in proxy.requests_to("GET", STATUS)}
    assert {"respond", "drop_after", None} <= kinds


# -- Retry-After on status reads ---------------------------------------------


def _status_with_429(backend, retry_after: str, **client_kwargs):
    _, key = _org(backend)
    job = _client(key, backend.base_url).create("Levers", length=1)

    def plan(request: Request) -> Fault | None:
        if request.method == "GET" and request.attempt == 1:
            return Fault(
                "respond",
                status=429,
                headers={"Retry-After": retry_after},
                body='{"detail": "Rate limit reached"}',
            )
        return None

    sleeps = SleepRecorder()
    proxy = FaultProxy(backend.base_url, plan)
    client = _client(
        key, proxy.base_url, sleep=sleeps, backoff=(0.2, 1.0), **client_kwargs
    )
    return proxy, client, job.video_id, sleeps


def test_retry_after_3600_raises_without_sleeping(own_backend):
    proxy, client, video_id, sleeps = _status_with_429(own_backend, "3600")
    with proxy, pytest.raises(RateLimitError, match="3600 s") as info:
        client.status(video_id)
    assert info.value.retry_after == 3600.0
    assert info.value.status_code == 429
    assert sleeps.calls == []
    assert len(proxy.requests_to("GET", STATUS)) == 1


def test_absurd_retry_after_reads_as_words(own_backend):
    proxy, client, video_id, sleeps = _status_with_429(own_backend, "1e308")
    with proxy, pytest.raises(RateLimitError, match="more than a week") as info:
        client.status(video_id)
    assert info.value.retry_after == 1e308
    assert "0000" not in str(info.value)
    assert sleeps.calls == []


@pytest.mark.parametrize("header", ["Wed, 21 Oct 2015 07:28:00 GMT", "-5", "abc", "0"])
def test_unusable_retry_after_falls_back_to_backoff(own_backend, header):
    proxy, client, video_id, sleeps = _status_with_429(own_backend, header)
    with proxy:
        status = client.status(video_id)
    assert status.video_id == video_id
    assert len(sleeps.calls) == 1
    # Backoff for the first retry: base 0.2 s, jittered into [0.1, 0.2].
    assert 0.1 <= sleeps.calls[0] <= 0.2
    assert len(proxy.requests_to("GET", STATUS)) == 2


def test_retry_after_seconds_honored(own_backend):
    proxy, client, video_id, sleeps = _status_with_429(own_backend, "2")
    with proxy:
        client.status(video_id)
    assert sleeps.calls == [2.0]


def test_retry_after_future_date_honored(own_backend):
    header = email.utils.formatdate(time.time() + 5, usegmt=True)
    proxy, client, video_id, sleeps = _status_with_429(own_backend, header)
    with proxy:
        client.status(video_id)
    assert len(sleeps.calls) == 1
    assert 3.0 <= sleeps.calls[0] <= 5.0


def test_persistent_429_gives_up_with_retry_after(own_backend):
    _, key = _org(own_backend)

    def plan(request: Request) -> Fault | None:
        return Fault("respond", status=429, headers={"Retry-After": "1"}, body="{}")

    sleeps = SleepRecorder()
    with FaultProxy(own_backend.base_url, plan) as proxy:
        client = _client(key, proxy.base_url, sleep=sleeps, max_retries=3)
        with pytest.raises(RateLimitError) as info:
            client.status("00000000-0000-4000-8000-000000000000")
    assert info.value.retry_after == 1.0
    assert len(sleeps.calls) == 3
    assert len(proxy.requests_to("GET", STATUS)) == 4


# -- creates that must not be retried, and ones that must reuse their key ----


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, '{"detail": "Invalid API key"}', AuthenticationError),
        (402, '{"detail": "Not enough credits"}', InsufficientCreditsError),
        (
            422,
            '{"detail": [{"loc": ["body", "length"], "msg": "Input should be less '
            'than or equal to 5", "type": "less_than_equal", "input": 6}]}',
            RequestValidationError,
        ),
    ],
)
def test_create_not_retried_on_4xx(own_backend, status, body, error):
    _, key = _org(own_backend)

    def plan(request: Request) -> Fault | None:
        return Fault("respond", status=status, body=body)

    with FaultProxy(own_backend.base_url, plan) as proxy:
        client = _client(key, proxy.base_url)
        with pytest.raises(error) as info:
            client.create("Torque", length=1)
        assert len(proxy.requests_to("POST", CREATE)) == 1
    if status == 422:
        assert info.value.field == "length"
        assert info.value.value == 6
        assert "'length'" in str(info.value)


def test_create_after_5xx_exhaustion_reuses_key(own_backend):
    org, key = _org(own_backend)
    failing = [True]

    def plan(request: Request) -> Fault | None:
        if request.method == "POST" and failing[0]:
            return (
                Fault("drop_after")
                if request.attempt == 1
                else Fault("respond", status=503, body='{"detail": "injected"}')
            )
        return None

    with FaultProxy(own_backend.base_url, plan) as proxy:
        client = _client(key, proxy.base_url, max_retries=2)
        with pytest.raises(ServerError, match="503"):
            client.create("Pulleys", length=1)
        failing[0] = False
        job = client.create("Pulleys", length=1)
        keys = {s.idempotency_key for s in proxy.requests_to("POST", CREATE)}
    assert len(keys) == 1
    assert job.idempotency_key in keys
    assert _server_jobs(own_backend, org) == [job.video_id]


def test_network_error_message_names_key(own_backend):
    org, key = _org(own_backend)

    def plan(request: Request) -> Fault | None:
        return Fault("drop_after")

    with FaultProxy(own_backend.base_url, plan) as proxy:
        client = _client(key, proxy.base_url, max_retries=1)
        with pytest.raises(NetworkError, match="charged once") as info:
            client.create("Springs", length=1)
        ikeys = {s.idempotency_key for s in proxy.requests_to("POST", CREATE)}
    (ikey,) = ikeys
    assert ikey in str(info.value)
    assert len(_server_jobs(own_backend, org)) == 1


def test_redirect_not_followed(own_backend):
    _, key = _org(own_backend)

    def plan(request: Request) -> Fault | None:
        return Fault(
            "respond",
            status=307,
            headers={"Location": "http://127.0.0.1:9/v1/video/create"},
            body="{}",
        )

    with FaultProxy(own_backend.base_url, plan) as proxy:
        client = _client(key, proxy.base_url)
        with pytest.raises(APIError, match="does not follow redirects") as info:
            client.create("Optics", length=1)
        assert len(proxy.requests_to("POST", CREATE)) == 1
    assert info.value.status_code == 307


@pytest.mark.parametrize(
    "body",
    [
        '{"status": "pending", "completion_percentage": "half"}',
        '{"status": "completed", "response": {"success": true, "cost": "free"}}',
        '{"status": "completed", "response": {"success": true, "sources": ["x"]}}',
    ],
)
def test_malformed_status_is_api_error(own_backend, body):
    _, key = _org(own_backend)

    def plan(request: Request) -> Fault | None:
        if request.method == "GET":
            return Fault("respond", status=200, body=body)
        return None

    with FaultProxy(own_backend.base_url, plan) as proxy:
        client = _client(key, proxy.base_url)
        with pytest.raises(APIError, match="did not match the API's format"):
            client.status("00000000-0000-4000-8000-000000000000")
