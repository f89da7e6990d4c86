"""``opennote-video create``: make one video from the terminal.

The key comes from ``$OPENNOTE_API_KEY`` only, because a command-line option would
end up in shell history. With no key the local backend makes the video.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from opennote_jupyter import contract

PROG = "opennote-video create"


def _timeout_seconds(text: str) -> float:
    """Parse ``--timeout``, rejecting values that would create a job and then fail.

    Zero and negative values end the wait at once, and wait() rejects NaN, but
    both happen after the job is created and charged.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of seconds, got {text}"
        )
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``create`` subcommand on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "create",
        help="make a video from a prompt or a script and print its URL",
        description="Make a video and print its URL, or save it with --out. The API "
        "key comes from OPENNOTE_API_KEY. Without one, the local backend runs inside "
        "this command and stops with it, so the mp4 is saved to ./VIDEO_ID.mp4 "
        "unless --out names another path.",
    )
    parser.add_argument("prompt", nargs="?", help="what the video is about")
    parser.add_argument("--title", default="", help="title of the video")
    parser.add_argument(
        "--script",
        metavar="FILE",
        help="file with a ready script, sections separated by lines of '-----' "
        "('-' reads standard input)",
    )
    parser.add_argument(
        "--length",
        type=int,
        default=contract.DEFAULT_LENGTH,
        help=f"number of script paragraphs, {contract.MIN_LENGTH} to "
        f"{contract.MAX_LENGTH} (default {contract.DEFAULT_LENGTH})",
    )
    parser.add_argument(
        "--sources", action="store_true", help="gather web sources for the script"
    )
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="save the mp4 to PATH instead of printing a URL "
        "(default with the local backend: ./VIDEO_ID.mp4)",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="server root (default: OPENNOTE_BASE_URL; if unset, the hosted API "
        "when OPENNOTE_API_KEY is set, else the local backend in this process)",
    )
    parser.add_argument(
        "--timeout",
        type=_timeout_seconds,
        default=3600.0,
        help="seconds to wait for the video (default 3600); a job on a server "
        "goes on after, a job on the local backend stops when this command exits",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="do not draw the progress bar"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="log retries, pacing waits and the local backend's work to stderr",
    )
    parser.set_defaults(handler=run)
    return parser


class ProgressBar:
    """A one-line progress bar on a terminal, or sparse lines on a pipe."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last_line: tuple[str, int] | None = None

    def update(self, status: Any) -> None:
        """Redraw the bar for a :class:`~opennote_jupyter.models.VideoStatus`."""
        percent = status.completion_percentage or 0.0
        percent = max(0.0, min(100.0, percent))
        elapsed = time.monotonic() - self.started
        if self.tty:
            filled = int(self.width * percent / 100)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(
                f"\r[{bar}] {percent:5.1f}% {status.status:<9} {elapsed:5.0f} s"
            )
            self.stream.flush()
            return
        # On a pipe, one line per status change or 25 % step keeps logs short.
        key = (status.status, int(percent // 25))
        if key != self._last_line:
            self._last_line = key
            self.stream.write(f"{percent:5.1f}% {status.status} ({elapsed:.0f} s)\n")
            self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _fail(message: str, code: int = 1) -> int:
    # Join lines without collapsing runs of spaces, which may be part of a
    # repr such as prompt='     '.
    parts = (part.strip() for part in str(message).splitlines())
    line = " ".join(part for part in parts if part)
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return code


def _configure_logging(verbose: bool) -> None:
    """Send the package's log records to stderr only when asked to.

    Without a handler, Python prints every warning (each retry of a request)
    and the local backend's errors with their tracebacks, burying the one
    line that states what failed.
    """
    import logging

    logger = logging.getLogger("opennote_jupyter")
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.setLevel(logging.INFO)
    else:
        handler = logging.NullHandler()
    logger.addHandler(handler)


def run(args: argparse.Namespace) -> int:
    """Make the video described by ``args`` and return the process exit code."""
    from opennote_jupyter.client import OpennoteClient
    from opennote_jupyter.errors import OpennoteError, WaitTimeoutError

    script = None
    if args.script:
        try:
            if args.script == "-":
                script = sys.stdin.read()
            else:
                script = Path(args.script).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return _fail(f"cannot read the script file {args.script}: {exc}", 2)
    if not args.prompt and script is None:
        return _fail("pass a prompt or --script FILE", 2)

    from opennote_jupyter.client import API_KEY_ENV, BASE_URL_ENV

    # The client's own message names its api_key= argument, which the CLI lacks.
    base_url = args.base_url or os.environ.get(BASE_URL_ENV)
    if base_url and os.environ.get(API_KEY_ENV) is None:
        where = "--base-url" if args.base_url else BASE_URL_ENV
        return _fail(
            f"no API key for {base_url} (from {where}): set {API_KEY_ENV}, or "
            f"leave {where} unset to use the local backend",
            2,
        )

    _configure_logging(args.verbose)
    bar = None if args.no_progress else ProgressBar(sys.stderr)
    client = None
    job = None
    try:
        client = OpennoteClient(base_url=args.base_url)
        job = client.create(
            args.prompt or None,
            script=script,
            title=args.title,
            length=args.length,
            include_sources=args.sources,
            upload_to_s3=True,
        )
        result = client.wait(
            job.video_id,
            timeout=args.timeout,
            on_progress=bar.update if bar is not None else None,
        )
        if bar is not None:
            bar.close()
            bar = None
        out = args.out
        if out is None and client.uses_local_backend:
            # The URL would be dead once this process, and its server, exits.
            out = f"{job.video_id}.mp4"
        if out:
            print(client.save(result, out))
        else:
            print(result.url)
        return 0
    except WaitTimeoutError as exc:
        if bar is not None:
            bar.close()
        if client is not None and client.uses_local_backend:
            return _fail(
                f"video {exc.video_id} was not ready after {args.timeout:g} s and "
                f"{_EMBEDDED_JOB_STOPS}; run the command again with a larger --timeout"
            )
        return _fail(str(exc))
    except OpennoteError as exc:
        if bar is not None:
            bar.close()
        return _fail(str(exc))
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        if job is None:
            return _fail("interrupted before the job was created", 130)
        if client is not None and client.uses_local_backend:
            return _fail(
                f"interrupted; video {job.video_id} {_EMBEDDED_JOB_STOPS}; run the "
                "command again to make the video",
                130,
            )
        return _fail(
            f"interrupted; video {job.video_id} goes on rendering. Wait for it in "
            f"Python with OpennoteClient().resume({job.video_id!r})",
            130,
        )


# With no API key the server runs in this process, so its jobs end with it and
# a later resume() finds them failed.
_EMBEDDED_JOB_STOPS = (
    "stops when this command exits, because the local backend runs inside it"
)
