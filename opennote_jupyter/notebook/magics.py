"""The ``%%opennote_video`` cell magic and the ``%opennote`` line magic.

Loading this module imports only IPython and the standard library. The client
(requests), pandas, ipywidgets and the local backend load when a magic first runs.
"""

from __future__ import annotations

import keyword
import re
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    cell_magic,
    line_magic,
    magics_class,
    no_var_expand,
)
from IPython.core.magic_arguments import argument, magic_arguments

from opennote_jupyter import contract
from opennote_jupyter.notebook import background, session
from opennote_jupyter.notebook.progress import ProgressDisplay

_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\r?\n)+")


class OpennoteCellError(Exception):
    """A failed request, shown as one line instead of a traceback.

    IPython calls ``_render_traceback_`` for the error output, and the cell still
    counts as failed, so "Run All" stops at it. The original exception is kept as
    ``__cause__`` for ``%debug``.
    """

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


def describe_error(exc: BaseException) -> str:
    """Return one line for an API error, with the wait time of a rate limit."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None and "retry" not in text.lower():
        text += f" Retry in {retry_after:.0f} s."
    return f"{type(exc).__name__}: {text}"


def split_body(cell: str) -> tuple[str, bool]:
    """Return the cell body without surrounding blank lines, and whether it is a script.

    A body is a script when one of its lines is a section separator: five or
    more dashes (:data:`~opennote_jupyter.contract.SECTION_SEPARATOR_LINE`).

    Raises
    ------
    UsageError
        If the body is empty or holds only separators.
    """
    body = _LEADING_BLANK_LINES.sub("", cell or "").rstrip()
    has_separator = contract.SECTION_SEPARATOR_LINE.search(body) is not None
    if not contract.split_script_sections(body):
        raise UsageError(
            "the cell body is empty: write the prompt under %%opennote_video, or a "
            "script whose sections are separated by ----- lines"
        )
    return body, has_separator


def _check_range(
    option: str, value: int | None, low: int, high: int, what: str
) -> None:
    if value is not None and not low <= value <= high:
        raise UsageError(
            f"{option} {value} is out of range: use {low} to {high} ({what})"
        )


def _check_webhook(url: str) -> None:
    """Apply the client's webhook rule, so the magic accepts what the client sends."""
    from opennote_jupyter._validation import build_create_payload
    from opennote_jupyter.errors import RequestValidationError

    try:
        build_create_payload(prompt="webhook check", webhook_url=url)
    except RequestValidationError:
        raise UsageError(
            f"--webhook {url!r} is not an http(s) URL the API accepts: use "
            "http:// or https://, a host and a port from 1 to 65535, such as "
            "https://example.com/hook"
        ) from None


def build_request(args: Any, cell: str) -> dict[str, Any]:
    """Turn parsed magic options and the cell body into ``client.create`` arguments.

    Raises
    ------
    UsageError
        For an empty body or an option value the API would reject.
    """
    body, looks_like_script = split_body(cell)
    is_script = bool(args.script) or looks_like_script
    _check_range(
        "--length",
        args.length,
        contract.MIN_LENGTH,
        contract.MAX_LENGTH,
        "number of script paragraphs",
    )
    _check_range(
        "--count",
        args.count,
        contract.MIN_SOURCE_COUNT,
        contract.MAX_SOURCE_COUNT,
        "number of web sources",
    )

    include_sources = args.sources
    wants_sources = args.search is not None or args.count is not None
    if include_sources is False and wants_sources:
        raise UsageError("--search and --count configure sources: drop --no-sources")
    if include_sources is None:
        include_sources = wants_sources
    if args.search is not None:
        if not args.search.strip():
            raise UsageError("--search is empty: give a web query or leave it out")
        if len(args.search) > contract.MAX_SEARCH_FOR_CHARS:
            raise UsageError(
                f"--search has {len(args.search)} characters: the API accepts at "
                f"most {contract.MAX_SEARCH_FOR_CHARS}"
            )
    if args.system is not None and not args.system.strip():
        raise UsageError("--system is empty: give the system message or leave it out")
    if args.webhook is not None:
        _check_webhook(args.webhook)
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(
            f"--timeout {args.timeout:g} must be a positive number of seconds"
        )
    if args.out is not None and (
        not args.out.isidentifier() or keyword.iskeyword(args.out)
    ):
        raise UsageError(f"--out {args.out!r} is not a valid Python variable name")

    request: dict[str, Any] = {
        "title": args.title,
        "length": args.length if args.length is not None else contract.DEFAULT_LENGTH,
        "include_sources": include_sources,
        "upload_to_s3": not args.base64,
    }
    if include_sources:
        request["source_count"] = (
            args.count if args.count is not None else contract.DEFAULT_SOURCE_COUNT
        )
        if args.search is not None:
            request["search_for"] = args.search
    if args.webhook is not None:
        request["webhook_url"] = args.webhook

    if is_script:
        if args.system is not None:
            raise UsageError(
                "--system steers how a prompt becomes a script, but this cell is a "
                "script (it has ----- lines or --script): drop --system"
            )
        if len(body) > contract.MAX_SCRIPT_CHARS:
            raise UsageError(
                f"the script has {len(body)} characters: the API accepts at most "
                f"{contract.MAX_SCRIPT_CHARS}; shorten it or split it into two videos"
            )
        request["script"] = body
    elif args.system is not None:
        request["messages"] = [
            {"role": "system", "content": args.system},
            {"role": "user", "content": body},
        ]
    else:
        request["prompt"] = body
    return request


