"""``VideoForm``: a widget form that creates videos without blocking the kernel.

Everything the form does after a click happens in a background thread and reaches
the browser as widget state (``comm_msg`` messages routed by comm id), so it works
the same under ipykernel 6 and 7; see :mod:`opennote_jupyter.notebook.background`.
"""

from __future__ import annotations

import html
import threading
import traceback
from typing import Any

import ipywidgets as widgets

from opennote_jupyter import contract
from opennote_jupyter.notebook import background, session
from opennote_jupyter.notebook.magics import describe_error
from opennote_jupyter.notebook.player import VideoPlayer, browser_url

_HISTORY_SIZE = 10
_ERROR_STYLE = "color:#b00020"


def _escaped_line(text: str, style: str = "") -> str:
    attribute = f' style="{style}"' if style else ""
    return f"<span{attribute}>{html.escape(text)}</span>"


class VideoForm(widgets.VBox):
    """A form for one video at a time: prompt, title, length, script mode, sources.

    Fill it in and press "Create video". The button is disabled while a
    submission is in flight and enabled again afterwards, whatever happened. A
    progress bar follows ``completion_percentage``; the player appears below when
    the video is done, and a history lists earlier submissions.

    Parameters
    ----------
    client
        An :class:`~opennote_jupyter.client.OpennoteClient`. Defaults to the
        kernel's shared client (the key from ``%opennote login``, else
        ``OPENNOTE_API_KEY``, else the local backend), looked up at each submit.
    timeout
        Seconds to wait for each video before giving up; the job goes on.

    Attributes
    ----------
    prompt, title, length, script_mode, include_sources, search_for, source_count
        The input widgets; set their ``value`` to fill the form from code.
    submit
        The "Create video" button; ``submit.click()`` submits from code.
    progress
        An ``IntProgress`` from 0 to 100.
    status
        One line of HTML: what is happening, or what failed.
    validation
        Messages about invalid input, shown beside the button before any request.
    player
        The player's HTML once a video is done.
    history
        One dict per submission, newest last: ``title``, ``video_id``, ``state``
        (``sending``, ``rendering``, ``done``, ``failed``), ``url`` and ``error``.
    result
        The last finished :class:`~opennote_jupyter.models.VideoResult`, or ``None``.
    """

    def __init__(
        self, client: Any = None, *, timeout: float | None = None, **kwargs: Any
    ) -> None:
        self._client = client
        self.timeout = timeout
        self.result: Any = None
        self.history: list[dict[str, Any]] = []
        self._worker: threading.Thread | None = None
        self._history_lock = threading.Lock()

        wide = widgets.Layout(width="95%")
        self.prompt = widgets.Textarea(
            description="Prompt",
            placeholder="What should the video explain? For a ready script, separate "
            "sections with lines of -----.",
            layout=widgets.Layout(width="95%", height="7em"),
        )
        self.title = widgets.Text(
            description="Title", placeholder="optional", layout=wide
        )
        self.length = widgets.IntSlider(
            value=contract.DEFAULT_LENGTH,
            min=contract.MIN_LENGTH,
            max=contract.MAX_LENGTH,
            description="Paragraphs",
        )
        self.script_mode = widgets.Checkbox(
            value=False,
            description="Narrate the prompt as a ready script",
            indent=False,
        )
        self.include_sources = widgets.Checkbox(
            value=False, description="Gather web sources", indent=False
        )
        self.search_for = widgets.Text(
            description="Search",
            placeholder=f"web query, up to {contract.MAX_SEARCH_FOR_CHARS} characters",
            disabled=True,
            layout=wide,
        )
        self.source_count = widgets.IntSlider(
            value=contract.DEFAULT_SOURCE_COUNT,
            min=contract.MIN_SOURCE_COUNT,
            max=contract.MAX_SOURCE_COUNT,
            description="Sources",
            disabled=True,
        )
        self.submit = widgets.Button(
            description="Create video",
            button_style="primary",
            icon="film",
            tooltip="Create the video; the kernel stays free while it renders",
        )
        self.validation = widgets.HTML()
        self.progress = widgets.IntProgress(
            value=0, min=0, max=100, description="Progress"
        )
        self.status = widgets.HTML()
        self.player = widgets.HTML()
        self.history_view = widgets.HTML()

        self.include_sources.observe(self._toggle_sources, names="value")
        self.submit.on_click(self._on_submit)
        children = [
            self.prompt,
            self.title,
            self.length,
            self.script_mode,
            self.include_sources,
            self.search_for,
            self.source_count,
            widgets.HBox([self.submit, self.validation]),
            self.progress,
            self.status,
            self.player,
            self.history_view,
        ]
        super().__init__(children=children, **kwargs)

    def _toggle_sources(self, change: dict[str, Any]) -> None:
        self.search_for.disabled = not change["new"]
        self.source_count.disabled = not change["new"]

    @property
    def busy(self) -> bool:
        """Whether a submission is in flight."""
        return self._worker is not None and self._worker.is_alive()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the current submission ends; return :attr:`result`.

        For scripts and tests: in a notebook the form needs no waiting.
        """
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return self.result

    def request(self) -> dict[str, Any]:
        """Return the ``client.create`` arguments the form describes.

        As in ``%%opennote_video``, a prompt with ``-----`` separator lines (five
        or more dashes) is sent as a script; the checkbox makes any text a script.

        Raises
        ------
        ValueError
            With every problem found, one per line.
        """
        text = self.prompt.value.strip()
        # The magic's rule: separator lines make a script, or the checkbox does.
        is_script = bool(self.script_mode.value) or (
            contract.SECTION_SEPARATOR_LINE.search(text) is not None
        )
        problems = []
        if not contract.split_script_sections(text):
            problems.append("The prompt is empty: write what the video should explain.")
        search = self.search_for.value.strip()
        if self.include_sources.value and len(search) > contract.MAX_SEARCH_FOR_CHARS:
            problems.append(
                f"The search query has {len(search)} characters; the API accepts at "
                f"most {contract.MAX_SEARCH_FOR_CHARS}."
            )
        if is_script and len(text) > contract.MAX_SCRIPT_CHARS:
            problems.append(
                f"The script has {len(text)} characters; the API accepts at most "
                f"{contract.MAX_SCRIPT_CHARS}."
            )
        if problems:
            raise ValueError("\n".join(problems))
        request: dict[str, Any] = {
            "title": self.title.value.strip(),
            "length": int(self.length.value),
            "include_sources": bool(self.include_sources.value),
        }
        if is_script:
            request["script"] = text
        else:
            request["prompt"] = text
        if self.include_sources.value:
            request["source_count"] = int(self.source_count.value)
            if search:
                request["search_for"] = search
        return request

    def _on_submit(self, _button: Any = None) -> None:
        if self.busy:
            return
        self.validation.value = ""
        try:
            request = self.request()
        except ValueError as exc:
            lines = str(exc).splitlines()
            self.validation.value = "<br>".join(
                _escaped_line(s, _ERROR_STYLE) for s in lines
            )
            return
        self.submit.disabled = True
        try:
            entry = {
                "title": request["title"] or None,
                "video_id": None,
                "state": "sending",
                "url": None,
                "error": None,
            }
            self._add_history(entry)
            self.progress.value = 0
            self.progress.bar_style = ""
            self.player.value = ""
            self._set_status("Sending the request…")
            self._worker = background.start(
                lambda: self._run(request, entry), name="opennote-form"
            )
        except BaseException:
            # Nothing runs in the background, so nothing else re-enables it.
            self.submit.disabled = False
            raise

    def _run(self, request: dict[str, Any], entry: dict[str, Any]) -> None:
        """Create the video and wait for it; runs in the background thread."""
        from opennote_jupyter.errors import OpennoteError

        try:
            client = self._client if self._client is not None else session.get_client()
            job = client.create(**request)
            entry["video_id"] = job.video_id
            entry["state"] = "rendering"
            self._render_history()
            self._set_status(f"Rendering video {job.video_id}…")
            result = client.wait(
                job.video_id, timeout=self.timeout, on_progress=self._progress
            )
            player = VideoPlayer(result)
            self.result = result
            self.progress.value = 100
            self.progress.bar_style = "success"
            self.player.value = player.html()
            entry.update(
                state="done",
                url=result.s3_url or str(player.path or ""),
                title=result.title or entry["title"],
            )
            self._set_status(f"Done: {result.title or job.video_id}")
        except OpennoteError as exc:
            self._fail(entry, describe_error(exc))
        except Exception as exc:
            # A bug rather than an API error: show it with its traceback in the form.
            details = html.escape("".join(traceback.format_exception(exc)))
            self._fail(
                entry,
                f"Unexpected error: {type(exc).__name__}: {exc}",
                extra=f"<details><summary>Traceback</summary><pre>{details}</pre></details>",
            )
        finally:
            self._render_history()
            self.submit.disabled = False

    def _progress(self, status: Any) -> None:
        pct = status.completion_percentage
        if pct is not None:
            self.progress.value = max(0, min(100, int(pct)))
        self._set_status(
            f"Video {status.video_id}: {status.status}"
            + (f", {pct:.0f}%" if pct is not None else "")
        )

    def _fail(self, entry: dict[str, Any], text: str, extra: str = "") -> None:
        entry.update(state="failed", error=text)
        self.progress.bar_style = "danger"
        self.status.value = _escaped_line(text, _ERROR_STYLE) + extra

    def _set_status(self, text: str) -> None:
        self.status.value = _escaped_line(text)

    def _add_history(self, entry: dict[str, Any]) -> None:
        with self._history_lock:
            self.history.append(entry)
            del self.history[:-_HISTORY_SIZE]
        self._render_history()

    def _render_history(self) -> None:
        with self._history_lock:
            entries = list(reversed(self.history))
        if len(entries) < 2:
            # One submission is already described by the status line.
            self.history_view.value = ""
            return
        items = []
        for entry in entries:
            label = html.escape(entry["title"] or entry["video_id"] or "untitled")
            state = html.escape(entry["state"])
            url = entry.get("url")
            if url and url.startswith(("http://", "https://")):
                # The same route as the player's, e.g. through a hub's proxy.
                href = html.escape(browser_url(url), quote=True)
                label = f'<a href="{href}" target="_blank" rel="noopener">{label}</a>'
            error = f" · {html.escape(entry['error'])}" if entry.get("error") else ""
            items.append(f"<li>{label} · {state}{error}</li>")
        self.history_view.value = (
            f"<details open><summary>History</summary><ol>{''.join(items)}</ol>"
            "</details>"
        )
