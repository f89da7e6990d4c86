"""Liveness of the backend instances that share a data directory.

Several processes may serve one data directory, for example two notebook kernels
that each start the default backend. Each running instance holds an exclusive
lock on its own file in ``data_dir / "instances"``. The operating system drops
that lock when the process ends, however it ends, so an instance may take over
another instance's unfinished jobs once it can take that instance's lock.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import IO

if sys.platform == "win32":
    import msvcrt

    # NOTE: the Windows branch has not been run; tests cover the POSIX one.

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True


class InstanceLock:
    """The lock that marks one backend instance as running.

    Attributes
    ----------
    instance_id
        A new random id, recorded as the owner of the jobs this instance runs.
    """

    def __init__(self, data_dir: Path) -> None:
        self.directory = Path(data_dir) / "instances"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.instance_id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._path = self.directory / f"{self.instance_id}.lock"
        self._handle: IO[bytes] | None = open(self._path, "wb")  # noqa: SIM115
        if not _try_lock(self._handle):
            raise RuntimeError(f"could not lock the new instance file {self._path}")

    def is_running(self, instance_id: str | None) -> bool:
        """Return whether the instance ``instance_id`` still holds its lock.

        The lock file of an instance found stopped is removed.
        """
        if instance_id is None:
            return False
        if instance_id == self.instance_id:
            return self._handle is not None
        path = self.directory / f"{instance_id}.lock"
        try:
            handle = open(path, "rb+")  # noqa: SIM115
        except FileNotFoundError:
            return False
        with handle:
            if not _try_lock(handle):
                return True
        path.unlink(missing_ok=True)
        return False

    def release(self) -> None:
        """Release the lock and remove its file, so the instance counts as stopped."""
        if self._handle is None:
            return
        self._handle.close()
        self._handle = None
        self._path.unlink(missing_ok=True)
