"""Build and parse the object keys that carry a video's metadata in its URL.

The current Opennote key format is::

    <ISO timestamp, percent-encoded>-<UUID4>--<title percent-encoded twice>.<ext>

The first encoding of the title keeps ``/`` literal, so a title may put ``/`` into
the key. The local backend names its files with :func:`build_video_key` and serves
them at ``<base URL>/files/<key>``, so the parser reads local and hosted URLs alike.

:func:`parse_video_url` parses one URL with the standard library only.
:func:`parse_video_urls` parses many into a pandas DataFrame and imports pandas on
first use, so importing this module stays cheap.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd


def build_video_key(
    created_at: datetime,
    video_id: str | uuid.UUID,
    title: str,
    file_type: str = "mp4",
) -> str:
    """Build an object key in the current Opennote format.

    Parameters
    ----------
    created_at
        Creation time. It is written without a zone, so pass naive UTC.
    video_id
        A UUID, written in its canonical lowercase form.
    title
        The title. It is percent-encoded twice, with ``/`` kept by the first pass.
        Inner ``.`` and ``..`` path segments are encoded too, so that the URL
        survives the dot-segment removal of HTTP clients.
    file_type
        The extension without its dot.
    """
    if created_at.tzinfo is not None:
        raise ValueError(
            f"created_at {created_at.isoformat()!r} has a time zone: "
            "pass a naive UTC datetime, the key format carries no zone"
        )
    stamp = quote(created_at.isoformat(timespec="microseconds"), safe="")
    encoded_title = quote(_encode_dot_segments(quote(title, safe="/")), safe="/")
    return f"{stamp}-{uuid.UUID(str(video_id))}--{encoded_title}.{file_type}"


def _encode_dot_segments(path: str) -> str:
    """Percent-encode inner path segments that are ``.`` or ``..``.

    HTTP clients and browsers remove such segments from a URL before sending it
    (RFC 3986, section 5.2.4), so a title like ``a/../b`` would name another file.
    The first and last segments are never bare dots, because the key's prefix and
    extension are attached to them, so they stay as they are.
    """
    segments = path.split("/")
    for index in range(1, len(segments) - 1):
        if segments[index] in (".", ".."):
            segments[index] = segments[index].replace(".", "%2E")
    return "/".join(segments)


# ---------------------------------------------------------------------------
# Parsing

# Key grammar, shared with the vectorized parser in ``opennote_jupyter.url_frame``.
# Character classes are ASCII on purpose: ``\d`` would accept other digits.
_TIMESTAMP = (
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"T(?P<hour>[0-9]{2})(?::|%3[Aa])(?P<minute>[0-9]{2})(?::|%3[Aa])"
    r"(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]{1,6}))?"
)
_COMPACT_TIMESTAMP = (
    r"(?P<year>[0-9]{4})(?P<month>[0-9]{2})(?P<day>[0-9]{2})"
    r"(?P<hour>[0-9]{2})(?P<minute>[0-9]{2})(?P<second>[0-9]{2})"
)
_UUID = (
    r"(?P<id>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}"
    r"-[0-9A-Fa-f]{12})"
)
_EXTENSION = r"\.(?P<file_type>[A-Za-z0-9]+)"

# The title runs to the last dot of the key, so a title may itself contain dots,
# ``.mp4`` or end in a dot (``..png``).
_KEY_FORMATS = (
    re.compile(_TIMESTAMP + "-" + _UUID + "--(?P<title>.*)" + _EXTENSION, re.DOTALL),
    re.compile(_TIMESTAMP + "---" + _UUID + "---(?P<title>.*)" + _EXTENSION, re.DOTALL),
    re.compile(_COMPACT_TIMESTAMP + "-" + _UUID + _EXTENSION, re.DOTALL),
)

_URL_PARTS = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<host>[^/?#]*)(?P<path>[^?#]*)",
    re.DOTALL,
)
_BUCKET = r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]"
# s3.amazonaws.com, s3.<region>.amazonaws.com, s3-<region>.amazonaws.com and the
# like (dualstack, accelerate), with an optional port.
_S3_ENDPOINT = r"s3(?:[.\-][a-z0-9\-]+)*\.amazonaws\.com(?::[0-9]{1,5})?"
_VIRTUAL_HOST = re.compile(f"(?P<bucket>{_BUCKET})\\.{_S3_ENDPOINT}")
_PATH_STYLE_HOST = re.compile(_S3_ENDPOINT)
_PATH_STYLE_BUCKET = re.compile(f"/(?P<bucket>{_BUCKET})/")
_LOOPBACK_HOST = re.compile(
    r"(?:127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|localhost|\[::1\])"
    r"(?::[0-9]{1,5})?"
)
_LOCAL_FILES_PATH = "/files/"

_KEY_FORMAT_HELP = (
    "expected <ISO timestamp>-<UUID>--<title>.<ext>, "
    "<ISO timestamp>---<UUID>---<name>.<ext> or <YYYYMMDDhhmmss>-<UUID>.<ext>"
)


@dataclass(frozen=True)
class VideoUrl:
    """Metadata carried in the key of an Opennote video or image URL.

    Attributes
    ----------
    url
        The URL as given.
    bucket
        The S3 bucket name, or ``None`` for a URL of the local backend.
    created_at
        Creation time as written in the key, as a naive ``datetime`` because the
        key carries no zone. :func:`build_video_key` and the local backend write
        UTC.
    id
        The UUID in the key, lowercase.
    title
        The title decoded twice with :func:`urllib.parse.unquote`, the legacy name
        (``output``), or ``None`` for title-less image keys.
    file_type
        The extension without its dot, such as ``mp4`` or ``png``.
    """

    url: str
    bucket: str | None
    created_at: datetime
    id: str
    title: str | None
    file_type: str


class _Mismatch(Exception):
    """Parse failure of one URL, with ``reason`` naming the part that did not match."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_video_url(url: str) -> VideoUrl:
    """Parse one Opennote video or image URL into its metadata.

    Accepted URLs are S3 virtual-hosted
    (``https://<bucket>.s3.<region>.amazonaws.com/<key>``), S3 path-style
    (``https://s3.<region>.amazonaws.com/<bucket>/<key>``) and the local backend's
    (``http://127.0.0.1:<port>/files/<key>``). The key is everything after the
    bucket (or ``/files/``) up to a query string or fragment, which are ignored, so
    presigned URLs parse too. Key formats:

    - ``<ISO timestamp>-<UUID>--<title>.<ext>``, with the timestamp's colons
      percent-encoded or not and the title percent-encoded twice;
    - the legacy ``<ISO timestamp>---<UUID>---<name>.<ext>``;
    - title-less images, ``<YYYYMMDDhhmmss>-<UUID>.<ext>``.

    Parameters
    ----------
    url
        The URL.

    Returns
    -------
    VideoUrl
        The metadata. ``created_at`` is naive because the key carries no zone. The
        title is decoded exactly twice with
        :func:`urllib.parse.unquote`, so ``+`` stays ``+``.

    Raises
    ------
    ValueError
        If ``url`` is missing or empty, or a part of it does not match. The message
        names the URL and the part.
    TypeError
        If ``url`` is neither a string nor a missing value.
    """
    if not isinstance(url, str) and not _is_missing(url):
        raise TypeError(f"expected the URL as a str, got {type(url).__name__}: {url!r}")
    try:
        return _parse(url)
    except _Mismatch as exc:
        raise ValueError(f"invalid Opennote video URL {url!r}: {exc.reason}") from None


