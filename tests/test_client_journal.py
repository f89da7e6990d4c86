"""Journal, resume and tier pacing against real local backends."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from fault_proxy import Fault, FaultProxy, Request

from opennote_jupyter.client import OpennoteClient
from opennote_jupyter.errors import (
    BatchError,
    ConfigurationError,
    NetworkError,
    OpennoteError,
    RateLimitError,
    RequestValidationError,
)
from opennote_jupyter.models import VideoResult

CREATE = "/v1/video/create"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    path = tmp_path / "home"
    monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(path))
    monkeypatch.delenv("OPENNOTE_API_KEY", raising=False)
    monkeypatch.delenv("OPENNOTE_BASE_URL", raising=False)
    return path


def _enterprise_key(backend) -> tuple[str, str]:
    org = f"org-{uuid.uuid4().hex[:10]}"
    key = backend.create_key(
        org, tier="enterprise", credits=100.0, per_minute=1000, per_day=1000
    )
    return org, key


def _client(key, base_url, **kwargs) -> OpennoteClient:
    kwargs.setdefault("tier", "enterprise")
    kwargs.setdefault("per_minute", 1000)
    kwargs.setdefault("per_day", 1000)
    kwargs.setdefault("backoff", (0.01, 0.05))
    kwargs.setdefault("poll_interval", 0.1)
    return OpennoteClient(key, base_url, **kwargs)


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


def test_jobs_frame_after_restart(local_backend):
    _, key = _enterprise_key(local_backend)
    first = _client(key, local_backend.base_url)
    result = first.generate("Snell's law", title="Refraction", length=1, timeout=60)
    pending = first.create("Total internal reflection", length=1)

    # A new client object stands for a restarted kernel: it has only the disk.
    second = _client(key, local_backend.base_url)
    frame = second.jobs()
    assert list(frame["video_id"]) == [result.video_id, pending.video_id]
    assert frame.loc[0, "status"] == "completed"
    assert frame.loc[0, "url"] == result.url
    assert frame.loc[0, "title"] == "Refraction"
    assert frame.loc[0, "file_type"] == "mp4"
    assert frame.loc[0, "prompt"] == "Snell's law"
    assert frame.loc[1, "status"] == "pending"
    assert str(frame["requested_at"].dtype).startswith("datetime64")

    resumed = second.resume(pending.video_id, timeout=60)
    assert isinstance(resumed, VideoResult)
    assert resumed.video_id == pending.video_id
    assert second.jobs().loc[1, "status"] == "completed"

    other_key = local_backend.create_key(f"org-{uuid.uuid4().hex[:8]}", credits=1.0)
    assert _client(other_key, local_backend.base_url).jobs().empty
    assert len(second.jobs(all_servers=True)) == 2


def test_resume_resends_unanswered_create(local_backend):
    org, key = _enterprise_key(local_backend)
    losing = [True]

    def plan(request: Request) -> Fault | None:
        if request.method == "POST" and losing[0]:
            return Fault("drop_after")
        return None

    with FaultProxy(local_backend.base_url, plan) as proxy:
        with pytest.raises(NetworkError):
            _client(key, proxy.base_url, max_retries=1).create("Lenses", length=1)
        restarted = _client(key, proxy.base_url)
        frame = restarted.jobs()
        assert list(frame["status"]) == ["sending"]
        ikey = frame.loc[0, "idempotency_key"]

        losing[0] = False
        result = restarted.resume(ikey, timeout=60)
        sent_keys = {s.idempotency_key for s in proxy.requests_to("POST", CREATE)}
    assert sent_keys == {ikey}
    assert _server_jobs(local_backend, org) == [result.video_id]
    assert restarted.jobs().loc[0, "status"] == "completed"
    with pytest.raises(Exception, match="no unfinished job"):
        restarted.resume()


def test_killed_kernel_create_is_not_paid_twice(local_backend, home):
    org, key = _enterprise_key(local_backend)

    def plan(request: Request) -> Fault | None:
        # Hold the first response so the process dies after the server made the job.
        if request.method == "POST" and request.attempt == 1:
            return Fault("slow", delay=30.0)
        return None

    code = textwrap.dedent(
        """
        from opennote_jupyter.client import OpennoteClient
        client = OpennoteClient(tier="enterprise", per_minute=1000, per_day=1000)
        client.create("Diffraction gratings", length=1)
        """
    )
    with FaultProxy(local_backend.base_url, plan) as proxy:
        env = {
            **os.environ,
            "OPENNOTE_JUPYTER_HOME": str(home),
            "OPENNOTE_API_KEY": key,
            "OPENNOTE_BASE_URL": proxy.base_url,
        }
        kernel = subprocess.Popen([sys.executable, "-c", code], env=env)
        try:
            deadline = time.monotonic() + 30
            while not proxy.requests_to("POST", CREATE):
                assert time.monotonic() < deadline, "the create never reached the proxy"
                assert kernel.poll() is None, "the child exited before sending"
                time.sleep(0.05)
        finally:
            kernel.send_signal(signal.SIGKILL)
            kernel.wait(timeout=10)
        (made,) = _server_jobs(local_backend, org)

        restarted = _client(key, proxy.base_url)
        assert list(restarted.jobs()["status"]) == ["sending"]
        job = restarted.create("Diffraction gratings", length=1)
        keys = [s.idempotency_key for s in proxy.requests_to("POST", CREATE)]
    assert job.video_id == made
    assert len(keys) == 2
    assert keys[0] == keys[1] == job.idempotency_key
    assert _server_jobs(local_backend, org) == [made]
    # A deliberate second video of the same prompt gets a new key and job.
    again = _client(key, local_backend.base_url).create(
        "Diffraction gratings", length=1
    )
    assert again.video_id != made


def test_pacing_counters_survive_restart(local_backend):
    org = f"dev-{uuid.uuid4().hex[:8]}"
    key = local_backend.create_key(org, tier="developer", credits=20.0)
    first = OpennoteClient(key, local_backend.base_url)
    for i in range(3):
        first.create(f"Vectors {i}", length=1)

    restarted = OpennoteClient(key, local_backend.base_url, max_pacing_wait=0)
    with pytest.raises(RateLimitError, match="max_pacing_wait") as info:
        restarted.create("Vectors 3", length=1)
    assert 55 < info.value.retry_after <= 62
    assert len(_server_jobs(local_backend, org)) == 3
    assert list(restarted.jobs()["status"]) == ["pending"] * 3 + ["rejected"]

    other = local_backend.create_key(f"dev-{uuid.uuid4().hex[:8]}", credits=5.0)
    OpennoteClient(other, local_backend.base_url, max_pacing_wait=0).create(
        "Vectors elsewhere", length=1
    )


def test_batch_of_20_on_developer_tier_is_paced(tmp_path):
    from opennote_jupyter.local import start_local_backend

    minute_s = 1.0
    backend = start_local_backend(
        tmp_path / "backend", minute_seconds=minute_s, day_seconds=60.0
    )
    try:
        org = f"dev-{uuid.uuid4().hex[:8]}"
        key = backend.create_key(org, tier="developer", credits=100.0)
        with FaultProxy(backend.base_url) as proxy:
            client = OpennoteClient(
                key,
                proxy.base_url,
                tier="developer",
                pacing_windows=(minute_s, 60.0),
                poll_interval=0.1,
            )
            prompts: list = [f"Batch topic {i}" for i in range(20)]
            # One bad item in the middle must not cost the others their results.
            prompts.insert(7, {"prompt": "Bad length", "length": 9})
            started = time.monotonic()
            with pytest.raises(BatchError) as info:
                client.generate_many(prompts, length=1, timeout=120)
            elapsed = time.monotonic() - started
            creates = proxy.requests_to("POST", CREATE)
        server_ids = _server_jobs(backend, org)
    finally:
        backend.stop()

    results = info.value.results
    assert isinstance(results[7], RequestValidationError)
    assert info.value.video_ids[7] is None
    others = [r for i, r in enumerate(results) if i != 7]
    assert all(isinstance(r, VideoResult) and r.success for r in others)
    assert [r.video_id for r in others] == [
        v for i, v in enumerate(info.value.video_ids) if i != 7
    ]
    assert sorted(server_ids) == sorted(r.video_id for r in others)
    assert [s.status for s in creates] == [200] * 20
    # Developer tier: 3 per window, so create k and k+3 are a window apart.
    times = [s.at for s in creates]
    gaps = [times[i + 3] - times[i] for i in range(len(times) - 3)]
    assert min(gaps) >= minute_s * 0.95
    assert elapsed >= 6 * minute_s


def test_journal_recovers_from_cut_line(tmp_path, caplog):
    from opennote_jupyter.journal import Journal

    journal = Journal(tmp_path / "journal.jsonl")
    journal.append("intent", idempotency_key="k1", scope="s", intent="i", pid=1)
    assert [e["idempotency_key"] for e in journal.events()] == ["k1"]
    # A process killed mid-write leaves half a line without its newline.
    with open(journal.path, "ab") as handle:
        handle.write(b'{"event":"created","idempotency_key":"k1","vid')
    assert len(journal.events()) == 1
    journal.append("created", idempotency_key="k1", video_id="v1")
    events = journal.events()
    assert [e["event"] for e in events] == ["intent", "created"]
    assert events[1]["video_id"] == "v1"
    assert "skipped unreadable line 2" in caplog.text
    # A second reader (a restarted kernel) sees the same.
    assert Journal(journal.path).find(video_id="v1")["idempotency_key"] == "k1"


@pytest.mark.parametrize("broken", ["home", "journal"])
def test_unwritable_journal_sends_nothing(local_backend, home, monkeypatch, broken):
    org, key = _enterprise_key(local_backend)
    if broken == "home":
        home.parent.mkdir(parents=True, exist_ok=True)
        home.write_text("a file where the data directory should be")
        monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(home / "sub"))
    else:
        (home / "journal.jsonl").mkdir(parents=True)
    client = _client(key, local_backend.base_url)
    with pytest.raises(ConfigurationError, match="OPENNOTE_JUPYTER_HOME"):
        client.create("Osmosis", length=1)
    assert _server_jobs(local_backend, org) == []


def test_resume_does_not_resend_another_keys_create(local_backend):
    _, key = _enterprise_key(local_backend)
    other_org, other_key = _enterprise_key(local_backend)

    def plan(request: Request) -> Fault | None:
        return Fault("drop_before")

    with FaultProxy(local_backend.base_url, plan) as proxy:
        with pytest.raises(NetworkError):
            _client(key, proxy.base_url, max_retries=0).create("Prisms", length=1)
    other = _client(other_key, local_backend.base_url)
    ikey = other.jobs(all_servers=True).loc[0, "idempotency_key"]
    with pytest.raises(OpennoteError, match="another server or key"):
        other.resume(ikey, timeout=5)
    assert _server_jobs(local_backend, other_org) == []
