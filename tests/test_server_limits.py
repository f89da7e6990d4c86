"""Rate limits per organization, Retry-After, and idempotent creates."""

from __future__ import annotations

import math
import threading
import time
import uuid

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from opennote_jupyter.local import start_local_backend
from opennote_jupyter.local.store import retry_after_seconds

PROMPT = {"messages": [{"role": "user", "content": "Why do cats purr?"}], "length": 1}
MINUTE = 4.0
DAY = 3600.0


@pytest.fixture(scope="module")
def short_backend(tmp_path_factory):
    """A backend whose per-minute window lasts four seconds."""
    backend = start_local_backend(
        tmp_path_factory.mktemp("limits"), minute_seconds=MINUTE, day_seconds=DAY
    )
    yield backend
    backend.stop()


def create(backend, key, body=PROMPT, **headers):
    return requests.post(
        f"{backend.base_url}/v1/video/create",
        json=body,
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=10,
    )


def org_name() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


def test_limit_counts_per_organization(short_backend):
    org = org_name()
    first_key = short_backend.create_key(org=org, tier="developer")
    second_key = short_backend.create_key(org=org, tier="developer")
    assert first_key != second_key
    for key in (first_key, second_key, first_key):
        assert create(short_backend, key).status_code == 200
    # The organization's three creates are used up, whichever key sends.
    for key in (second_key, first_key):
        answer = create(short_backend, key)
        assert answer.status_code == 429
        assert int(answer.headers["Retry-After"]) >= 1
        assert "developer" in answer.json()["detail"]
    # Another organization is not affected.
    other = short_backend.create_key(org=org_name(), tier="developer")
    assert create(short_backend, other).status_code == 200


def test_retry_after_is_when_oldest_leaves(short_backend):
    key = short_backend.create_key(org=org_name(), tier="developer")
    sent = time.time()
    assert create(short_backend, key).status_code == 200
    received = time.time()
    time.sleep(1.5)
    assert create(short_backend, key).status_code == 200
    assert create(short_backend, key).status_code == 200

    before = time.time()
    answer = create(short_backend, key)
    after = time.time()
    assert answer.status_code == 429
    retry_after = int(answer.headers["Retry-After"])
    # The oldest create was recorded between `sent` and `received`. A slot opens
    # when it leaves the window, about 2.5 s from now rather than a full window.
    lowest = max(1, math.ceil(sent + MINUTE - after))
    highest = max(1, math.ceil(received + MINUTE - before))
    assert lowest <= retry_after <= highest
    assert retry_after < MINUTE

    time.sleep(max(0.0, sent + MINUTE - 0.6 - time.time()))
    assert create(short_backend, key).status_code == 429
    time.sleep(max(0.0, received + MINUTE + 0.1 - time.time()))
    assert create(short_backend, key).status_code == 200
    # The window is full again, and the next slot is the second create's.
    assert create(short_backend, key).status_code == 429


def test_day_limit_and_retry_after(short_backend):
    key = short_backend.create_key(
        org=org_name(), tier="enterprise", per_minute=50, per_day=2
    )
    started = time.time()
    assert create(short_backend, key).status_code == 200
    assert create(short_backend, key).status_code == 200
    answer = create(short_backend, key)
    assert answer.status_code == 429
    retry_after = int(answer.headers["Retry-After"])
    elapsed = time.time() - started
    assert DAY - elapsed - 1 <= retry_after <= DAY


def test_rejected_creates_do_not_count(short_backend):
    key = short_backend.create_key(org=org_name(), tier="developer", credits=2)
    # Three sentences at length 3 make three sections: 3 credits, one too many.
    three = "Cats purr. Purring is a low hum. It often means calm."
    costly = {"messages": [{"role": "user", "content": three}], "length": 3}
    assert create(short_backend, key, costly).status_code == 402
    assert create(short_backend, key, {"length": 0}).status_code == 422
    assert create(short_backend, key).status_code == 200
    assert create(short_backend, key).status_code == 200


def test_idempotent_create_replays(short_backend):
    key = short_backend.create_key(org=org_name(), tier="developer", credits=1)
    first = create(short_backend, key, **{"Idempotency-Key": "abc-1"})
    assert first.status_code == 200
    # Same key again: the first response, no new job, no second charge (the
    # organization's single credit is spent, so a new job would be a 402).
    for _ in range(4):
        again = create(short_backend, key, **{"Idempotency-Key": "abc-1"})
        assert again.status_code == 200
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
    assert create(short_backend, key, **{"Idempotency-Key": "abc-2"}).status_code == 402


def test_idempotency_key_with_other_body_is_422(short_backend):
    key = short_backend.create_key(org=org_name(), tier="developer")
    assert create(short_backend, key, **{"Idempotency-Key": "k"}).status_code == 200
    other = {**PROMPT, "length": 2}
    answer = create(short_backend, key, other, **{"Idempotency-Key": "k"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


def test_idempotency_key_scoped_to_organization(short_backend):
    first = short_backend.create_key(org=org_name(), tier="developer")
    second = short_backend.create_key(org=org_name(), tier="developer")
    one = create(short_backend, first, **{"Idempotency-Key": "shared"}).json()
    two = create(short_backend, second, **{"Idempotency-Key": "shared"}).json()
    assert one["video_id"] != two["video_id"]


def test_concurrent_same_idempotency_key(short_backend):
    key = short_backend.create_key(org=org_name(), tier="scale", credits=1)
    barrier = threading.Barrier(8)
    answers = []

    def send():
        barrier.wait()
        answers.append(create(short_backend, key, **{"Idempotency-Key": "race"}))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(answers) == 8
    assert [a.status_code for a in answers] == [200] * 8
    assert len({a.json()["video_id"] for a in answers}) == 1
    replays = [a for a in answers if a.headers.get("Idempotent-Replayed") == "true"]
    assert len(replays) == 7


def test_idempotency_expires_after_a_day(tmp_path):
    backend = start_local_backend(tmp_path, minute_seconds=1.0, day_seconds=1.5)
    try:
        key = backend.create_key(org=org_name(), tier="scale")
        first = create(backend, key, **{"Idempotency-Key": "day"}).json()
        assert create(backend, key, **{"Idempotency-Key": "day"}).json() == first
        time.sleep(1.7)
        later = create(backend, key, **{"Idempotency-Key": "day"})
        assert later.status_code == 200
        assert later.json()["video_id"] != first["video_id"]
    finally:
        backend.stop()


@given(
    offsets=st.lists(st.floats(0.0, 100.0), max_size=12),
    limit=st.integers(1, 5),
    window=st.floats(1.0, 50.0),
)
def test_retry_after_frees_exactly_one_slot(offsets, limit, window):
    now = 100.0
    times = sorted(now - offset for offset in offsets)

    def inside(at):
        return sum(1 for t in times if at - window < t <= at)

    wait = retry_after_seconds(times, limit, window, now)
    if inside(now) < limit:
        assert wait is None
        return
    assert wait is not None
    assert wait >= 0.0
    # Just after now + wait a slot is free, and just before it is not. The
    # margin absorbs float rounding of (oldest + window - now).
    assert inside(now + wait + 1e-9) < limit
    if wait > 1e-6:
        assert inside(now + wait - 1e-6) >= limit
