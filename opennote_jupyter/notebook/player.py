"""Display a finished video in a notebook: an HTML5 player plus a plain-text form.

The player points ``<video controls>`` at the video's URL, so a saved notebook grows
by about a kilobyte of markup per video, plus the transcript. The video itself is
inlined as base64 only when the caller asks for ``embed=True``. A result that carries
only base64 (``upload_to_s3=False``) is written to ``opennote-videos/<video id>.mp4``
under the kernel's working directory, which is the notebook's directory in
JupyterLab and Notebook 7, and played from that relative path.

Browsers elsewhere than the kernel
----------------------------------
The embedded local backend serves videos on the kernel's loopback interface
(``http://127.0.0.1:PORT/files/...``). A browser on another machine (Binder,
JupyterHub, a remote server) cannot reach that address, so the player routes such
URLs through jupyter-server-proxy: when ``OPENNOTE_PROXY_PREFIX`` or, failing that,
``JUPYTERHUB_SERVICE_PREFIX`` is set, ``http://127.0.0.1:PORT/path`` becomes
``{prefix}proxy/PORT/path``, a path on the Jupyter server itself. Set
``OPENNOTE_PROXY_PREFIX`` to the Jupyter server's base URL (``/`` for a server at
the root) to turn the rewrite on outside a hub, or to ``none`` to turn it off.
"""

from __future__ import annotations

import base64
import html
import os
import re
import struct
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROXY_PREFIX_ENV = "OPENNOTE_PROXY_PREFIX"
HUB_PREFIX_ENV = "JUPYTERHUB_SERVICE_PREFIX"

# Folder, relative to the kernel's working directory, for base64-only results.
VIDEO_DIR_NAME = "opennote-videos"

# jupyter_server 2.x drops IOPub output above 1 MB/s averaged over a 3 s window
# (ZMQChannelsWebsocketConnection.iopub_data_rate_limit and rate_limit_window), so
# one display message must stay under about 3 MB. Base64 grows data by 4/3.
EMBED_MAX_BYTES = 2_000_000

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_SAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def proxy_prefix() -> str | None:
    """Return the Jupyter server path that proxies loopback ports, or ``None``.

    ``OPENNOTE_PROXY_PREFIX`` wins over ``JUPYTERHUB_SERVICE_PREFIX``; the value
    ``none`` (any case) turns the rewrite off. The result ends with ``/``.
    """
    value = os.environ.get(PROXY_PREFIX_ENV)
    if value is None or not value.strip():
        value = os.environ.get(HUB_PREFIX_ENV, "")
    value = value.strip()
    if not value or value.lower() == "none":
        return None
    return value if value.endswith("/") else value + "/"


def browser_url(url: str) -> str:
    """Return ``url`` as the browser should load it.

    A loopback URL with a port is rewritten to ``{prefix}proxy/PORT/path`` when a
    proxy prefix is configured (see :func:`proxy_prefix`); any other URL is
    returned unchanged.
    """
    prefix = proxy_prefix()
    if prefix is None:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in _LOOPBACK_HOSTS:
        return url
    if parts.port is None:
        return url
    rewritten = f"{prefix}proxy/{parts.port}/{parts.path.lstrip('/')}"
    if parts.query:
        rewritten += "?" + parts.query
    return rewritten


def caption_url(url: str) -> str | None:
    """Return the WebVTT captions URL beside a local-backend video URL, or ``None``.

    The local backend serves captions at the video's key with ``.mp4`` replaced by
    ``.vtt``. Hosted URLs get ``None`` because the hosted service publishes none.
    """
    parts = urlsplit(url)
    if parts.hostname not in _LOOPBACK_HOSTS or not parts.path.startswith("/files/"):
        return None
    if not parts.path.endswith(".mp4"):
        return None
    return parts._replace(path=parts.path[: -len(".mp4")] + ".vtt").geturl()


def mp4_duration(data: bytes) -> float | None:
    """Read the duration in seconds from an MP4's ``moov/mvhd`` box, or ``None``."""
    moov = _find_box(data, b"moov")
    if moov is None:
        return None
    mvhd = _find_box(moov, b"mvhd")
    if mvhd is None or len(mvhd) < 20:
        return None
    version = mvhd[0]
    try:
        if version == 1:
            timescale, duration = struct.unpack(">IQ", mvhd[20:32])
        else:
            timescale, duration = struct.unpack(">II", mvhd[12:20])
    except struct.error:
        return None
    if timescale == 0:
        return None
    return duration / timescale


