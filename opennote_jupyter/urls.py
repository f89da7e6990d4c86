"""Build and parse the object keys that carry a video's metadata in its URL.

The current Opennote key format is::

    <ISO timestamp, percent-encoded>-<UUID4>--<title percent-encoded twice>.<ext>

The first encoding of the title keeps ``/`` literal, so a title may put ``/`` into
the key. The local backend names its files with :func:`build_video_key`, so the
parser reads local and hosted URLs alike.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import quote


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
        The title; it is percent-encoded twice, with ``/`` kept by the first pass.
    file_type
        The extension without its dot.
    """
    if created_at.tzinfo is not None:
        raise ValueError(
            f"created_at {created_at.isoformat()!r} has a time zone: "
            "pass a naive UTC datetime, the key format carries no zone"
        )
    stamp = quote(created_at.isoformat(timespec="microseconds"), safe="")
    encoded_title = quote(quote(title, safe="/"), safe="/")
    return f"{stamp}-{uuid.UUID(str(video_id))}--{encoded_title}.{file_type}"
