"""Draw slide layouts and caption bands into RGB arrays with matplotlib's Agg."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import get_font
from matplotlib.ft2font import LoadFlags
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
    """Return the slide as a (720, 1280, 3) uint8 array; the caption band is empty."""
    background = DARK_BACKGROUND if slide.dark else LIGHT_BACKGROUND
    with layout.MPL_LOCK:
        figure, canvas = _canvas(layout.WIDTH, layout.HEIGHT, background)
        transform = IdentityTransform()
        for line in slide.lines:
            color = {"title": TITLE_COLOR, "heading": HEADING_COLOR}.get(
                line.role, BODY_COLOR
            )
            prop = layout.font(line.size, line.bold)
            for run in line.runs:
                figure.text(
                    run.x,
                    layout.HEIGHT - line.y,
                    f"${run.text}$" if run.math else run.text,
                    fontproperties=prop,
                    color=color,
                    transform=transform,
                    va="baseline",
                    ha="left",
                    parse_math=run.math,
                )
        if not slide.dark:
            figure.patches.append(_accent_bar(figure))
        image = _rgb(canvas)
    image[layout.CAPTION_TOP :] = _hex(CAPTION_BACKGROUND)
    return image


def _accent_bar(figure: Figure):
    from matplotlib.patches import Rectangle

    return Rectangle(
        (0, layout.HEIGHT - 12),
        layout.WIDTH,
        12,
        transform=IdentityTransform(),
        facecolor=ACCENT_COLOR,
        edgecolor="none",
        figure=figure,
    )


def _hex(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)


def draw_caption(lines: list[str]) -> np.ndarray:
    """Return the caption band holding ``lines``, centered, as an RGB array.

    Captions are plain text, so they are drawn straight from FreeType glyph
    bitmaps, which takes about a tenth of the time of a matplotlib figure.
    """
    height = layout.HEIGHT - layout.CAPTION_TOP
    band = empty_caption().astype(np.float32)
    foreground = _hex(CAPTION_COLOR).astype(np.float32)
    step = layout.CAPTION_SIZE * layout.LINE_SPACING
    top = (height - step * len(lines)) / 2
    with layout.MPL_LOCK:
        face = get_font(layout.REGULAR_FONT)
        for number, text in enumerate(lines):
            face.clear()
            face.set_size(layout.CAPTION_SIZE, 72)
            face.set_text(layout.displayable(text), 0.0, flags=LoadFlags.FORCE_AUTOHINT)
            face.draw_glyphs_to_bitmap(antialiased=True)
            coverage = np.asarray(face.get_image(), dtype=np.float32) / 255.0
            descent = face.get_descent() / 64
            baseline = top + step * (number + 0.78)
            row = round(baseline - (coverage.shape[0] - descent))
            column = round((layout.WIDTH - coverage.shape[1]) / 2)
            _blend(band, coverage, row, column, foreground)
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
    band[:] = _hex(CAPTION_BACKGROUND)
    return band
