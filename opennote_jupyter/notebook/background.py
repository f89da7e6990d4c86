"""Run a video job off the kernel's main thread while its output keeps updating.

Why a plain daemon thread works under ipykernel 6 and 7
-------------------------------------------------------
Background work here changes the front end in two ways only, and neither depends on
which cell is executing:

- ``update_display_data`` messages (the magics' progress and player). JupyterLab
  and Notebook 7 forward them to every output that registered the display id,
  whatever their parent header (``KernelConnection._handleDisplayId`` in
  @jupyterlab/services 7). nbclient also updates outputs by display id, but only
  for messages whose parent is the cell it is running.
- Widget state changes (the form), sent as ``comm_msg`` and routed by comm id.

What breaks under ipykernel 7 is output that relies on the parent header, like
``print`` or ``ipywidgets.Output`` capture from a thread: a thread there no longer
inherits the cell's header and falls back to the newest cell's. The worker
therefore never prints; it reports through display updates and widget traits.
Because the thread sets no parent of its own, ipykernel labels its messages with
the newest cell's header, which is the cell nbclient is listening to, so an
executed notebook picks up updates that arrive while a later cell runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

_running: set[threading.Thread] = set()
_lock = threading.Lock()


def start(target: Callable[[], None], name: str) -> threading.Thread:
    """Start ``target`` in a daemon thread that is tracked until it returns.

    ``target`` must handle its own errors and report them in the notebook. An
    exception that still escapes is logged here and not raised into the kernel.
    """

    def run() -> None:
        try:
            target()
        except BaseException:
            logger.exception("background job %s failed", name)
        finally:
            with _lock:
                _running.discard(threading.current_thread())

    thread = threading.Thread(target=run, name=name, daemon=True)
    with _lock:
        _running.add(thread)
    thread.start()
    return thread


def running() -> list[threading.Thread]:
    """Return the background jobs that have not finished."""
    with _lock:
        return [thread for thread in _running if thread.is_alive()]


def wait_all(timeout: float | None = None) -> bool:
    """Wait for every background job; return ``True`` when none is left running."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    for thread in running():
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        thread.join(remaining)
    return not running()
