"""Time a 60-second local render against piping every frame at 30 fps.

Run with ``python benchmarks/render_benchmark.py``. Both renders use the same
script, voice, slides and encoder settings in the same process. The baseline
differs only in converting and writing a frame every 1/30 s instead of one
frame per visual change. Each is run ``--repeat`` times and the fastest counts.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from opennote_jupyter.local.render import RenderRequest, pipeline

PARAGRAPH = (
    "Sound is a wave of pressure that travels through air, water and solids. "
    "Its speed depends on the medium: about $343\\,m/s$ in dry air at room "
    "temperature. "
    "The pitch we hear follows the frequency $f$, and loudness follows the "
    "amplitude of the wave. Sound cannot travel through empty space, "
    "and an echo is reflected sound."
)


# eSpeak NG (en-us, default rate) narrates the title and three sections of
# PARAGRAPH in about 60 s; the measured duration is printed with the times.
SECTIONS = 3
SCRIPT = "\n-----\n".join(
    f"Part {number + 1}\n{PARAGRAPH}" for number in range(SECTIONS)
)


def timed_render(request: RenderRequest, frame_rate: float | None):
    stages: dict[str, float] = {}
    started = time.perf_counter()

    def on_stage(stage: str, percent: float) -> None:
        stages[stage] = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as work_dir:
        result = pipeline.render(
            request, Path(work_dir), on_stage, frame_rate=frame_rate
        )
    total = time.perf_counter() - started
    return total, stages, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant")
    args = parser.parse_args()

    request = RenderRequest(script=SCRIPT, title="Sound")
    # The first render loads the voice, fonts and codecs; it is not counted.
    timed_render(request, None)

    variable = min(
        (timed_render(request, None) for _ in range(args.repeat)),
        key=lambda run: run[0],
    )
    constant = min(
        (timed_render(request, 30.0) for _ in range(args.repeat)),
        key=lambda run: run[0],
    )
    total, stages, result = variable
    print(f"cores: {os.cpu_count()}")
    print(f"video duration: {result.duration:.2f} s")
    previous = 0.0
    for stage, finished in stages.items():
        print(f"  stage {stage:<7} {finished - previous:6.3f} s")
        previous = finished
    per_minute = total / result.duration * 60
    print(f"variable frame rate: {total:.3f} s ({per_minute:.3f} s per 60 s of video)")
    print(f"every frame at 30 fps: {constant[0]:.3f} s")
    print(f"speed-up: {constant[0] / total:.1f}x")


if __name__ == "__main__":
    main()
