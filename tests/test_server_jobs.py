"""Job life cycle: progress through render stages, restarts, webhooks.

Some tests pass their own ``render`` function to ``Backend``, the documented hook
for swapping the renderer. Most wrap the real renderer to slow it down. Where a
render must stay in progress until the test kills the server, a stand-in reports
one stage and then blocks, because a real render cannot be held mid-way on demand.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from opennote_jupyter.contract import FINAL_STATUSES
from opennote_jupyter.local import start_local_backend
from opennote_jupyter.local.auth import create_key, hash_key
from opennote_jupyter.local.render import render_video
from opennote_jupyter.local.server import Backend
from opennote_jupyter.local.store import Store
from opennote_jupyter.local.webhook import WebhookSender

PROMPT = {"messages": [{"role": "user", "content": "How do tides work?"}], "length": 1}


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def create(base_url, key, body=PROMPT):
    answer = requests.post(
        f"{base_url}/v1/video/create", json=body, headers=auth(key), timeout=10
    )
    return answer


def status(base_url, key, video_id):
    return requests.get(
        f"{base_url}/v1/video/status/{video_id}", headers=auth(key), timeout=10
    ).json()


def wait_final(base_url, key, video_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = status(base_url, key, video_id)
        if body["status"] in FINAL_STATUSES:
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {video_id} still pending after {timeout} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Progress


def test_progress_follows_render_stages(tmp_path):
    reported = []

    def slowed_render(request, work_dir, on_stage):
        def stage(name, percent):
            on_stage(name, percent)
            reported.append((name, percent))
            time.sleep(0.12)

        return render_video(request, work_dir, stage)

    backend = Backend(tmp_path, render=slowed_render)
    backend.start_in_thread()
    base_url = backend.settings.base_url
    try:
        key = backend.create_key("progress", tier="scale")
        video_id = create(base_url, key).json()["video_id"]
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            body = status(base_url, key, video_id)
            seen.append((body["completion_percentage"], body["message"]))
            if body["status"] != "pending":
                break
            time.sleep(0.02)
    finally:
        backend.stop()

    assert body["status"] == "completed", body
    assert body["completion_percentage"] == 100.0
    percents = [p for p, _ in seen]
    assert percents == sorted(percents)
    pending = {p for p, _ in seen[:-1]}
    stage_percents = {min(p, 99.0) for _, p in reported}
    # Every stage the renderer reported shows up while the job is pending.
    assert stage_percents <= pending
    assert len(stage_percents) >= 3
    assert all(0.0 <= p < 100.0 for p in pending)
    messages = " ".join(m for _, m in seen[:-1] if m)
    for name in {name for name, _ in reported if name != "done"}:
        assert f"Rendering: {name}." in messages


# Restarts

STUCK_SERVER = textwrap.dedent(
    """
    import sys, threading
    from opennote_jupyter.local.server import Backend

    def stuck_render(request, work_dir, on_stage):
        on_stage("script", 5.0)
        threading.Event().wait()

    backend = Backend(sys.argv[1], render=stuck_render)
    backend.serve_forever("127.0.0.1", int(sys.argv[2]))
    """
)


def test_restart_fails_interrupted_job(tmp_path):
    store = Store(tmp_path)
    key = create_key(store, "restart", tier="scale", credits=3)
    store.close()

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-c", STUCK_SERVER, str(tmp_path), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base_url}/v1/health", timeout=1)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "stuck server did not start"
                time.sleep(0.1)
        rendering = create(base_url, key).json()["video_id"]
        queued = create(base_url, key).json()["video_id"]
        deadline = time.monotonic() + 10
        while status(base_url, key, rendering)["completion_percentage"] != 5.0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert status(base_url, key, queued)["message"] == "Queued for rendering."
        # A crash: no shutdown code runs.
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        log = server.stderr.read().decode()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        server.stderr.close()
    assert key not in log

    backend = start_local_backend(tmp_path)
    try:
        failed = status(backend.base_url, key, rendering)
        assert failed["status"] == "failed"
        assert failed["success"] is False
        assert "server stopped while this video was rendering" in failed["message"]
        assert failed["error"]
        # The queued job was not started, so it runs now.
        finished = wait_final(backend.base_url, key, queued)
        assert finished["status"] == "completed"
        # The interrupted job's credit came back: 3 - 2 + 1 leaves room for two.
        assert create(backend.base_url, key).status_code == 200
        assert create(backend.base_url, key).status_code == 200
        assert create(backend.base_url, key).status_code == 402
    finally:
        backend.stop()


def test_stop_aborts_running_render(tmp_path):
    release = threading.Event()

    def long_render(request, work_dir, on_stage):
        # Reports a stage every 50 ms for at most 10 s, as a long encode would.
        for step in range(200):
            on_stage("encode", min(99.0, step / 2))
            if release.wait(0.05):
                break
        return render_video(request, work_dir)

    backend = Backend(tmp_path, render=long_render)
    backend.start_in_thread()
    base_url = backend.settings.base_url
    key = backend.create_key("stopping", tier="scale")
    video_id = create(base_url, key).json()["video_id"]
    deadline = time.monotonic() + 10
    while status(base_url, key, video_id)["message"] != "Rendering: encode.":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    backend.stop()

    store = Store(tmp_path)
    try:
        deadline = time.monotonic() + 5
        while store.job(video_id).state != "failed":
            assert time.monotonic() < deadline, store.job(video_id)
            time.sleep(0.02)
        assert "server stopped" in store.job(video_id).message
    finally:
        release.set()
        store.close()


def test_render_error_fails_job(tmp_path, caplog):
    def broken_render(request, work_dir, on_stage):
        on_stage("script", 0.0)
        raise RuntimeError("voice engine missing")

    backend = Backend(tmp_path, render=broken_render)
    backend.start_in_thread()
    try:
        key = backend.create_key("broken", tier="scale", credits=1)
        base_url = backend.settings.base_url
        with caplog.at_level(logging.ERROR, logger="opennote_jupyter.local"):
            video_id = create(base_url, key).json()["video_id"]
            final = wait_final(base_url, key, video_id)
        assert final["status"] == "failed"
        assert "voice engine missing" in final["message"]
        assert "voice engine missing" in final["error"]
        assert any(video_id in r.getMessage() for r in caplog.records)
        # A failed video is refunded.
        assert create(base_url, key).status_code == 200
    finally:
        backend.stop()


# Webhooks


class Receiver:
    """An HTTP server on 127.0.0.1 that records POSTed JSON bodies."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[dict] = []
        self.attempts = 0
        self.failures = failures
        self.delivered = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                payload = json.loads(self.rfile.read(length))
                receiver.attempts += 1
                if receiver.attempts <= receiver.failures:
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.bodies.append(payload)
                self.send_response(204)
                self.end_headers()
                receiver.delivered.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fast_webhooks(tmp_path):
    backend = Backend(
        tmp_path, webhooks=WebhookSender(attempts=3, first_delay=0.05, max_delay=0.1)
    )
    backend.start_in_thread()
    yield backend
    backend.stop()


