"""Limits, defaults and tiers of the Opennote Video API, shared by client and server.

The values come from the public Opennote documentation of ``POST /v1/video/create``
and its rate-limit page. The client validates requests against them before any
credit is spent, and the local backend enforces the same numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MODEL = "picasso"

MIN_LENGTH = 1
MAX_LENGTH = 5
DEFAULT_LENGTH = 3

MIN_SOURCE_COUNT = 1
MAX_SOURCE_COUNT = 5
DEFAULT_SOURCE_COUNT = 3

MAX_SEARCH_FOR_CHARS = 100
MAX_SCRIPT_CHARS = 6000

MESSAGE_ROLES = ("user", "assistant", "system")

# A script's sections are separated by lines that consist of this marker.
SECTION_SEPARATOR = "-----"

# The rule every part applies: a line of at least five dashes, with optional
# spaces or tabs around them, is a separator, so that a longer rule drawn by hand
# still splits the script. A trailing "\r" lets CRLF text match line by line.
SECTION_SEPARATOR_LINE = re.compile(r"^[ \t]*-{5,}[ \t]*\r?$", re.MULTILINE)


def split_script_sections(text: str) -> list[str]:
    """Split a script at its separator lines and return the sections with text.

    Sections that contain only whitespace are left out, so the result has one entry
    per section that is narrated (and paid for). CRLF line ends become LF;
    the text of each section is otherwise unchanged.

    Parameters
    ----------
    text
        A script whose sections are separated by lines of ``-----`` (see
        :data:`SECTION_SEPARATOR_LINE`).

    Returns
    -------
    list of str
        The sections in order, without the separator lines.
    """
    chunks = SECTION_SEPARATOR_LINE.split(text.replace("\r\n", "\n"))
    return [chunk for chunk in chunks if chunk.strip()]


JOB_STATUSES = ("pending", "completed", "failed", "status_error")
FINAL_STATUSES = ("completed", "failed", "status_error")


@dataclass(frozen=True)
class Tier:
    """A rate-limit tier: how many creates an organization may send."""

    name: str
    per_minute: int
    per_day: int


# Limits count per organization, across all of its keys. Enterprise numbers are
# set per customer, so callers pass them in explicitly.
TIERS = {
    "developer": Tier("developer", per_minute=3, per_day=50),
    "scale": Tier("scale", per_minute=10, per_day=150),
}


def tier_named(
    name: str, per_minute: int | None = None, per_day: int | None = None
) -> Tier:
    """Return the tier called ``name``; ``enterprise`` needs its own numbers.

    Raises
    ------
    ValueError
        If the name is unknown, or enterprise numbers are missing or not positive.
    """
    key = name.strip().lower()
    if key in TIERS:
        return TIERS[key]
    if key == "enterprise":
        if not per_minute or not per_day or per_minute < 1 or per_day < 1:
            raise ValueError(
                "the enterprise tier has custom limits: pass per_minute and per_day "
                f"as positive integers (got per_minute={per_minute!r}, "
                f"per_day={per_day!r})"
            )
        return Tier("enterprise", per_minute=per_minute, per_day=per_day)
    known = ", ".join([*TIERS, "enterprise"])
    raise ValueError(f"unknown tier {name!r}: use one of {known}")
