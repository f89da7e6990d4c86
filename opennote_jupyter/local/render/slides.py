"""Draw slide layouts and caption bands into RGB arrays with matplotlib's Agg."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
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
    """Return the caption band holding ``lines``, centered, as an RGB array."""
    height = layout.HEIGHT - layout.CAPTION_TOP
    with layout.MPL_LOCK:
        figure, canvas = _canvas(layout.WIDTH, height, CAPTION_BACKGROUND)
        prop = layout.font(layout.CAPTION_SIZE)
        step = layout.CAPTION_SIZE * layout.LINE_SPACING
        top = (height - step * len(lines)) / 2
        for number, text in enumerate(lines):
            baseline = top + step * (number + 0.78)
            figure.text(
                layout.WIDTH / 2,
                height - baseline,
                text,
                fontproperties=prop,
                color=CAPTION_COLOR,
                transform=IdentityTransform(),
                va="baseline",
                ha="center",
                parse_math=False,
            )
        return _rgb(canvas)


def empty_caption() -> np.ndarray:
    """Return the caption band with no text."""
    band = np.empty((layout.HEIGHT - layout.CAPTION_TOP, layout.WIDTH, 3), np.uint8)
    band[:] = _hex(CAPTION_BACKGROUND)
    return band
