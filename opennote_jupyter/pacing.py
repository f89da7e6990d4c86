"""Client-side pacing of creates by rate-limit tier, shared across processes.

The send times of recent creates are stored per scope (server plus key
fingerprint) in one JSON file in :func:`~opennote_jupyter.paths.data_home`, so a
restarted kernel, or a second notebook, still reads what was sent in the last minute
and day. The file is rewritten atomically under a file lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from opennote_jupyter._files import file_lock, read_json, write_json_atomic
from opennote_jupyter.contract import Tier
from opennote_jupyter.errors import RateLimitError

log = logging.getLogger("opennote_jupyter.client")

# Upper bound on acquire's loop; each round sleeps until a slot should be free.
_MAX_ROUNDS = 1000


def _margin(window_s: float) -> float:
    """Return the safety gap in seconds added to a window.

    It absorbs clock granularity and the server's own bookkeeping delay.
    """
    return min(0.05 + 0.01 * window_s, 2.0)


class Pacer:
    """Keep creates of one scope within a tier's per-minute and per-day limits.

    The check is a sliding window: at most ``per_minute`` sends in any span of
    ``minute_s`` seconds, and likewise per day. This is at least as strict as a
    server that counts in fixed windows. A send is stored with the time its
    response arrived, an upper bound on when the server counted it.

    Parameters
    ----------
    path
        The JSON state file.
    scope
        The key under which this server and key's send times are stored. It must
        not contain the API key.
    tier
        The limits to keep.
    windows
        ``(minute_s, day_s)``: window lengths in seconds; shorter ones for tests
        against a server started with the same values.
    """

    def __init__(
        self,
        path: Path,
        scope: str,
        tier: Tier,
        *,
        windows: tuple[float, float] = (60.0, 86400.0),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = path
        self.scope = scope
        self.tier = tier
        self.minute_s, self.day_s = (float(w) for w in windows)
        if self.minute_s <= 0 or self.day_s <= 0:
            raise ValueError(
                f"pacing_windows={windows!r}: both windows must be positive seconds"
            )
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"Pacer(scope={self.scope!r}, tier={self.tier!r})"

    @property
    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _load(self, now: float) -> tuple[dict[str, list[float]], list[float]]:
        state = read_json(self.path, {})
        if not isinstance(state, dict):
            state = {}
        kept: dict[str, list[float]] = {}
        for scope, times in state.items():
            if not isinstance(times, list):
                continue
            recent = [
                float(t)
                for t in times
                if isinstance(t, (int, float)) and t > now - self.day_s
            ]
            if recent:
                kept[scope] = sorted(recent)
        return kept, kept.get(self.scope, [])

    def wait_needed(self, times: list[float], now: float) -> float:
        """Return seconds until one more send fits both windows (0 when it fits now)."""
        wait = 0.0
        for limit, window in (
            (self.tier.per_minute, self.minute_s),
            (self.tier.per_day, self.day_s),
        ):
            inside = [t for t in times if t > now - window]
            if len(inside) >= limit:
                # The send that must leave the window before there is room again.
                oldest_blocking = inside[len(inside) - limit]
                wait = max(wait, oldest_blocking + window + _margin(window) - now)
        return max(0.0, wait)

    def acquire(self, max_wait: float) -> float:
        """Block until a create may be sent, then reserve it.

        Returns
        -------
        float
            A token for :meth:`release`.

        Raises
        ------
        RateLimitError
            When the next slot is more than ``max_wait`` seconds away (for example,
            the day's limit is used up); ``retry_after`` is the wait in seconds.
        """
        for _ in range(_MAX_ROUNDS):
            with file_lock(self._lock_path):
                now = self._clock()
                state, times = self._load(now)
                wait = self.wait_needed(times, now)
                if wait <= 0:
                    state[self.scope] = [*times, now]
                    write_json_atomic(self.path, state)
                    return now
            if wait > max_wait:
                raise RateLimitError(
                    f"the {self.tier.name} tier allows {self.tier.per_minute} creates "
                    f"per {self.minute_s:g} s and {self.tier.per_day} per "
                    f"{self.day_s:g} s, and the next free slot is {wait:.0f} s away, "
                    f"more than max_pacing_wait={max_wait:g} s. Call again later, or "
                    "raise max_pacing_wait to let the client wait.",
                    retry_after=wait,
                    status_code=None,
                )
            log.info("pacing: waiting %.1f s for a %s-tier slot", wait, self.tier.name)
            self._sleep(wait)
        raise RateLimitError(
            "pacing could not find a free slot; call again later",
            retry_after=self.minute_s,
            status_code=None,
        )

    def release(self, token: float) -> None:
        """Move the reservation ``token`` to now, when the create's response arrived.

        A response within half the minute window's safety margin leaves the file
        alone, because the margin already covers that delay.
        """
        if self._clock() - token <= _margin(self.minute_s) / 2:
            return
        with file_lock(self._lock_path):
            now = self._clock()
            state, times = self._load(now)
            if token in times:
                times.remove(token)
            state[self.scope] = sorted([*times, max(now, token)])
            write_json_atomic(self.path, state)