def _find_box(data: bytes, box_type: bytes) -> bytes | None:
    """Return the payload of the first box of ``box_type`` at this level."""
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:
            if offset + 16 > len(data):
                return None
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
            header = 16
        elif size == 0:
            size = len(data) - offset
        if size < header:
            return None
        if kind == box_type:
            return data[offset + header : offset + size]
        offset += size
    return None


def write_video_file(
    video_id: str | None, data: bytes, directory: Path | None = None
) -> Path:
    """Write mp4 bytes to ``opennote-videos/<video id>.mp4`` and return the path.

    Parameters
    ----------
    video_id
        The job's id; characters unsafe in file names are replaced by ``_``.
    data
        The mp4 bytes.
    directory
        The folder to write into; defaults to ``opennote-videos`` under the current
        working directory. Created if missing.

    Raises
    ------
    OSError
        If the folder or the file cannot be written; no partial file is left.
    """
    folder = directory if directory is not None else Path.cwd() / VIDEO_DIR_NAME
    folder.mkdir(parents=True, exist_ok=True)
    stem = _SAFE_FILE_CHARS.sub("_", video_id or "video").strip("._") or "video"
    path = folder / f"{stem}.mp4"
    # Written beside the target and renamed, so a failed write (full disk, quota)
    # leaves neither a truncated mp4 nor a damaged earlier copy. Not mkstemp: its
    # 0600 mode would differ from the umask's usual one.
    temporary = folder / f".{stem}.{uuid.uuid4().hex}.part"
    try:
        with open(temporary, "xb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _format_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _relative_src(path: Path) -> str:
    """Return a URL for ``path`` relative to the working directory when possible."""
    try:
        relative = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path.resolve().as_uri()
    return "/".join(relative.parts)


def _http_link(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


def _transcript_html(transcript: str) -> str:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", transcript) if p.strip()]
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return f"<details><summary>Transcript</summary>{body}</details>"


def _sources_html(sources: Any) -> str:
    items = []
    for source in sources:
        url = str(getattr(source, "url", "") or "")
        text = html.escape(url)
        if _http_link(url):
            href = html.escape(url, quote=True)
            items.append(
                f'<li><a href="{href}" target="_blank" rel="noopener">{text}</a></li>'
            )
        else:
            items.append(f"<li>{text}</li>")
    return (
        f"<details><summary>Sources ({len(items)})</summary><ol>{''.join(items)}</ol>"
        "</details>"
    )


class VideoPlayer:
    """A displayable player for a :class:`~opennote_jupyter.models.VideoResult`.

    Parameters
    ----------
    result
        The finished video.
    embed
        Inline the video as a base64 data URI, so the notebook carries it. Videos
        over :data:`EMBED_MAX_BYTES` are written to a file instead, with a note.
    directory
        Where base64-only results are written (default ``./opennote-videos``).

    Attributes
    ----------
    src
        What the ``<video>`` element loads: a URL, a relative file path or a data URI.
    path
        The local mp4 file, when one was written.
    duration
        Seconds, read from the mp4 bytes or from the first bytes at its URL;
        ``None`` when neither could be read.
    note
        A sentence shown under the player, or ``""``.
    """

    def __init__(
        self, result: Any, *, embed: bool = False, directory: Path | None = None
    ) -> None:
        self.result = result
        self.embed = embed
        self.path: Path | None = None
        self.duration: float | None = None
        self.note = ""
        self.src = ""
        self._prepare(directory)

    def _prepare(self, directory: Path | None) -> None:
        result = self.result
        data = result.video_bytes() if getattr(result, "b64_video", None) else None
        if data is None and self.embed and result.s3_url and _http_link(result.s3_url):
            try:
                data = _download(result.s3_url, EMBED_MAX_BYTES)
            except (OSError, ValueError) as exc:
                # The video is done; only the copy for the notebook failed.
                self.note = f"Not embedded: downloading the video failed ({exc})."
            else:
                if data is None:
                    self.note = (
                        f"Not embedded: the video is over the "
                        f"{EMBED_MAX_BYTES / 1e6:.0f} MB limit, because Jupyter "
                        "drops larger outputs."
                    )
        if data is not None:
            self.duration = mp4_duration(data)
        elif result.s3_url and _http_link(result.s3_url):
            self.duration = _remote_duration(result.s3_url)
        if self.embed and data is not None and len(data) <= EMBED_MAX_BYTES:
            encoded = base64.b64encode(data).decode("ascii")
            self.src = f"data:video/mp4;base64,{encoded}"
            return
        if self.embed and data is not None:
            self.note = (
                f"Not embedded: the video is {len(data) / 1e6:.1f} MB and the limit "
                f"is {EMBED_MAX_BYTES / 1e6:.0f} MB, because Jupyter drops larger "
                "outputs."
            )
        if result.s3_url and _http_link(result.s3_url):
            self.src = browser_url(result.s3_url)
            return
        if result.s3_url and data is None:
            # A javascript: or data: URL from a server is never made clickable.
            self.note = "Not played: the video URL is not an http(s) URL."
            return
        if data is not None:
            try:
                self.path = write_video_file(result.video_id, data, directory)
            except OSError as exc:
                folder = directory if directory is not None else Path(VIDEO_DIR_NAME)
                self.note = (
                    f"Could not save the video to {folder} ({exc}). The mp4 bytes "
                    "are in the result's video_bytes(); --embed (embed=True) "
                    "inlines the video instead."
                )
                return
            self.src = _relative_src(self.path)
            if not self.note:
                self.note = (
                    f"Saved to {self.src} beside the notebook; the notebook keeps "
                    "only this link."
                )

    def text(self) -> str:
        """Return the plain-text form: title, URL or file path, duration, sources."""
        result = self.result
        lines = [f"Opennote video: {result.title or '(untitled)'}"]
        if result.s3_url:
            lines.append(f"URL: {result.s3_url}")
        if self.path is not None:
            lines.append(f"File: {self.path}")
        if result.s3_url is None and self.path is None and self.src.startswith("data:"):
            lines.append("Embedded in the notebook (base64)")
        if self.duration is not None:
            lines.append(f"Duration: {_format_duration(self.duration)}")
        if result.video_id:
            lines.append(f"Video id: {result.video_id}")
        if result.sources:
            lines.append(f"Sources: {len(result.sources)}")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def html(self) -> str:
        """Return the HTML player; every user or server text is escaped."""
        result = self.result
        title = html.escape(result.title or "(untitled)")
        src = html.escape(self.src, quote=True)

        meta = []
        if self.duration is not None:
            meta.append(_format_duration(self.duration))
        if result.video_id:
            meta.append(f"<code>{html.escape(result.video_id)}</code>")
        track = ""
        vtt = caption_url(result.s3_url) if result.s3_url else None
        if vtt is not None:
            vtt_src = html.escape(browser_url(vtt), quote=True)
            track = (
                f'<track kind="captions" src="{vtt_src}" srclang="en" '
                'label="Captions" default>'
            )

        parts = [
            '<div class="opennote-video">',
            f"<div><strong>{title}</strong> {' · '.join(meta)}</div>",
        ]
        if self.src:
            parts.append(
                f'<video controls preload="metadata" src="{src}" '
                f'style="max-width:100%">{track}</video>'
            )
        if self.src and not self.src.startswith("data:"):
            name = html.escape(
                Path(urlsplit(self.src).path).name or "video.mp4", quote=True
            )
            parts.append(f'<div><a href="{src}" download="{name}">Download</a></div>')

        if self.note:
            parts.append(f"<div><em>{html.escape(self.note)}</em></div>")
        if result.transcript:
            parts.append(_transcript_html(result.transcript))
        if result.sources:
            parts.append(_sources_html(result.sources))
        parts.append("</div>")
        return "".join(parts)

    def bundle(self) -> dict[str, str]:
        """Return the MIME bundle ``{"text/plain": ..., "text/html": ...}``."""
        return {"text/plain": self.text(), "text/html": self.html()}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        return self.bundle()

    def __repr__(self) -> str:
        return self.text()


def _download(url: str, limit: int) -> bytes | None:
    """Fetch a video for embedding, or ``None`` once it exceeds ``limit`` bytes.

    Reading stops past the limit, so a large hosted video is not fetched whole
    only to be shown by its URL.
    """
    from urllib.request import urlopen

    if not _http_link(url):
        raise ValueError(f"cannot embed the video at {url!r}: only http(s) URLs load")
    with urlopen(url, timeout=60) as response:
        data = response.read(limit + 1)
    return data if len(data) <= limit else None


# A faststart mp4 puts its moov box, and mvhd first inside it, at the start of the
# file; the local renderer writes faststart files.
_HEAD_BYTES = 256 * 1024


def _remote_duration(url: str) -> float | None:
    """Read a video's duration from the first bytes at ``url``, or ``None``.

    The request asks for a byte range and reads at most ``_HEAD_BYTES`` even when
    the server sends the whole file. It sends no API key: video URLs are public.
    """
    from urllib.request import Request, urlopen

    request = Request(url, headers={"Range": f"bytes=0-{_HEAD_BYTES - 1}"})
    try:
        with urlopen(request, timeout=5) as response:
            head = response.read(_HEAD_BYTES)
    except (OSError, ValueError):
        # The duration is a nicety: the player works without it.
        return None
    return mp4_duration(head)