def parse_video_urls(urls: Any, errors: str = "coerce") -> pd.DataFrame:
    """Parse many Opennote URLs into a DataFrame, one row per input, in order.

    The work is vectorized with pyarrow string kernels and numpy, and falls back to
    :func:`parse_video_url` only for rows off the common formats, so both give the
    same values for every input. The first call imports pandas and registers the
    ``Series.opennote`` accessor (``urls.opennote.parse()``).

    Parameters
    ----------
    urls
        A list, a pandas Series or Index, or any iterable of URL strings. Missing
        values (``None``, NaN, ``pd.NA``) are allowed. A Series keeps its index in
        the result, and other inputs get a default index.
    errors
        ``"coerce"`` keeps rows that do not parse, with missing values and a reason
        in ``error``. ``"raise"`` raises on the first one.

    Returns
    -------
    pandas.DataFrame
        Columns ``url``, ``bucket``, ``id``, ``title``, ``file_type`` and ``error``
        have the pyarrow-backed ``string`` dtype with ``pd.NA``. ``created_at`` is
        ``datetime64[us]``, which keeps microseconds, and naive because the key
        carries no zone. Bad rows get ``NaT`` there. ``bucket`` is missing for
        URLs of the local backend and ``title`` for title-less image keys.

    Raises
    ------
    ValueError
        With ``errors="raise"``, for the first URL that does not parse, naming it
        and its position. Also raised for an unknown ``errors`` value.
    """
    from opennote_jupyter.url_frame import parse_video_urls as parse_frame

    return parse_frame(urls, errors=errors)


