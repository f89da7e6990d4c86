"""SQLite storage of the local backend: organizations, API keys, jobs, rate events.

One :class:`Store` owns one connection, shared by the HTTP threads and the render
workers behind a lock. Every create runs in one ``BEGIN IMMEDIATE`` transaction, so
the idempotency check, the rate check, the credit check and the job insert happen
together: two concurrent creates with the same ``Idempotency-Key`` produce one job.
Other processes (``opennote-video keys create``) may write the same file; SQLite's
busy timeout makes them wait for each other.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opennote_jupyter.contract import Tier

# Job states kept in the database. ``queued`` and ``rendering`` are both reported
# as ``pending`` by the status endpoint.
QUEUED = "queued"
RENDERING = "rendering"
COMPLETED = "completed"
FAILED = "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS organizations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    tier TEXT NOT NULL,
    per_minute INTEGER NOT NULL,
    per_day INTEGER NOT NULL,
    credits REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    organization_id INTEGER NOT NULL REFERENCES organizations(id),
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_events (
    organization_id INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_events_by_org ON rate_events(organization_id, at);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    organization_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    request TEXT NOT NULL,
    cost REAL NOT NULL,
    percent REAL NOT NULL DEFAULT 0,
    message TEXT,
    error TEXT,
    file_key TEXT UNIQUE,
    result TEXT,
    updated_at REAL NOT NULL,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS idempotency (
    organization_id INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    video_id TEXT NOT NULL,
    response TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (organization_id, idempotency_key)
);
"""


@dataclass(frozen=True)
class Organization:
    """An API organization: rate limits and credits are shared by all its keys."""

    id: int
    name: str
    tier: str
    per_minute: int
    per_day: int
    credits: float


@dataclass(frozen=True)
class Job:
    """One row of the ``jobs`` table, with its JSON columns decoded."""

    id: str
    organization_id: int
    state: str
    created_at: str
    request: dict[str, Any]
    cost: float
    percent: float
    message: str | None
    error: str | None
    file_key: str | None
    result: dict[str, Any] | None
    owner: str | None = None  # id of the backend instance that runs the job


@dataclass(frozen=True)
class CreateOutcome:
    """The decision of :meth:`Store.create_job`.

    ``kind`` is ``created``, ``replayed``, ``key_reused`` (same idempotency key,
    different body), ``rate_limited`` (``retry_after`` is set) or ``unpaid``.
    """

    kind: str
    response: dict[str, Any] | None = None
    retry_after: int | None = None
    credits: float | None = None


def retry_after_seconds(
    times: list[float], limit: int, window: float, now: float
) -> float | None:
    """Return the seconds until one more request fits in a sliding window.

    ``times`` are the accepted requests' times in ascending order. When fewer than
    ``limit`` of them lie inside ``(now - window, now]`` the result is ``None``.
    Otherwise a slot opens when the request at position ``len(inside) - limit``
    leaves the window; with exactly ``limit`` requests inside that is the oldest.
    """
    inside = [t for t in times if t > now - window]
    if len(inside) < limit:
        return None
    leaving = inside[len(inside) - limit]
    return max(leaving + window - now, 0.0)


class DataDirError(RuntimeError):
    """The data directory or its database cannot be used."""


