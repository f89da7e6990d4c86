"""Render a narrated, captioned mp4 from a create request, on this machine.

The server calls :func:`render_video` and nothing else from this package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# on_stage(stage_name, percent): percent runs from 0 to 100 over the whole render.
StageCallback = Callable[[str, float], None]


@dataclass(frozen=True)
class RenderRequest:
    """The fields of a create request that shape the video."""

    messages: tuple[tuple[str, str], ...] = ()  # (role, content) pairs
    script: str | None = None
    title: str = ""
    length: int = 3


@dataclass(frozen=True)
class RenderResult:
    """Files and metadata of a finished render."""

    video_path: Path
    captions_path: Path
    title: str
    transcript: str
    duration: float
    notes: tuple[str, ...] = field(default=())  # sentences for the result's message


def render_video(
    request: RenderRequest,
    work_dir: Path,
    on_stage: StageCallback | None = None,
) -> RenderResult:
    """Render ``request`` into ``work_dir`` and return the finished files."""
    from opennote_jupyter.local.render.pipeline import render

    return render(request, Path(work_dir), on_stage)
