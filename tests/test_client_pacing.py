"""Pacer: sliding windows shared through a file, across threads and processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from opennote_jupyter.contract import Tier
from opennote_jupyter.errors import RateLimitError
from opennote_jupyter.pacing import Pacer

TIER = Tier("developer", per_minute=3, per_day=5)


def test_wait_needed_per_window(tmp_path):
    pacer = Pacer(tmp_path / "p.json", "s", TIER, windows=(10.0, 100.0))
    assert pacer.wait_needed([], 50.0) == 0.0
    assert pacer.wait_needed([41.0, 42.0], 50.0) == 0.0
    # Three sends in the minute window: room again when the first leaves it.
    assert pacer.wait_needed([41.0, 42.0, 43.0], 50.0) == pytest.approx(1.15)
    # Five in the day window: the day limit decides.
    day = pacer.wait_needed([0.0, 1.0, 2.0, 30.0, 31.0], 50.0)
    # The safety margin is 0.05 s plus 1 % of the window.
    assert day == pytest.approx(0.0 + 100.0 + 1.05 - 50.0)


def test_acquire_raises_past_max_wait(tmp_path):
    now = [1000.0]
    sleeps: list[float] = []
    pacer = Pacer(
        tmp_path / "p.json",
        "s",
        TIER,
        windows=(60.0, 86400.0),
        clock=lambda: now[0],
        sleep=sleeps.append,
    )
    for _ in range(3):
        pacer.release(pacer.acquire(max_wait=0))
    with pytest.raises(RateLimitError, match="developer tier") as info:
        pacer.acquire(max_wait=10)
    assert info.value.retry_after == pytest.approx(60.65)
    assert info.value.status_code is None
    assert sleeps == []


def test_state_file_scopes_and_garbage(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{not json", encoding="utf-8")
    first = Pacer(path, "server-a#k1", TIER)
    first.release(first.acquire(max_wait=0))
    state = json.loads(path.read_text(encoding="utf-8"))
    assert list(state) == ["server-a#k1"]
    assert len(state["server-a#k1"]) == 1
    other = Pacer(path, "server-b#k2", TIER)
    other.release(other.acquire(max_wait=0))
    assert set(json.loads(path.read_text(encoding="utf-8"))) == {
        "server-a#k1",
        "server-b#k2",
    }


def test_two_processes_share_limits(tmp_path):
    code = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from opennote_jupyter.contract import Tier
        from opennote_jupyter.pacing import Pacer

        pacer = Pacer(Path(sys.argv[1]), "shared", Tier("t", 3, 100),
                      windows=(1.0, 100.0))
        times = []
        for _ in range(4):
            token = pacer.acquire(max_wait=10)
            times.append(token)
            pacer.release(token)
        print(json.dumps(times))
        """
    )
    state = str(tmp_path / "pacing.json")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, state], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    times = []
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        times += json.loads(out)
    times.sort()
    assert len(times) == 8
    # At most 3 sends in any 1 s span, counted over both processes.
    for i in range(len(times) - 3):
        assert times[i + 3] - times[i] >= 1.0