def test_webhook_gets_final_status(fast_webhooks):
    receiver = Receiver()
    try:
        base_url = fast_webhooks.settings.base_url
        key = fast_webhooks.create_key("hooks", tier="scale")
        body = {**PROMPT, "webhook_url": receiver.url, "upload_to_s3": True}
        video_id = create(base_url, key, body).json()["video_id"]
        assert receiver.delivered.wait(30)
        final = status(base_url, key, video_id)
    finally:
        receiver.close()
    assert receiver.attempts == 1
    assert receiver.bodies == [final]
    assert final["status"] == "completed"


def test_webhook_retried_after_errors(fast_webhooks):
    receiver = Receiver(failures=2)
    try:
        base_url = fast_webhooks.settings.base_url
        key = fast_webhooks.create_key("flaky-hooks", tier="scale")
        body = {**PROMPT, "webhook_url": receiver.url}
        video_id = create(base_url, key, body).json()["video_id"]
        assert receiver.delivered.wait(30)
    finally:
        receiver.close()
    assert receiver.attempts == 3
    assert receiver.bodies[0]["video_id"] == video_id


def test_webhook_failure_is_not_fatal(fast_webhooks, caplog):
    receiver = Receiver(failures=100)
    dead_port = free_port()
    try:
        base_url = fast_webhooks.settings.base_url
        key = fast_webhooks.create_key("dead-hooks", tier="scale")
        with caplog.at_level(logging.WARNING, logger="opennote_jupyter.local"):
            failing = create(base_url, key, {**PROMPT, "webhook_url": receiver.url})
            unreachable = create(
                base_url,
                key,
                {**PROMPT, "webhook_url": f"http://127.0.0.1:{dead_port}/hook"},
            )
            ids = [failing.json()["video_id"], unreachable.json()["video_id"]]
            for video_id in ids:
                assert wait_final(base_url, key, video_id)["status"] == "completed"
            deadline = time.monotonic() + 10
            while receiver.attempts < 3 or not _gave_up(caplog, ids):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.3)
    finally:
        receiver.close()
    # Bounded: three tries, then the delivery is dropped and logged.
    assert receiver.attempts == 3
    assert receiver.bodies == []


