"""Turn a create request into a titled list of sections, without a language model."""

from __future__ import annotations

import re
from dataclasses import dataclass

from opennote_jupyter.contract import MAX_SCRIPT_CHARS, split_script_sections
from opennote_jupyter.local.render import RenderRequest

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MAX_HEADING_CHARS = 80
_MAX_TITLE_CHARS = 80


@dataclass(frozen=True)
class Section:
    """One part of the script: an optional heading and body paragraphs."""

    heading: str
    paragraphs: tuple[str, ...]
    # False for a heading made by the renderer (such as "Part 2 of 3"), which is
    # shown on the slide but is no text of the user's to narrate.
    narrate_heading: bool = True


@dataclass(frozen=True)
class Script:
    """The title, the sections in order, and sentences for the result's message."""

    title: str
    sections: tuple[Section, ...]
    notes: tuple[str, ...] = ()


def _paragraphs(text: str) -> tuple[str, ...]:
    blocks = re.split(r"\n[ \t]*\n", text)
    joined = (" ".join(block.split()) for block in blocks)
    return tuple(block for block in joined if block)


def parse_script(text: str) -> tuple[Section, ...]:
    """Split a ready script into sections at lines of dashes.

    A section's first line is its heading when more text follows it and it has at
    most 80 characters. Otherwise the whole section is body text. Sections with no
    text are dropped.
    """
    sections = []
    for chunk in split_script_sections(text):
        lines = chunk.strip("\n").split("\n")
        while lines and not lines[0].strip():
            lines.pop(0)
        if not lines:
            continue
        first = lines[0].strip()
        rest = "\n".join(lines[1:])
        heading = ""
        if rest.strip() and len(first) <= _MAX_HEADING_CHARS:
            heading = first
            body = rest
        else:
            body = "\n".join(lines)
        paragraphs = _paragraphs(body)
        if heading or paragraphs:
            sections.append(Section(heading=heading, paragraphs=paragraphs))
    return tuple(sections)


def _sentences(text: str) -> list[str]:
    flat = " ".join(text.split())
    return [s for s in _SENTENCE_END.split(flat) if s]


def derive_title(text: str) -> str:
    """Make a title from the first sentence of ``text``, cut at a word boundary."""
    sentences = _sentences(text)
    if not sentences:
        return "Untitled video"
    first = sentences[0].rstrip(".!?;:, ")
    if len(first) > _MAX_TITLE_CHARS:
        cut = first[:_MAX_TITLE_CHARS].rsplit(" ", 1)[0]
        first = (cut or first[:_MAX_TITLE_CHARS]).rstrip(".,;: ") + "…"
    return first[:1].upper() + first[1:] if first else "Untitled video"


def _first_chars(sentences: list[str], limit: int) -> list[str]:
    """Keep whole sentences whose text, joined by single spaces, fits ``limit``.

    A first sentence longer than ``limit`` is cut at its last space before it.
    """
    kept: list[str] = []
    used = -1  # no space before the first sentence
    for sentence in sentences:
        if used + 1 + len(sentence) > limit:
            break
        kept.append(sentence)
        used += 1 + len(sentence)
    if not kept:
        head = sentences[0][:limit]
        kept.append(head.rsplit(" ", 1)[0] or head)
    return kept


def sections_from_messages(
    messages: tuple[tuple[str, str], ...], length: int
) -> tuple[tuple[Section, ...], str, tuple[str, ...]]:
    """Build sections from the prompt text alone.

    The last user message is the subject and comes first; earlier user and
    assistant messages follow as context. System messages are instructions for a
    model, so they are not narrated. The sentences are split into at most
    ``length`` consecutive groups; nothing is added to them.

    Returns
    -------
    sections, subject, notes
        The sections, the subject text (for the title), and message sentences.
    """
    subject_index = max(
        (i for i, (role, _) in enumerate(messages) if role == "user"), default=None
    )
    if subject_index is None:
        raise ValueError(
            "messages has no user message: add one with role 'user' that states what "
            "the video is about, or pass a script"
        )
    subject = messages[subject_index][1]
    context = [
        content
        for i, (role, content) in enumerate(messages)
        if i != subject_index and role in ("user", "assistant")
    ]
    sentences = _sentences(subject)
    for content in context:
        sentences.extend(_sentences(content))
    if not sentences:
        raise ValueError(
            "the last user message is empty: write what the video should be about"
        )
    notes = [
        "The script was built locally from the prompt text, with no language model."
    ]
    total_chars = len(" ".join(sentences))
    if total_chars > MAX_SCRIPT_CHARS:
        sentences = _first_chars(sentences, MAX_SCRIPT_CHARS)
        notes.append(
            f"The prompt text has {total_chars} characters; the local backend "
            f"narrated its first {len(' '.join(sentences))}, because a "
            f"script may have at most {MAX_SCRIPT_CHARS}."
        )
    count = max(1, min(length, len(sentences)))
    groups: list[list[str]] = [[] for _ in range(count)]
    # Contiguous groups of nearly equal size keep the sentences in their order.
    for index, sentence in enumerate(sentences):
        groups[index * count // len(sentences)].append(sentence)
    sections = tuple(
        Section(
            heading=f"Part {number} of {count}" if count > 1 else "",
            paragraphs=(" ".join(group),),
            narrate_heading=False,
        )
        for number, group in enumerate(groups, start=1)
    )
    if count < length:
        notes.append(
            f"The prompt had {len(sentences)} sentence(s), so the video has "
            f"{count} section(s) instead of {length}."
        )
    return sections, subject, tuple(notes)


def build_script(request: RenderRequest) -> Script:
    """Return the script for ``request``: its own script, or one built from messages.

    Raises
    ------
    ValueError
        If neither a script with text nor a user message is given.
    """
    notes: tuple[str, ...] = ()
    if request.script is not None and request.script.strip():
        sections = parse_script(request.script)
        title_source = request.script
        if sections:
            first = sections[0]
            title_source = first.heading or " ".join(first.paragraphs)
    elif request.messages:
        sections, title_source, notes = sections_from_messages(
            request.messages, request.length
        )
    else:
        raise ValueError(
            "the request has no text to narrate: pass a non-empty script or messages"
        )
    if not sections:
        raise ValueError(
            "the script has no text outside its separator lines: write at least one "
            "section"
        )
    title = " ".join(request.title.split()) or derive_title(title_source)
    return Script(title=title, sections=sections, notes=notes)
