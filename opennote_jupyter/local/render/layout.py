"""Place words on 1280x720 slides, wrapped by their measured pixel width.

Widths come from matplotlib's Agg text measurement with the DejaVu fonts that ship
in the matplotlib wheel, at 72 dpi so one point is one pixel. The drawing code in
``slides`` uses the same fonts and sizes, so a measured line is the drawn line.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from dataclasses import dataclass

import matplotlib
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.font_manager import FontProperties
from matplotlib.ft2font import FT2Font

WIDTH = 1280
HEIGHT = 720
MARGIN_X = 80
TOP = 56
# The caption band fills the bottom of the frame, and slide text stays above it.
CAPTION_TOP = 592
BODY_BOTTOM = 572

TITLE_SIZES = (60, 50, 40, 32)
HEADING_SIZE = 44
BODY_SIZE = 30
CAPTION_SIZE = 30
LINE_SPACING = 1.38
PARAGRAPH_GAP = 0.45  # in body lines

MAX_LINE_WIDTH = WIDTH - 2 * MARGIN_X

# matplotlib's text engine keeps caches shared by all threads, so only one render
# measures and draws at a time.
MPL_LOCK = threading.RLock()

# Inline math follows pandoc's rule for TeX dollars: the opening "$" has a
# non-space character right after it, the closing "$" has one right before it and
# no digit after it. So prices such as "$5 and $6" and "$HOME" stay plain text.
_MATH = re.compile(r"\$(?=\S)([^$\n]*?\S)\$(?!\d)")
_FONT_DIR = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
REGULAR_FONT = os.path.join(_FONT_DIR, "DejaVuSans.ttf")
BOLD_FONT = os.path.join(_FONT_DIR, "DejaVuSans-Bold.ttf")
# Drawn in place of characters that DejaVu Sans has no glyph for.
MISSING_GLYPH = "\u25a1"


@functools.cache
def font(size: float, bold: bool = False) -> FontProperties:
    """Return DejaVu Sans (bold or regular) at ``size`` pixels."""
    return FontProperties(
        fname=BOLD_FONT if bold else REGULAR_FONT,
        size=size,
        math_fontfamily="dejavusans",
    )


@functools.lru_cache(maxsize=1)
def _charmap() -> frozenset[int]:
    # Only characters both weights can draw, so a heading never shows a gap.
    regular = FT2Font(REGULAR_FONT).get_charmap()
    bold = FT2Font(BOLD_FONT).get_charmap()
    return frozenset(regular) & frozenset(bold)


def displayable(text: str) -> str:
    """Replace characters DejaVu Sans cannot draw, and control characters."""
    charmap = _charmap()
    return "".join(
        ch if ord(ch) in charmap and ch.isprintable() else MISSING_GLYPH for ch in text
    )


_local = threading.local()


def _renderer() -> RendererAgg:
    renderer = getattr(_local, "renderer", None)
    if renderer is None:
        renderer = _local.renderer = RendererAgg(WIDTH, HEIGHT, 72)
    return renderer


@functools.lru_cache(maxsize=65536)
def measure(
    text: str, size: float, bold: bool, math: bool
) -> tuple[float, float, float]:
    """Return (width, height, descent) in pixels of ``text`` as it will be drawn.

    Raises
    ------
    ValueError
        If ``math`` is true and mathtext cannot parse ``text``.
    """
    with MPL_LOCK:
        shown = f"${text}$" if math else text
        return _renderer().get_text_width_height_descent(
            shown, font(size, bold), ismath=math
        )


@dataclass(frozen=True)
class Token:
    """One word or inline formula of the script, shown and spoken."""

    text: str  # displayable text, or mathtext without the dollar signs
    spoken: str
    math: bool
    space_before: bool


@dataclass(frozen=True)
class Run:
    """Text drawn in one call: plain words or one formula, starting at ``x``."""

    text: str
    math: bool
    x: float
    width: float


@dataclass(frozen=True)
class Line:
    """A line of runs sharing a baseline ``y`` (pixels from the top)."""

    runs: tuple[Run, ...]
    y: float
    size: float
    bold: bool
    role: str  # "title", "heading" or "body"
    tokens: tuple[int, ...]  # indices of the tokens this line shows


@dataclass(frozen=True)
class SlideLayout:
    """One slide: its lines and the first token it shows (None for none)."""

    lines: tuple[Line, ...]
    first_token: int | None
    dark: bool = False


_MATH_WORDS = {
    r"\frac": " over ",
    r"\cdot": " times ",
    r"\times": " times ",
    r"\sqrt": " square root of ",
    r"\sum": " sum ",
    r"\int": " integral ",
    r"\infty": " infinity ",
    r"\leq": " less than or equal to ",
    r"\geq": " greater than or equal to ",
    r"\le": " less than or equal to ",
    r"\ge": " greater than or equal to ",
    r"\neq": " not equal to ",
    r"\approx": " approximately ",
    r"\to": " to ",
    r"\rightarrow": " to ",
    r"\pm": " plus or minus ",
}
_MATH_SYMBOLS = {
    "=": " equals ",
    "+": " plus ",
    "-": " minus ",
    "<": " less than ",
    ">": " greater than ",
    "/": " over ",
    "^2": " squared ",
    "^3": " cubed ",
    "^": " to the power ",
    "_": " sub ",
}


def speak_math(latex: str) -> str:
    """Spell a mathtext formula in words a voice can read."""
    # Adjacent letters in a formula are separate symbols: "mc" is "m c".
    text = re.sub(
        r"\\[A-Za-z]+|[A-Za-z]+",
        lambda m: m.group() if m.group().startswith("\\") else " ".join(m.group()),
        latex,
    )
    text = re.sub(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}", r" \1 over \2 ", text)
    for command, words in sorted(_MATH_WORDS.items(), key=lambda kv: -len(kv[0])):
        text = re.sub(re.escape(command) + r"(?![A-Za-z])", words, text)
    text = re.sub(r"\\([A-Za-z]+)", r" \1 ", text)
    text = re.sub(r"\^\{2\}", "^2", text)
    text = re.sub(r"\^\{3\}", "^3", text)
    for symbol, words in _MATH_SYMBOLS.items():
        text = text.replace(symbol, words)
    text = re.sub(r"[{}\\$]", " ", text)
    return " ".join(text.split()) or "formula"


# Non-ASCII characters that mathtext's DejaVu fonts draw: Latin-1, Greek,
# arrows and mathematical operators. Others (emoji, CJK) stay literal text,
# because mathtext would log a warning and draw a dummy symbol.
_MATH_RANGES = ((0x20, 0x7E), (0xA0, 0xFF), (0x391, 0x3C9), (0x2190, 0x22FF))


def _math_fits(latex: str, size: float) -> bool:
    for ch in latex:
        if not any(low <= ord(ch) <= high for low, high in _MATH_RANGES):
            return False
    try:
        width, height, _ = measure(latex, size, True, True)
    except (ValueError, RuntimeError):
        # mathtext raises ValueError for a parse error. On either error the text
        # stays literal.
        return False
    return width <= MAX_LINE_WIDTH and height <= (BODY_BOTTOM - TOP) / 3


def tokenize(paragraph: str, size: float = BODY_SIZE) -> list[Token]:
    """Split a paragraph into words and inline ``$...$`` formulas.

    A formula that mathtext cannot parse, or that would not fit on a line at
    ``size`` pixels, stays literal text, dollar signs included.
    """
    tokens: list[Token] = []
    position = 0
    pending_space = False

    def add_words(text: str) -> None:
        nonlocal pending_space
        if text[:1].isspace():
            pending_space = True
        for index, word in enumerate(text.split()):
            space = pending_space or index > 0
            tokens.append(Token(displayable(word), word, False, space and bool(tokens)))
            pending_space = False
        if text[-1:].isspace():
            pending_space = True

    for match in _MATH.finditer(paragraph):
        add_words(paragraph[position : match.start()])
        latex = match.group(1)
        space = pending_space and bool(tokens)
        if latex.strip() and _math_fits(latex, size):
            tokens.append(Token(latex, speak_math(latex), True, space))
            pending_space = False
        else:
            add_words((" " if space else "") + match.group(0))
        position = match.end()
    add_words(paragraph[position:])
    return tokens


def split_word(text: str, size: float, bold: bool, max_width: float) -> list[str]:
    """Cut a word wider than ``max_width`` into pieces that each fit."""
    pieces = []
    rest = text
    while rest:
        low, high = 1, len(rest)
        while low < high:
            middle = (low + high + 1) // 2
            if measure(rest[:middle], size, bold, False)[0] <= max_width:
                low = middle
            else:
                high = middle - 1
        pieces.append(rest[:low])
        rest = rest[low:]
    return pieces


def _space_width(size: float, bold: bool) -> float:
    return measure("x x", size, bold, False)[0] - measure("xx", size, bold, False)[0]


@dataclass
class _LineDraft:
    runs: list[Run]
    tokens: list[int]
    width: float = 0.0
    height: float = 0.0  # tallest formula, pixels above the baseline
    depth: float = 0.0  # deepest formula, pixels below the baseline


def wrap(
    tokens: list[Token],
    first_index: int,
    size: float,
    bold: bool,
    max_width: float = MAX_LINE_WIDTH,
) -> list[_LineDraft]:
    """Greedily fill lines no wider than ``max_width`` pixels.

    Plain words that share a line are joined into one run and measured together,
    so kerning is counted exactly as drawn.
    """
    space = _space_width(size, bold)
    lines: list[_LineDraft] = []
    line = _LineDraft(runs=[], tokens=[])

    def flush() -> None:
        nonlocal line
        if line.runs:
            lines.append(line)
        line = _LineDraft(runs=[], tokens=[])

    for offset, token in enumerate(tokens):
        index = first_index + offset
        if token.math:
            width, height, depth = measure(token.text, size, bold, True)
            gap = space if token.space_before and line.runs else 0.0
            if line.runs and line.width + gap + width > max_width:
                flush()
                gap = 0.0
            x = MARGIN_X + line.width + gap
            line.runs.append(Run(token.text, True, x, width))
            line.tokens.append(index)
            line.width += gap + width
            line.height = max(line.height, height - depth)
            line.depth = max(line.depth, depth)
            continue
        pieces = [token.text]
        if measure(token.text, size, bold, False)[0] > max_width:
            pieces = split_word(token.text, size, bold, max_width)
        for number, piece in enumerate(pieces):
            joined = token.space_before and number == 0
            last = line.runs[-1] if line.runs else None
            if last is not None and not last.math:
                candidate = last.text + (" " if joined else "") + piece
                width = measure(candidate, size, bold, False)[0]
                if last.x - MARGIN_X + width <= max_width:
                    line.runs[-1] = Run(candidate, False, last.x, width)
                    line.width = last.x - MARGIN_X + width
                    if not line.tokens or line.tokens[-1] != index:
                        line.tokens.append(index)
                    continue
            elif last is not None:
                gap = space if joined else 0.0
                width = measure(piece, size, bold, False)[0]
                if line.width + gap + width <= max_width:
                    x = MARGIN_X + line.width + gap
                    line.runs.append(Run(piece, False, x, width))
                    line.width += gap + width
                    if line.tokens[-1] != index:
                        line.tokens.append(index)
                    continue
            flush()
            width = measure(piece, size, bold, False)[0]
            line.runs.append(Run(piece, False, MARGIN_X, width))
            line.tokens.append(index)
            line.width = width
    flush()
    return lines


def _line_advance(draft: _LineDraft, size: float) -> tuple[float, float]:
    """Return (space above the baseline, space below it) for a line."""
    above = max(size * LINE_SPACING * 0.78, draft.height + size * 0.3)
    below = max(size * LINE_SPACING * 0.22, draft.depth + size * 0.2)
    return above, below


def _center(draft: _LineDraft) -> list[Run]:
    shift = (MAX_LINE_WIDTH - draft.width) / 2
    return [Run(r.text, r.math, r.x + shift, r.width) for r in draft.runs]


def layout_title(title: str) -> list[SlideLayout]:
    """Lay out the title slide, shrinking the font for long titles.

    A title too long for one slide even at the smallest size continues on more
    title slides.
    """
    tokens = tokenize(title, TITLE_SIZES[0]) or [
        Token("Untitled video", "", False, False)
    ]
    area = BODY_BOTTOM - TOP
    for size in TITLE_SIZES:
        drafts = wrap(tokens, 0, size, True)
        heights = [sum(_line_advance(d, size)) for d in drafts]
        if sum(heights) <= area or size == TITLE_SIZES[-1]:
            break
    slides: list[SlideLayout] = []
    page: list[tuple[_LineDraft, float, float]] = []
    used = 0.0
    for draft in drafts:
        above, below = _line_advance(draft, size)
        if page and used + above + below > area:
            slides.append(_title_page(page, used, size))
            page, used = [], 0.0
        page.append((draft, above, below))
        used += above + below
    slides.append(_title_page(page, used, size))
    return slides


def _title_page(
    page: list[tuple[_LineDraft, float, float]], used: float, size: float
) -> SlideLayout:
    y = TOP + (BODY_BOTTOM - TOP - used) / 2
    lines = []
    for draft, above, below in page:
        y += above
        lines.append(
            Line(tuple(_center(draft)), y, size, True, "title", tuple(draft.tokens))
        )
        y += below
    return SlideLayout(tuple(lines), None, dark=True)


def layout_section(
    heading: str, paragraphs: list[list[Token]], first_index: int
) -> list[SlideLayout]:
    """Lay out a section on as many slides as its text needs.

    ``paragraphs`` contains the body tokens, numbered from ``first_index`` in
    order. Every slide after the first repeats the heading.
    """
    heading_tokens = tokenize(heading, HEADING_SIZE)
    heading_drafts = wrap(heading_tokens, -1, HEADING_SIZE, True) if heading else []
    slides: list[SlideLayout] = []
    lines: list[Line] = []
    first_token: int | None = None

    def start_page() -> float:
        nonlocal lines, first_token
        lines = []
        first_token = None
        y = TOP
        for draft in heading_drafts:
            above, below = _line_advance(draft, HEADING_SIZE)
            y += above
            lines.append(Line(tuple(draft.runs), y, HEADING_SIZE, True, "heading", ()))
            y += below
        return y + (BODY_SIZE * 0.6 if heading_drafts else 0.0)

    y = start_page()
    body_top = y
    index = first_index
    for number, tokens in enumerate(paragraphs):
        drafts = wrap(tokens, index, BODY_SIZE, False)
        index += len(tokens)
        if number > 0 and y > body_top:
            y += BODY_SIZE * LINE_SPACING * PARAGRAPH_GAP
        for draft in drafts:
            above, below = _line_advance(draft, BODY_SIZE)
            if y + above + below > BODY_BOTTOM and y > body_top:
                slides.append(SlideLayout(tuple(lines), first_token))
                y = start_page()
            y += above
            lines.append(
                Line(
                    tuple(draft.runs), y, BODY_SIZE, False, "body", tuple(draft.tokens)
                )
            )
            if first_token is None:
                first_token = draft.tokens[0]
            y += below
    if lines:
        slides.append(SlideLayout(tuple(lines), first_token))
    return slides
