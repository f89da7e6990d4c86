"""A live progress line in a cell's output, updated in place through a display id.

The magics show progress with ``display(..., display_id=True)`` and replace it with
``update_display`` rather than with widgets, so a saved or nbconvert-executed
notebook keeps the final player as ordinary ``text/html`` plus ``text/plain``
output.
"""

from __future__ import annotations

import html
import threading
from typing import Any


def _bundle(text: str, body_html: str) -> dict[str, str]:
    return {
        "text/plain": text,
        "text/html": f'<div class="opennote-progress">{body_html}</div>',
    }


class ProgressDisplay:
    """One output area that shows a job's progress, then its player or its error.

    Safe to update from a worker thread: IPython's display publisher sends each
    update as one IOPub message, and the front end matches it by display id.
    """

    def __init__(self, label: str = "Opennote video") -> None:
        self.label = label
        self.video_id: str | None = None
        self._handle: Any = None
        self._last: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    def show(self, message: str = "sending the request") -> None:
        """Display the initial line in the current cell's output."""
        from IPython.display import display

        bundle = _bundle(
            f"{self.label}: {message}", html.escape(f"{self.label}: {message}")
        )
        self._handle = display(bundle, raw=True, display_id=True)

    def _publish(self, bundle: dict[str, str]) -> None:
        if self._handle is None:
            return
        with self._lock:
            self._handle.update(bundle, raw=True)

    def created(self, video_id: str) -> None:
        """Show that the server accepted the job."""
        self.video_id = video_id
        self.update(None)

    def update(self, status: Any) -> None:
        """Show a :class:`~opennote_jupyter.models.VideoStatus`; repeats are skipped."""
        pct = getattr(status, "completion_percentage", None)
        state = getattr(status, "status", None) or "pending"
        key = (state, int(pct or 0))
        if key == self._last:
            return
        self._last = key
        value = max(0, min(100, int(pct or 0)))
        ident = f" {self.video_id}" if self.video_id else ""
        text = f"{self.label}{ident}: {value}% ({state})"
        body = (
            f'<progress max="100" value="{value}" style="width:16em"></progress> '
            f"{value}% · {html.escape(state)}"
        )
        if self.video_id:
            body += f" · <code>{html.escape(self.video_id)}</code>"
        self._publish(_bundle(text, body))

    def message(self, text: str, *, error: bool = False) -> None:
        """Replace the progress with one line of text, red when ``error``."""
        style = ' style="color:#b00020"' if error else ""
        self._publish(_bundle(text, f"<span{style}>{html.escape(text)}</span>"))

    def replace(self, bundle: dict[str, str]) -> None:
        """Replace the progress with any MIME bundle, such as the player."""
        self._publish(bundle)
