"""Draw slide layouts and caption bands into RGB arrays.

Text comes from matplotlib's FreeType bindings and formulas from its Agg mathtext,
both with the DejaVu fonts of the matplotlib wheel.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg, get_hinting_flag
from matplotlib.figure import Figure
from matplotlib.font_manager import get_font
from matplotlib.transforms import IdentityTransform

from opennote_jupyter.local.render import layout

# Colors with at least 7:1 contrast against their background (WCAG 2 ratio).
LIGHT_BACKGROUND = "#ffffff"
BODY_COLOR = "#1b1b1b"
HEADING_COLOR = "#0b3d91"
DARK_BACKGROUND = "#0b2545"
TITLE_COLOR = "#ffffff"
CAPTION_BACKGROUND = "#111111"
CAPTION_COLOR = "#ffffff"
ACCENT_COLOR = "#0b3d91"


def _canvas(width: int, height: int, background: str) -> tuple[Figure, FigureCanvasAgg]:
    figure = Figure(figsize=(width / 72, height / 72), dpi=72, facecolor=background)
    return figure, FigureCanvasAgg(figure)


def _rgb(canvas: FigureCanvasAgg) -> np.ndarray:
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def draw_slide(slide: layout.SlideLayout) -> np.ndarray:
    """Return the slide as a (720, 1280, 3) uint8 array; the caption band is empty.

    Plain runs are drawn from FreeType glyph bitmaps, the same layout that
    :func:`layout.measure` measures. Only a slide with formulas builds a
    matplotlib figure, and the figure draws just the formulas.
    """
    background = DARK_BACKGROUND if slide.dark else LIGHT_BACKGROUND
    with layout.MPL_LOCK:
        if any(run.math for line in slide.lines for run in line.runs):
            image = _draw_math_runs(slide, background).astype(np.float32)
        else:
            image = np.empty((layout.HEIGHT, layout.WIDTH, 3), np.float32)
            image[:] = hex_color(background)
        if not slide.dark:
            image[:12] = hex_color(ACCENT_COLOR)
        for line in slide.lines:
            color = hex_color(_line_color(line)).astype(np.float32)
            for run in line.runs:
                if not run.math:
                    _draw_text(
                        image, run.text, line.size, line.bold, run.x, line.y, color
                    )
    image[layout.CAPTION_TOP :] = hex_color(CAPTION_BACKGROUND)
    return image.round().astype(np.uint8)


def _line_color(line: layout.Line) -> str:
    return {"title": TITLE_COLOR, "heading": HEADING_COLOR}.get(line.role, BODY_COLOR)


def _draw_math_runs(slide: layout.SlideLayout, background: str) -> np.ndarray:
    figure, canvas = _canvas(layout.WIDTH, layout.HEIGHT, background)
    for line in slide.lines:
        for run in line.runs:
            if run.math:
                figure.text(
                    run.x,
                    layout.HEIGHT - line.y,
                    f"${run.text}$",
                    fontproperties=layout.font(line.size, line.bold),
                    color=_line_color(line),
                    transform=IdentityTransform(),
                    va="baseline",
                    ha="left",
                )
    return _rgb(canvas)


def _draw_text(
    image: np.ndarray,
    text: str,
    size: float,
    bold: bool,
    x: float,
    baseline: float,
    color: np.ndarray,
) -> None:
    """Blend ``text`` into ``image`` with its left end at ``x`` on ``baseline``."""
    face = get_font(layout.BOLD_FONT if bold else layout.REGULAR_FONT)
    face.clear()
    face.set_size(size, 72)
    face.set_text(text, 0.0, flags=get_hinting_flag())
    face.draw_glyphs_to_bitmap(antialiased=True)
    coverage = np.asarray(face.get_image(), dtype=np.float32) / 255.0
    descent = face.get_descent() / 64
    offset_x = face.get_bitmap_offset()[0] / 64
    row = round(baseline + descent - coverage.shape[0])
    column = round(x + offset_x)
    _blend(image, coverage, row, column, color)


def hex_color(color: str) -> np.ndarray:
    """Convert ``"#rrggbb"`` to an RGB uint8 array."""
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)


def caption_coverage(lines: list[str]) -> np.ndarray:
    """Return the caption band's text coverage (0 to 1) for ``lines``, centered.

    Captions are plain text, so they are drawn straight from FreeType glyph
    bitmaps, which takes about a tenth of the time of a matplotlib figure.
    """
    height = layout.HEIGHT - layout.CAPTION_TOP
    coverage = np.zeros((height, layout.WIDTH, 1), np.float32)
    step = layout.CAPTION_SIZE * layout.LINE_SPACING
    top = (height - step * len(lines)) / 2
    with layout.MPL_LOCK:
        face = get_font(layout.REGULAR_FONT)
        for number, text in enumerate(lines):
            face.clear()
            face.set_size(layout.CAPTION_SIZE, 72)
            face.set_text(layout.displayable(text), 0.0, flags=get_hinting_flag())
            face.draw_glyphs_to_bitmap(antialiased=True)
            glyphs = np.asarray(face.get_image(), dtype=np.float32) / 255.0
            descent = face.get_descent() / 64
            baseline = top + step * (number + 0.78)
            row = round(baseline - (glyphs.shape[0] - descent))
            column = round((layout.WIDTH - glyphs.shape[1]) / 2)
            _blend(coverage, glyphs, row, column, np.ones(1, np.float32))
    return coverage[:, :, 0]


def draw_caption(lines: list[str]) -> np.ndarray:
    """Return the caption band holding ``lines``, centered, as an RGB array."""
    alpha = caption_coverage(lines)[:, :, None]
    background = hex_color(CAPTION_BACKGROUND).astype(np.float32)
    foreground = hex_color(CAPTION_COLOR).astype(np.float32)
    band = background * (1.0 - alpha) + foreground * alpha
    return band.round().astype(np.uint8)


def _blend(
    band: np.ndarray, coverage: np.ndarray, row: int, column: int, color: np.ndarray
) -> None:
    """Paint ``color`` into ``band`` with ``coverage`` as alpha, clipped to the band."""
    rows, columns = coverage.shape
    top, left = max(row, 0), max(column, 0)
    bottom = min(row + rows, band.shape[0])
    right = min(column + columns, band.shape[1])
    if bottom <= top or right <= left:
        return
    alpha = coverage[top - row : bottom - row, left - column : right - column, None]
    region = band[top:bottom, left:right]
    region[:] = region * (1.0 - alpha) + color * alpha


def empty_caption() -> np.ndarray:
    """Return the caption band with no text."""
    band = np.empty((layout.HEIGHT - layout.CAPTION_TOP, layout.WIDTH, 3), np.uint8)
    band[:] = hex_color(CAPTION_BACKGROUND)
    return band