def _gave_up(caplog, ids):
    messages = [r.getMessage() for r in caplog.records]
    return all(
        any(video_id in m and "not delivered" in m for m in messages)
        for video_id in ids
    )


def test_webhook_for_interrupted_job(tmp_path):
    """A job failed by the restart is reported to its webhook too."""
    receiver = Receiver()
    store = Store(tmp_path)
    try:
        key = create_key(store, "restart-hooks", tier="scale")
        org = store.organization_for_key(hash_key(key))
        outcome = store.create_job(
            organization_id=org.id,
            video_id="2f1d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b",
            created_at="2026-01-01T00:00:00.000000",
            request={**PROMPT, "webhook_url": receiver.url},
            body_hash="x",
            cost=1.0,
            response={},
            idempotency_key=None,
            minute_seconds=60.0,
            day_seconds=86400.0,
            idempotency_seconds=86400.0,
        )
        assert outcome.kind == "created"
        assert store.start_job("2f1d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b")
        store.close()
        backend = start_local_backend(Path(tmp_path))
        try:
            assert receiver.delivered.wait(30)
        finally:
            backend.stop()
    finally:
        receiver.close()
    assert receiver.bodies[0]["status"] == "failed"
    assert receiver.bodies[0]["video_id"] == "2f1d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b"


def test_shared_data_dir_keeps_live_jobs(tmp_path):
    """A second server on the same data directory leaves a live server's jobs alone
    and takes them over only once that server has stopped."""
    release = threading.Event()

    def held_render(request, work_dir, on_stage):
        on_stage("script", 5.0)
        release.wait(30)
        raise RuntimeError("held render released")

    first = Backend(tmp_path, render=held_render)
    first.start_in_thread()
    second = None
    try:
        key = first.create_key("shared", tier="scale")
        rendering = create(first.settings.base_url, key).json()["video_id"]
        queued = create(first.settings.base_url, key).json()["video_id"]
        deadline = time.monotonic() + 10
        while status(first.settings.base_url, key, rendering)["message"] != (
            "Rendering: script."
        ):
            assert time.monotonic() < deadline
            time.sleep(0.02)

        second = Backend(tmp_path, recover_seconds=0.2)
        second.start_in_thread()
        base_url = second.settings.base_url
        time.sleep(0.6)
        # The first server is alive, so its jobs stay as they are.
        assert status(base_url, key, rendering)["completion_percentage"] == 5.0
        assert status(base_url, key, queued)["message"] == "Queued for rendering."

        # The held render never reaches another stage, so after this stop its
        # job stays "rendering" in the database, as after a crash.
        first.stop()
        failed = wait_final(base_url, key, rendering, timeout=10)
        assert failed["status"] == "failed"
        assert "server stopped" in failed["message"]
        assert wait_final(base_url, key, queued)["status"] == "completed"
    finally:
        release.set()
        first.stop()
        if second is not None:
            second.stop()


def test_worker_survives_database_error_while_failing_job(tmp_path, caplog):
    # A full disk makes SQLite refuse writes; it cannot be produced on demand,
    # so the store's fail_job raises that error once, as SQLite would.
    import sqlite3

    from opennote_jupyter.local.render import RenderResult

    def lost_files_render(request, work_dir, on_stage):
        on_stage("script", 0.0)
        missing = Path(work_dir) / "never-written.mp4"
        return RenderResult(missing, missing.with_suffix(".vtt"), "t", "t", 1.0)

    backend = Backend(tmp_path, render=lost_files_render)
    real_fail_job = backend.store.fail_job
    calls = []

    def fail_job_once(video_id, **kwargs):
        calls.append(video_id)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real_fail_job(video_id, **kwargs)

    backend.store.fail_job = fail_job_once
    backend.start_in_thread()
    try:
        key = backend.create_key("full-disk", tier="scale", credits=10)
        base_url = backend.settings.base_url
        with caplog.at_level(logging.ERROR, logger="opennote_jupyter.local"):
            create(base_url, key)
            second = create(base_url, key).json()["video_id"]
            final = wait_final(base_url, key, second, timeout=15)
        assert final["status"] == "failed"
    finally:
        backend.stop()