class Store:
    """The backend's SQLite database in ``data_dir / "backend.sqlite3"``.

    Raises
    ------
    DataDirError
        If the directory cannot be created or the file is not a usable database.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "backend.sqlite3"
        self._lock = threading.RLock()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=10.0, check_same_thread=False, isolation_level=None
            )
        except (OSError, sqlite3.Error) as exc:
            raise DataDirError(
                f"cannot use the data directory {self.data_dir} ({exc}): pass a "
                "writable directory"
            ) from exc
        try:
            self._open()
        except sqlite3.Error as exc:
            self._db.close()
            raise DataDirError(
                f"cannot open the database {self.path} ({exc}): move the file away "
                "to start afresh, or pass another data directory"
            ) from exc

    def _open(self) -> None:
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            columns = {
                row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")
            }
            if "owner" not in columns:
                # Databases written before jobs had owners: every job is orphaned.
                self._db.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    # Organizations and keys

    def ensure_organization(
        self, name: str, tier: Tier, credits: float
    ) -> Organization:
        """Return the organization ``name``, creating it with ``tier`` if new.

        An existing organization keeps its tier and credits.
        """
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO organizations"
                " (name, tier, per_minute, per_day, credits) VALUES (?, ?, ?, ?, ?)",
                (name, tier.name, tier.per_minute, tier.per_day, float(credits)),
            )
            row = self._db.execute(
                "SELECT * FROM organizations WHERE name = ?", (name,)
            ).fetchone()
        return _organization(row)

    def add_key(self, organization_id: int, key_hash: str) -> None:
        """Store the hash of a new API key of an organization."""
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys (key_hash, organization_id, created_at)"
                " VALUES (?, ?, ?)",
                (key_hash, organization_id, time.time()),
            )

    def organization_for_key(self, key_hash: str) -> Organization | None:
        """Return the organization that owns the key with this hash, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT o.* FROM organizations o JOIN api_keys k"
                " ON k.organization_id = o.id WHERE k.key_hash = ?",
                (key_hash,),
            ).fetchone()
        return _organization(row) if row else None

    def add_credits(self, name: str, amount: float) -> Organization | None:
        """Add ``amount`` credits to organization ``name``; ``None`` if unknown."""
        with self._lock:
            self._db.execute(
                "UPDATE organizations SET credits = credits + ? WHERE name = ?",
                (float(amount), name),
            )
            row = self._db.execute(
                "SELECT * FROM organizations WHERE name = ?", (name,)
            ).fetchone()
        return _organization(row) if row else None

    def organization(self, organization_id: int) -> Organization:
        """Return the organization with this id."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM organizations WHERE id = ?", (organization_id,)
            ).fetchone()
        return _organization(row)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Run the block in one ``BEGIN IMMEDIATE`` transaction under the lock.

        The block's changes are committed when it ends, returns included, and
        rolled back when it raises.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # Creating jobs

    def create_job(
        self,
        *,
        organization_id: int,
        video_id: str,
        created_at: str,
        request: dict[str, Any],
        body_hash: str,
        cost: float,
        response: dict[str, Any],
        idempotency_key: str | None,
        minute_seconds: float,
        day_seconds: float,
        idempotency_seconds: float,
        owner: str | None = None,
    ) -> CreateOutcome:
        """Check idempotency, rate limits and credits, then insert a job, atomically.

        Only a created job counts against the rate limits and spends credits: a
        replayed, rate-limited or unpaid request leaves the database unchanged.
        """
        now = time.time()
        with self._transaction():
            db = self._db
            if idempotency_key is not None:
                db.execute(
                    "DELETE FROM idempotency WHERE at <= ?",
                    (now - idempotency_seconds,),
                )
                row = db.execute(
                    "SELECT body_hash, response FROM idempotency"
                    " WHERE organization_id = ? AND idempotency_key = ?",
                    (organization_id, idempotency_key),
                ).fetchone()
                if row is not None:
                    if row["body_hash"] != body_hash:
                        return CreateOutcome("key_reused")
                    return CreateOutcome(
                        "replayed", response=json.loads(row["response"])
                    )

            org = _organization(
                db.execute(
                    "SELECT * FROM organizations WHERE id = ?", (organization_id,)
                ).fetchone()
            )
            db.execute(
                "DELETE FROM rate_events WHERE organization_id = ? AND at <= ?",
                (organization_id, now - max(day_seconds, minute_seconds)),
            )
            times = [
                r["at"]
                for r in db.execute(
                    "SELECT at FROM rate_events WHERE organization_id = ? ORDER BY at",
                    (organization_id,),
                )
            ]
            waits = [
                wait
                for wait in (
                    retry_after_seconds(times, org.per_minute, minute_seconds, now),
                    retry_after_seconds(times, org.per_day, day_seconds, now),
                )
                if wait is not None
            ]
            if waits:
                return CreateOutcome(
                    "rate_limited", retry_after=max(1, math.ceil(max(waits)))
                )

            # A small tolerance keeps float rounding of earlier charges from refusing
            # a video that the balance covers.
            if org.credits + 1e-9 < cost:
                return CreateOutcome("unpaid", credits=org.credits)

            db.execute(
                "UPDATE organizations SET credits = credits - ? WHERE id = ?",
                (cost, organization_id),
            )
            db.execute(
                "INSERT INTO rate_events (organization_id, at) VALUES (?, ?)",
                (organization_id, now),
            )
            db.execute(
                "INSERT INTO jobs (id, organization_id, state, created_at, request,"
                " cost, percent, message, updated_at, owner)"
                " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                (
                    video_id,
                    organization_id,
                    QUEUED,
                    created_at,
                    json.dumps(request),
                    cost,
                    "Queued for rendering.",
                    now,
                    owner,
                ),
            )
            if idempotency_key is not None:
                db.execute(
                    "INSERT INTO idempotency (organization_id, idempotency_key,"
                    " body_hash, video_id, response, at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        organization_id,
                        idempotency_key,
                        body_hash,
                        video_id,
                        json.dumps(response),
                        now,
                    ),
                )
            return CreateOutcome("created", response=response)

        # Reading and updating jobs

    def job(self, video_id: str) -> Job | None:
        """Return the job with this id, or ``None``."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE id = ?", (video_id,)
            ).fetchone()
        return _job(row) if row else None

    def job_for_file_key(self, file_key: str) -> Job | None:
        """Return the completed job whose video is published under ``file_key``."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE file_key = ? AND state = ?",
                (file_key, COMPLETED),
            ).fetchone()
        return _job(row) if row else None

    def jobs_in_state(self, state: str) -> list[Job]:
        """Return the jobs in ``state``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE state = ? ORDER BY created_at", (state,)
            ).fetchall()
        return [_job(row) for row in rows]

    def claim_job(self, video_id: str, old_owner: str | None, new_owner: str) -> bool:
        """Give an unfinished job of ``old_owner`` to ``new_owner``.

        Returns whether the claim succeeded; it fails when another instance
        claimed the job first or the job has finished.
        """
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET owner = ? WHERE id = ? AND owner IS ?"
                " AND state IN (?, ?)",
                (new_owner, video_id, old_owner, QUEUED, RENDERING),
            )
        return cursor.rowcount == 1

    def start_job(self, video_id: str) -> bool:
        """Move a queued job to ``rendering``; return whether it was queued."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET state = ?, message = ?, updated_at = ?"
                " WHERE id = ? AND state = ?",
                (RENDERING, "Rendering started.", time.time(), video_id, QUEUED),
            )
        return cursor.rowcount == 1

    def set_progress(self, video_id: str, percent: float, message: str) -> None:
        """Record a rendering job's progress."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET percent = ?, message = ?, updated_at = ?"
                " WHERE id = ? AND state = ?",
                (percent, message, time.time(), video_id, RENDERING),
            )

    def complete_job(
        self,
        video_id: str,
        *,
        file_key: str | None,
        message: str,
        result: dict[str, Any],
    ) -> None:
        """Mark a job completed with its published key and result fields."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = ?, percent = 100, message = ?, error = NULL,"
                " file_key = ?, result = ?, updated_at = ? WHERE id = ?",
                (
                    COMPLETED,
                    message,
                    file_key,
                    json.dumps(result),
                    time.time(),
                    video_id,
                ),
            )

    def fail_job(self, video_id: str, *, message: str, error: str) -> bool:
        """Mark an unfinished job failed and refund its cost.

        Returns whether the job was unfinished; a finished job is left as it is.
        """
        with self._transaction():
            row = self._db.execute(
                "SELECT organization_id, cost FROM jobs WHERE id = ? AND state IN"
                " (?, ?)",
                (video_id, QUEUED, RENDERING),
            ).fetchone()
            if row is not None:
                self._db.execute(
                    "UPDATE jobs SET state = ?, message = ?, error = ?,"
                    " updated_at = ? WHERE id = ?",
                    (FAILED, message, error, time.time(), video_id),
                )
                self._db.execute(
                    "UPDATE organizations SET credits = credits + ? WHERE id = ?",
                    (row["cost"], row["organization_id"]),
                )
        return row is not None


def _organization(row: sqlite3.Row) -> Organization:
    return Organization(
        id=row["id"],
        name=row["name"],
        tier=row["tier"],
        per_minute=row["per_minute"],
        per_day=row["per_day"],
        credits=row["credits"],
    )


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        organization_id=row["organization_id"],
        state=row["state"],
        created_at=row["created_at"],
        request=json.loads(row["request"]),
        cost=row["cost"],
        percent=row["percent"],
        message=row["message"],
        error=row["error"],
        file_key=row["file_key"],
        result=json.loads(row["result"]) if row["result"] else None,
        owner=row["owner"],
    )