def parse_video_urls_dask(urls: dd.Series, errors: str = "coerce") -> dd.DataFrame:
    """Apply :func:`parse_video_urls` to a dask Series, partition by partition.

    Needs the ``dask`` extra. Each partition keeps its index, so the result aligns
    with the frame the Series came from.

    Parameters
    ----------
    urls
        A dask Series of URL strings.
    errors
        ``"coerce"`` or ``"raise"``, as in :func:`parse_video_urls`. With
        ``"raise"`` the error is raised when the result is computed.

    Returns
    -------
    dask.dataframe.DataFrame
        The lazy result, with the columns and dtypes of :func:`parse_video_urls`.
    """
    from opennote_jupyter.url_frame import parse_video_urls_dask as parse_dask

    return parse_dask(urls, errors=errors)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    # pd.NA and pd.NaT, without importing pandas.
    return type(value).__name__ in ("NAType", "NaTType")


def _parse(url: Any) -> VideoUrl:
    """Parse one URL, raising :class:`_Mismatch` with the reason on failure."""
    if not isinstance(url, str):
        if _is_missing(url):
            raise _Mismatch("missing value")
        raise _Mismatch(f"expected a str, got {type(url).__name__}")
    if not url:
        raise _Mismatch("empty string")
    bucket, key_start, key_end = _locate_key(url)
    return _parse_key(url, bucket, url[key_start:key_end])


def _locate_key(url: str) -> tuple[str | None, int, int]:
    """Find the bucket and the key's span ``[start, end)`` in ``url``."""
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        raise _Mismatch(
            "contains characters that UTF-8 cannot encode (lone surrogates)"
        ) from None
    parts = _URL_PARTS.match(url)
    if parts is None or parts["scheme"].lower() not in ("http", "https"):
        raise _Mismatch("does not start with http:// or https://")
    host = parts["host"].lower()
    path = parts["path"]
    path_start = parts.start("path")
    key_end = parts.end("path")
    virtual = _VIRTUAL_HOST.fullmatch(host)
    if virtual is not None:
        bucket: str | None = virtual["bucket"]
        key_start = path_start + 1
    elif _PATH_STYLE_HOST.fullmatch(host):
        path_bucket = _PATH_STYLE_BUCKET.match(path)
        if path_bucket is None:
            raise _Mismatch(
                "path-style S3 URL has no bucket: expected "
                "https://s3.<region>.amazonaws.com/<bucket>/<key>"
            )
        bucket = path_bucket["bucket"]
        key_start = path_start + path_bucket.end()
    elif _LOOPBACK_HOST.fullmatch(host):
        if not path.startswith(_LOCAL_FILES_PATH):
            raise _Mismatch(
                f"local backend URL path does not start with {_LOCAL_FILES_PATH}"
            )
        bucket = None
        key_start = path_start + len(_LOCAL_FILES_PATH)
    else:
        raise _Mismatch(
            f"host {parts['host']!r} is neither an S3 bucket host "
            "(<bucket>.s3.<region>.amazonaws.com), an S3 path-style host "
            "(s3.<region>.amazonaws.com) nor a loopback host of the local backend"
        )
    if key_start >= key_end:
        raise _Mismatch("the URL has no object key after the bucket")
    return bucket, key_start, key_end


def _parse_key(url: str, bucket: str | None, key: str) -> VideoUrl:
    for key_format in _KEY_FORMATS:
        match = key_format.fullmatch(key)
        if match is not None:
            break
    else:
        raise _Mismatch(
            f"object key {key!r} matches no Opennote format: " + _KEY_FORMAT_HELP
        )
    fraction = match.groupdict().get("fraction") or ""
    try:
        created_at = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            int(fraction.ljust(6, "0")),
        )
    except ValueError as exc:
        stamp = key[: match.start("id") - 1].rstrip("-")
        raise _Mismatch(
            f"timestamp {stamp!r} is not a valid date and time: {exc}"
        ) from None
    title = match.groupdict().get("title")
    if title is not None:
        title = unquote(unquote(title))
    return VideoUrl(
        url=url,
        bucket=bucket,
        created_at=created_at,
        id=match["id"].lower(),
        title=title,
        file_type=match["file_type"],
    )
