"""Group narrated words into caption cues and write them as WebVTT."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from opennote_jupyter.local.render import layout

MAX_CUE_WORDS = 8
# A cue of this many words also ends at a comma, so cues tend to hold clauses.
MIN_WORDS_BEFORE_COMMA_BREAK = 4
_SENTENCE_END = re.compile(r"[.!?;:]$")


@dataclass(frozen=True)
class Cue:
    """Caption text shown from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


def group_words(
    words: list[tuple[str, float, float]], max_width: float = layout.MAX_LINE_WIDTH
) -> list[Cue]:
    """Join timed words into cues that fit on one caption line.

    ``words`` contains ``(text, start, end)`` in order. A cue ends after a
    sentence, after a comma once it has four words, at eight words, or before it
    would grow wider than ``max_width`` pixels. A word wider than a whole line is
    cut into pieces that share its time.
    """
    pieces: list[tuple[str, float, float]] = []
    for text, start, end in words:
        shown = layout.displayable(text)
        if layout.measure(shown, layout.CAPTION_SIZE, False, False)[0] <= max_width:
            pieces.append((shown, start, end))
            continue
        parts = layout.split_word(shown, layout.CAPTION_SIZE, False, max_width)
        step = (end - start) / len(parts)
        for number, part in enumerate(parts):
            pieces.append((part, start + step * number, start + step * (number + 1)))

    cues: list[Cue] = []
    current: list[tuple[str, float, float]] = []

    def flush() -> None:
        if current:
            text = " ".join(piece for piece, _, _ in current)
            cues.append(Cue(current[0][1], current[-1][2], text))
            current.clear()

    for piece in pieces:
        if current:
            candidate = " ".join(p for p, _, _ in current) + " " + piece[0]
            too_wide = (
                layout.measure(candidate, layout.CAPTION_SIZE, False, False)[0]
                > max_width
            )
            if too_wide or len(current) >= MAX_CUE_WORDS:
                flush()
        current.append(piece)
        comma_break = (
            piece[0].endswith(",") and len(current) >= MIN_WORDS_BEFORE_COMMA_BREAK
        )
        if _SENTENCE_END.search(piece[0]) or comma_break:
            flush()
    flush()
    return cues


def spread_shared_starts(cues: list[Cue]) -> list[Cue]:
    """Share out the time of back-to-back cues that start at the same moment.

    The voice can report one time for several words, and a cue made only of such
    words would last no time at all and never be seen. Each run of cues with one
    start gets equal slices of the time up to the end of its last cue.
    """
    result: list[Cue] = []
    index = 0
    while index < len(cues):
        run_end = index + 1
        while run_end < len(cues) and cues[run_end].start - cues[index].start < 0.001:
            run_end += 1
        start = cues[index].start
        step = (cues[run_end - 1].end - start) / (run_end - index)
        for offset, cue in enumerate(cues[index:run_end]):
            end = (
                cue.end
                if offset == run_end - index - 1
                else start + step * (offset + 1)
            )
            result.append(Cue(start + step * offset, end, cue.text))
        index = run_end
    return result


def _timestamp(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def write_webvtt(path: Path, cues: list[Cue]) -> None:
    """Write ``cues`` to ``path`` as a WebVTT file (UTF-8)."""
    blocks = ["WEBVTT", ""]
    for number, cue in enumerate(cues, start=1):
        # WebVTT reserves "&" and "<" in cue text, and "-->" ends a timing line.
        text = cue.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        blocks += [str(number), f"{_timestamp(cue.start)} --> {_timestamp(cue.end)}"]
        blocks += [text, ""]
    path.write_text("\n".join(blocks), encoding="utf-8")
