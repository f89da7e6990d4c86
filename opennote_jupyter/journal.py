"""The on-disk job journal: every create, before and after it is sent.

One JSON object per line, appended under a file lock, in
``data_home()/journal.jsonl``. Each create writes an ``intent`` (with its
``Idempotency-Key``) before the request and ``created`` (with the video id) after
it, and ``wait`` writes the final status. A kernel that dies mid-request or
mid-render therefore leaves either a video id to resume or an intent whose key a
repeat of the same create reuses, so the server runs it once. The API key is never
written; scopes carry a fingerprint of it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opennote_jupyter._files import file_lock

log = logging.getLogger("opennote_jupyter.client")

# The server remembers an Idempotency-Key for 24 hours; an older open intent
# cannot be deduplicated any more, so it is not reused.
IDEMPOTENCY_TTL_S = 24 * 3600.0


@dataclass
class _CacheEntry:
    """Events parsed so far from one journal file."""

    inode: int
    offset: int = 0
    lines: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)


_CACHE: dict[str, _CacheEntry] = {}
_CACHE_LOCK = threading.Lock()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":
        # os.kill(pid, 0) terminates the process on Windows, so assume it is alive.
        # NOTE: so on Windows an open create of a crashed process is not reused
        # automatically; client.resume(idempotency_key) still re-sends it.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class Journal:
    """Append and read job events.

    Parameters
    ----------
    path
        The JSONL file; created on first write.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    @property
    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def append(self, event: str, **fields: Any) -> None:
        """Append one event; an ``intent`` is also synced to disk before returning.

        Every event survives the death of the process. Only an intent must also
        survive an operating-system crash, because it carries the key that keeps
        a re-sent create from being paid twice. A lost later event only makes
        the job look unanswered, and re-sending it with the same key returns the
        same video.
        """
        record = {"event": event, "time": time.time(), **fields}
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with file_lock(self._lock_path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as handle:
                # A crash may have cut the last line short; start a new line so
                # this record does not merge into it.
                handle.seek(0, os.SEEK_END)
                if handle.tell() > 0:
                    handle.seek(-1, os.SEEK_END)
                    if handle.read(1) != b"\n":
                        handle.write(b"\n")
                handle.write(line.encode("utf-8"))
                handle.flush()
                if event == "intent":
                    os.fsync(handle.fileno())

    def events(self) -> list[dict[str, Any]]:
        """Return every readable event, oldest first.

        The file is append-only, so only the bytes added since the last call are
        parsed. A line that does not parse (cut short by a crash) is skipped and
        logged.
        """
        key = str(self.path)
        with _CACHE_LOCK:
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                _CACHE.pop(key, None)
                return []
            cached = _CACHE.get(key)
            if (
                cached is None
                or cached.inode != stat.st_ino
                or stat.st_size < cached.offset
            ):
                cached = _CacheEntry(inode=stat.st_ino)
                _CACHE[key] = cached
            if stat.st_size > cached.offset:
                with open(self.path, "rb") as handle:
                    handle.seek(cached.offset)
                    data = handle.read()
                # A line still being written by another process ends without a
                # newline; it is read on a later call.
                complete = data[: data.rfind(b"\n") + 1]
                cached.offset += len(complete)
                for raw in complete.splitlines():
                    cached.lines += 1
                    if not raw.strip():
                        continue
                    try:
                        record = json.loads(raw)
                    except ValueError:
                        log.warning(
                            "journal %s: skipped unreadable line %d",
                            self.path,
                            cached.lines,
                        )
                        continue
                    if isinstance(record, dict):
                        cached.records.append(record)
            return list(cached.records)

    def jobs(self, scope: str | None = None) -> list[dict[str, Any]]:
        """Merge the events into one row per create intent, oldest first.

        Parameters
        ----------
        scope
            Keep only intents of this scope; ``None`` keeps all.
        """
        rows: dict[str, dict[str, Any]] = {}
        by_video: dict[str, dict[str, Any]] = {}
        for record in self.events():
            event = record.get("event")
            ikey = record.get("idempotency_key")
            if event == "intent" and ikey:
                request = record.get("request") or {}
                rows[ikey] = {
                    "idempotency_key": ikey,
                    "scope": record.get("scope"),
                    "base_url": record.get("base_url"),
                    "intent": record.get("intent"),
                    "pid": record.get("pid"),
                    "request": request,
                    "requested_at": record.get("time"),
                    "video_id": None,
                    "status": "sending",
                    "url": None,
                    "error": None,
                    "cost": None,
                    "result_title": None,
                    "updated_at": record.get("time"),
                }
                continue
            row = rows.get(ikey) if ikey else None
            if row is None and record.get("video_id"):
                row = by_video.get(record["video_id"])
            if row is None:
                continue
            row["updated_at"] = record.get("time")
            if event == "created":
                row["video_id"] = record.get("video_id")
                row["status"] = "pending"
                row["base_url"] = record.get("base_url") or row["base_url"]
                by_video[row["video_id"]] = row
            elif event == "rejected":
                row["status"] = "rejected"
                row["error"] = record.get("error")
            elif event == "status":
                for name in ("status", "url", "error", "cost", "result_title"):
                    if name in record:
                        row[name] = record[name]
        out = list(rows.values())
        if scope is not None:
            out = [row for row in out if row["scope"] == scope]
        return out

    def find(
        self, *, video_id: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any] | None:
        """Return the newest job row matching a video id or an idempotency key."""
        for row in reversed(self.jobs()):
            if video_id is not None and row["video_id"] == video_id:
                return row
            if (
                idempotency_key is not None
                and row["idempotency_key"] == idempotency_key
            ):
                return row
        return None

    def reusable_key(self, scope: str, intent: str, in_flight: set[str]) -> str | None:
        """Return the key of an unanswered create of the same intent, if any.

        An intent qualifies when it got no video id and no rejection, and is younger
        than the server's idempotency window. No live request may use it either: its
        process is gone (a crashed kernel), or it is this process and the request
        ended without a response.
        """
        now = time.time()
        me = os.getpid()
        for row in reversed(self.jobs(scope)):
            if row["intent"] != intent or row["status"] != "sending":
                continue
            if now - float(row["requested_at"] or 0) > IDEMPOTENCY_TTL_S:
                continue
            pid = int(row["pid"] or 0)
            key = row["idempotency_key"]
            if pid == me and key not in in_flight:
                return key
            if pid != me and not _pid_alive(pid):
                return key
        return None