@magics_class
class OpennoteMagics(Magics):
    """Magics that create Opennote videos and show them in the notebook."""

    @no_var_expand
    @magic_arguments(name="%opennote_video")
    @argument(
        "--title", default="", help="Title of the video (quote it if it has spaces)."
    )
    @argument(
        "--length",
        type=int,
        default=None,
        help="Number of script paragraphs, 1 to 5 (default 3).",
    )
    @argument(
        "--system",
        default=None,
        help="A system message that steers how the prompt is turned into a script.",
    )
    @argument(
        "--script",
        action="store_true",
        help="Narrate the body as a ready script, even without ----- separators.",
    )
    @argument(
        "--sources",
        dest="sources",
        action="store_true",
        default=None,
        help="Gather web sources for the script (off unless --search or --count).",
    )
    @argument(
        "--no-sources", dest="sources", action="store_false", help="Gather no sources."
    )
    @argument(
        "--search",
        default=None,
        metavar="QUERY",
        help="Web query for the sources, at most 100 characters; implies --sources.",
    )
    @argument(
        "--count",
        type=int,
        default=None,
        help="Number of web sources, 1 to 5 (default 3); implies --sources.",
    )
    @argument(
        "--webhook",
        default=None,
        metavar="URL",
        help="URL the service POSTs the final status to.",
    )
    @argument(
        "--base64",
        action="store_true",
        help="Ask for the mp4 as base64 instead of a URL; it is saved to "
        "opennote-videos/<video id>.mp4 beside the notebook and played from there.",
    )
    @argument(
        "--embed",
        action="store_true",
        help="Inline the video into the notebook as base64 (up to 2 MB), so the "
        "saved notebook plays it anywhere.",
    )
    @argument(
        "--background",
        action="store_true",
        help="Return at once; the output keeps updating and shows the player when "
        "the video is done, while other cells run.",
    )
    @argument(
        "--out",
        default=None,
        metavar="VAR",
        help="Store the VideoResult in the variable VAR when the video is done.",
    )
    @argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="Stop waiting after this many seconds (default one hour). The job goes "
        "on and %%opennote resume ID picks it up.",
    )
    @cell_magic
    def opennote_video(self, line: str, cell: str) -> None:
        """Create an Opennote video from the cell body and play it in the output.

        The body is the prompt, sent exactly as written: ``{braces}``, ``$``,
        quotes and backslashes are never expanded. Options follow shell quoting,
        so quote a value with spaces (``--title "Heat: an intro"``); ``{}`` and
        ``$`` in options stay literal too. A body whose sections are separated by
        lines of ``-----`` is a ready script that is narrated as written::

            %%opennote_video --title "Fourier series: the idea" --length 2
            Explain Fourier series to a first-year student.

        The cell waits with a progress bar, then shows a player, the transcript, the
        sources and a download link. Interrupting the kernel stops the wait, not the
        job: ``%opennote resume ID`` picks it up. A failed request shows one line and
        fails the cell, so "Run All" stops there. With ``--background`` in a
        notebook executed without a browser (nbconvert ``--execute``, papermill),
        the saved output gets the player only if a later cell is still running
        when the video is done.

        The key comes from ``%opennote login`` or ``OPENNOTE_API_KEY`` (and the
        server from ``OPENNOTE_BASE_URL``). With no key the embedded local backend
        makes the video. On JupyterHub and Binder, videos of the local backend play
        through jupyter-server-proxy (see ``opennote_jupyter.notebook.player``).
        """
        try:
            # Shell quoting, unlike IPython's arg_split, which keeps the quotes.
            argv = shlex.split(line, posix=True)
        except ValueError as exc:
            raise UsageError(f"cannot parse the options {line!r}: {exc}") from None
        try:
            args = self.opennote_video.parser.parse_args(argv)
        except UsageError as exc:
            raise UsageError(f"{exc}. Options: %%opennote_video?") from None
        request = build_request(args, cell)
        client = self._client()
        progress = ProgressDisplay()
        progress.show("sending the request")
        if args.background:
            # Output of the worker thread goes to whichever cell runs at the time.
            # Connecting here (and starting the embedded backend if needed) keeps
            # the backend's one-time notice and any setup error in this cell.
            self._connect(client)
            background.start(
                lambda: self._run_in_background(client, request, args, progress),
                name="opennote-video",
            )
            return
        result = self._run_job(client, request, args, progress)
        self._store(args.out, result)

    def _client(self) -> Any:
        from opennote_jupyter.errors import OpennoteError

        try:
            return session.get_client()
        except OpennoteError as exc:
            raise OpennoteCellError(describe_error(exc)) from exc

    def _connect(self, client: Any) -> None:
        from opennote_jupyter.errors import OpennoteError

        try:
            client.base_url  # noqa: B018 - the property opens the connection
        except OpennoteError as exc:
            raise OpennoteCellError(describe_error(exc)) from exc

    def _store(self, name: str | None, result: Any) -> None:
        if name:
            self.shell.user_ns[name] = result

    def _run_job(
        self, client: Any, request: dict[str, Any], args: Any, progress: ProgressDisplay
    ) -> Any:
        """Create the video, wait for it in this thread and raise one-line errors."""
        from opennote_jupyter.errors import OpennoteError

        try:
            job = client.create(**request)
        except KeyboardInterrupt:
            # The client reuses the idempotency key of an unanswered create with
            # the same arguments, so running the cell again does not pay twice
            # unless the client's journal is off.
            text = (
                "Interrupted while sending the request: the video may have been "
                "created. Run the cell again to pick it up; it is made and charged "
                "once."
            )
            progress.message(text, error=True)
            raise OpennoteCellError(text) from None
        except OpennoteError as exc:
            progress.message("Opennote video: not created", error=True)
            raise OpennoteCellError(describe_error(exc)) from exc
        progress.created(job.video_id)
        return self._wait(client, job.video_id, args, progress)

    def _wait(
        self,
        client: Any,
        video_id: str,
        args: Any,
        progress: ProgressDisplay,
        *,
        resume: bool = False,
    ) -> Any:
        from opennote_jupyter.errors import OpennoteError, WaitTimeoutError
        from opennote_jupyter.notebook.player import VideoPlayer

        waiter = client.resume if resume else client.wait
        try:
            result = waiter(video_id, timeout=args.timeout, on_progress=progress.update)
        except KeyboardInterrupt:
            text = _resume_hint(video_id, "Stopped waiting")
            progress.message(text)
            raise OpennoteCellError(text) from None
        except OpennoteError as exc:
            progress.message(f"Opennote video {video_id}: not finished", error=True)
            if isinstance(exc, WaitTimeoutError):
                waited = f" after {args.timeout:g} s" if args.timeout else ""
                line = _resume_hint(video_id, f"Stopped waiting{waited}")
            else:
                line = describe_error(exc)
            raise OpennoteCellError(line) from exc
        progress.replace(
            VideoPlayer(result, embed=getattr(args, "embed", False)).bundle()
        )
        return result

    def _run_in_background(
        self, client: Any, request: dict[str, Any], args: Any, progress: ProgressDisplay
    ) -> None:
        """Run the job off the main thread and show its outcome in ``progress``.

        Unexpected errors are shown and then re-raised.
        """
        try:
            result = self._run_job(client, request, args, progress)
        except OpennoteCellError as exc:
            progress.message(str(exc), error=True)
            return
        except Exception as exc:
            progress.message(f"Unexpected error: {describe_error(exc)}", error=True)
            raise
        self._store(args.out, result)

    @no_var_expand
    @line_magic
    def opennote(self, line: str) -> Any:
        """Manage Opennote from the notebook.

        Usage::

            %opennote login        ask for the API key (kept in memory only)
            %opennote logout       forget the key typed at login
            %opennote status       which backend, tier and quota left today
            %opennote jobs         the job journal as a DataFrame
            %opennote resume ID    wait for a job again and play it
            %opennote form         show the video form (opennote_jupyter.VideoForm)

        Without a key from ``login``, ``OPENNOTE_API_KEY`` is used, and with no key
        anywhere the embedded local backend.
        """
        words = line.split()
        if not words:
            raise UsageError(
                "%opennote needs a subcommand: login, logout, status, jobs, resume ID "
                "or form"
            )
        command, rest = words[0].lower(), words[1:]
        if command == "resume":
            if len(rest) != 1:
                raise UsageError("usage: %opennote resume VIDEO_ID")
            return self._resume(rest[0])
        if command == "login" and rest:
            # The word is most likely the key itself, so the message omits it.
            raise UsageError(
                "%opennote login takes no arguments: it prompts for the key, which "
                "keeps it out of the notebook. Remove the key from this cell."
            )
        if rest:
            raise UsageError(
                f"%opennote {command} takes no arguments, got {' '.join(rest)!r}"
            )
        handlers = {
            "login": self._login,
            "logout": self._logout,
            "status": self._status,
            "jobs": self._jobs,
            "form": self._form,
        }
        handler = handlers.get(command)
        if handler is None:
            raise UsageError(
                f"unknown %opennote subcommand {command!r}: use login, logout, "
                "status, jobs, resume ID or form"
            )
        return handler()

    def _login(self) -> None:
        import getpass

        from IPython.core.error import StdinNotImplementedError

        try:
            # Looked up at call time: ipykernel swaps getpass.getpass for a
            # front-end prompt while a cell runs.
            key = getpass.getpass("Opennote API key: ")
        except (StdinNotImplementedError, EOFError, OSError):
            raise OpennoteCellError(
                "This front end cannot prompt for the key. Set the OPENNOTE_API_KEY "
                "environment variable where Jupyter starts, then restart the kernel."
            ) from None
        key = key.strip()
        if not key:
            raise UsageError(
                "no key entered: run %opennote login again and paste the key"
            )
        from opennote_jupyter._validation import check_api_key
        from opennote_jupyter.errors import ConfigurationError

        try:
            check_api_key(key, "the key entered at %opennote login")
        except ConfigurationError as exc:
            raise OpennoteCellError(describe_error(exc)) from None
        session.set_api_key(key)
        print(
            "API key stored in this kernel's memory only; "
            "it is gone when the kernel stops."
        )
        if session.has_own_client():
            print(
                "The magics and forms still use the client given to use_client, "
                "with its own key; use_client(None) makes them use this one."
            )

    def _logout(self) -> None:
        had_key = session.has_login_key()
        session.set_api_key(None)
        if had_key:
            print("Forgot the key from %opennote login.")
        else:
            print("No key from %opennote login was set; OPENNOTE_API_KEY is unchanged.")

    def _status(self) -> None:
        from opennote_jupyter.errors import OpennoteError

        client = self._client()
        try:
            base_url = client.base_url
            tier = client.tier
            jobs = client.jobs()
        except OpennoteError as exc:
            raise OpennoteCellError(describe_error(exc)) from exc
        backend = (
            "embedded local backend" if client.uses_local_backend else "Opennote API"
        )
        key_source = (
            "none (local backend key)"
            if client.uses_local_backend
            else "the client given to use_client"
            if session.has_own_client()
            else "%opennote login"
            if session.has_login_key()
            else "OPENNOTE_API_KEY"
        )
        import pandas as pd

        day_ago = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=1)
        recent = jobs[jobs["requested_at"] > day_ago]
        sent = int((recent["status"] != "rejected").sum())
        left = max(0, tier.per_day - sent)
        print(f"Backend: {backend} at {base_url}")
        print(f"Key: {key_source}")
        assumed = ""
        if not client.uses_local_backend and not session.has_own_client():
            # The API does not report a key's tier, so the shared client paces at
            # the default one.
            assumed = (
                ", assumed: for another tier, see use_client in "
                "opennote_jupyter.notebook.session"
            )
        print(
            f"Tier: {tier.name} ({tier.per_minute} per minute, {tier.per_day} per "
            f"day){assumed}"
        )
        print(
            f"Quota left today: {left} of {tier.per_day} "
            f"(counted from this machine's job journal: {sent} sent in 24 h)"
        )

    def _jobs(self) -> Any:
        from opennote_jupyter.errors import OpennoteError

        try:
            return self._client().jobs()
        except OpennoteError as exc:
            raise OpennoteCellError(describe_error(exc)) from exc

    def _resume(self, video_id: str) -> None:
        client = self._client()
        progress = ProgressDisplay()
        progress.show(f"waiting for {video_id}")
        progress.created(video_id)
        args = _ResumeArgs()
        self._wait(client, video_id, args, progress, resume=True)

    def _form(self) -> Any:
        from opennote_jupyter.notebook.form import VideoForm

        return VideoForm()


class _ResumeArgs:
    timeout = None
    embed = False


def _resume_hint(video_id: str, text: str) -> str:
    text = text.rstrip(".")
    return (
        f"{text}: video {video_id} keeps rendering on the server. "
        f"Run %opennote resume {video_id} to pick it up."
    )


def register(ipython: Any) -> None:
    """Register ``%%opennote_video`` and ``%opennote`` on ``ipython``."""
    ipython.register_magics(OpennoteMagics)
