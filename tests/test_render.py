"""End-to-end renders decoded with PyAV."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opennote_jupyter.local.render import RenderRequest, pipeline, render_video, slides
from opennote_jupyter.local.render.layout import CAPTION_TOP
from opennote_jupyter.local.render.script import parse_script
from opennote_jupyter.local.render.voice import VOICE_ENV

SCRIPT = """Energy and mass
Energy and mass are related by $E=mc^2$, where $c$ is the speed of light.
The relation explains why nuclear reactions release so much energy.
-----
Momentum
Momentum $p = mv$ is conserved in a closed system. Forces change it over time.

A second paragraph with $\\frac{a}{b}$ and a broken $ sign.
"""

_CUE_TIME = re.compile(
    r"^(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)$"
)


def _seconds(parts: tuple[str, ...]) -> float:
    hours, minutes, seconds, millis = (int(p) for p in parts)
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def read_cues(path: Path) -> list[tuple[float, float, str]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "WEBVTT"
    cues = []
    for number, line in enumerate(lines):
        match = _CUE_TIME.match(line)
        if match:
            groups = match.groups()
            start, end = _seconds(groups[:4]), _seconds(groups[4:])
            cues.append((start, end, lines[number + 1]))
    return cues


def check_video(path: Path, duration: float) -> None:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert video.codec_context.name == "h264"
        assert video.codec_context.profile == "High"
        assert video.codec_context.pix_fmt == "yuv420p"
        assert (video.codec_context.width, video.codec_context.height) == (1280, 720)
        assert int(video.codec_context.color_primaries) == 1
        assert int(video.codec_context.color_trc) == 1
        assert int(video.codec_context.colorspace) == 1
        assert audio.codec_context.name == "aac"
        assert container.duration / 1e6 == pytest.approx(duration, abs=0.1)
        assert float(video.duration * video.time_base) == pytest.approx(
            duration, abs=0.1
        )
        assert float(audio.duration * audio.time_base) == pytest.approx(
            duration, abs=0.1
        )
        frames = list(container.decode(video=0))
    assert frames
    assert all(frame.format.name == "yuv420p" for frame in frames)
    assert frames[-1].time <= duration


def check_captions(path: Path, duration: float) -> list[tuple[float, float, str]]:
    cues = read_cues(path)
    assert cues
    previous_end = 0.0
    for start, end, text in cues:
        assert text.strip()
        assert start >= previous_end - 1e-9
        assert start < end <= duration + 0.001
        previous_end = end
    return cues


def test_render_script_output(tmp_path):
    stages = []
    result = render_video(
        RenderRequest(script=SCRIPT, title="Physics basics"),
        tmp_path,
        lambda stage, percent: stages.append((stage, percent)),
    )
    check_video(result.video_path, result.duration)
    cues = check_captions(result.captions_path, result.duration)
    assert result.title == "Physics basics"
    assert result.transcript.startswith("Physics basics\n\nEnergy and mass.")
    assert "m c squared" in result.transcript
    spoken_words = result.transcript.split()
    caption_words = " ".join(text for _, _, text in cues).split()
    assert caption_words == spoken_words
    percents = [percent for _, percent in stages]
    assert percents == sorted(percents)
    assert percents[-1] == 100
    assert len(stages) == len(set(stages))
    assert len(stages) <= 110
    assert {"script", "voice", "slides", "encode"} <= {stage for stage, _ in stages}
    assert result.notes == ()


def test_render_mp4_faststart(tmp_path):
    result = render_video(RenderRequest(script="One short sentence."), tmp_path)
    check_video(result.video_path, result.duration)
    data = result.video_path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    assert result.title == "One short sentence"


def test_render_messages_builds_script_locally(tmp_path):
    messages = (
        ("system", "You are a teacher."),
        ("user", "Plants store energy in sugar."),
        ("assistant", "Sure."),
        ("user", "Explain photosynthesis. Light drives it. Chlorophyll absorbs red."),
    )
    result = render_video(RenderRequest(messages=messages, length=3), tmp_path)
    check_video(result.video_path, result.duration)
    assert result.title == "Explain photosynthesis"
    assert any("built locally from the prompt text" in note for note in result.notes)
    assert "You are a teacher" not in result.transcript
    assert "Part 1 of" not in result.transcript
    assert "Plants store energy in sugar." in result.transcript
    assert result.transcript.index("Explain") < result.transcript.index("Plants")


def test_render_script_of_6000_chars(tmp_path):
    sentence = "Waves carry energy through a medium without moving it along. "
    body = (sentence * 200)[:5900]
    script = "Waves\n" + body + "\n-----\n" + "x" * (6000 - len(body) - 13)
    assert len(script) == 6000
    result = render_video(RenderRequest(script=script), tmp_path)
    check_video(result.video_path, result.duration)
    check_captions(result.captions_path, result.duration)


def test_render_silent_by_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(VOICE_ENV, "off")
    result = render_video(RenderRequest(script=SCRIPT), tmp_path)
    check_video(result.video_path, result.duration)
    check_captions(result.captions_path, result.duration)
    assert any("silent" in note for note in result.notes)
    with av.open(str(result.video_path)) as container:
        peak = max(abs(frame.to_ndarray()).max() for frame in container.decode(audio=0))
    assert peak < 1e-3


def test_render_failure_leaves_no_mp4(tmp_path, monkeypatch):
    # A real encoder does not fail on demand, so caption drawing is made to fail
    # in the middle of encoding, after the mp4 has been opened.
    calls = []
    draw = slides.caption_coverage

    def failing_caption(lines):
        calls.append(lines)
        if len(calls) > 2:
            raise RuntimeError("drawing failed")
        return draw(lines)

    monkeypatch.setattr(slides, "caption_coverage", failing_caption)
    with pytest.raises(RuntimeError, match="drawing failed"):
        pipeline.render(RenderRequest(script=SCRIPT), tmp_path, use_voice=False)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []


def test_render_empty_script_rejected(tmp_path):
    with pytest.raises(ValueError, match="no text"):
        render_video(RenderRequest(script="-----\n\n-----\n"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def _frame_at(frames, seconds: float):
    shown = [frame for frame in frames if frame.time <= seconds + 1e-6]
    return shown[-1]


def test_render_burns_captions_in(tmp_path):
    result = render_video(RenderRequest(script=SCRIPT), tmp_path)
    cues = read_cues(result.captions_path)
    with av.open(str(result.video_path)) as container:
        frames = list(container.decode(video=0))
    for start, end, _ in cues[:6]:
        image = _frame_at(frames, (start + end) / 2).to_ndarray(format="rgb24")
        band = image[CAPTION_TOP + 8 : -8]
        assert band.max() > 200
    # Between the title and the first section nothing is spoken.
    gap = (cues[0][1] + cues[1][0]) / 2
    assert cues[1][0] - cues[0][1] >= pipeline.PART_GAP - 0.01
    image = _frame_at(frames, gap).to_ndarray(format="rgb24")
    assert image[CAPTION_TOP + 8 : -8].max() < 60


def test_render_two_threads_at_once(tmp_path):
    results = {}
    errors = []

    def run(name: str) -> None:
        try:
            results[name] = render_video(
                RenderRequest(script=f"Thread {name}\nA short script for {name}."),
                tmp_path / name,
            )
        except Exception as exc:  # reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    for name in ("a", "b"):
        check_video(results[name].video_path, results[name].duration)
        assert f"script for {name}" in results[name].transcript


script_text = st.lists(
    st.one_of(
        st.text(min_size=0, max_size=40),
        st.sampled_from(["-----", "", "$x^2$ and $", "W" * 150, "$\\frac{1}{$"]),
    ),
    min_size=1,
    max_size=12,
).map("\n".join)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(script=script_text)
def test_render_random_scripts(tmp_path, script):
    work_dir = Path(tempfile.mkdtemp(dir=tmp_path))
    request = RenderRequest(script=script, title="Random")
    if not parse_script(script):
        with pytest.raises(ValueError, match="no text"):
            render_video(request, work_dir)
        return
    result = render_video(request, work_dir)
    check_video(result.video_path, result.duration)
    check_captions(result.captions_path, result.duration)


def test_render_speaks_math_in_title_and_heading(tmp_path):
    request = RenderRequest(
        script="Why $E=mc^2$ matters\nIt links mass and energy.",
        title="The $\\alpha$ particle",
    )
    result = pipeline.render(request, tmp_path, use_voice=False)
    check_video(result.video_path, result.duration)
    assert result.title == "The $\\alpha$ particle"
    assert result.transcript.startswith("The alpha particle\n\nWhy E equals m c")
    assert "$" not in result.transcript


_MISSING_DATA_RENDER = """
import sys, tempfile
from pathlib import Path
import espeakng_loader
espeakng_loader.get_data_path = lambda: sys.argv[1]
from opennote_jupyter.local.render import RenderRequest, pipeline
result = pipeline.render(RenderRequest(script="Hello there."), Path(sys.argv[2]))
print(result.notes[0])
print(result.duration)
print(result.video_path)
"""


def test_render_silent_without_voice_data(tmp_path):
    # eSpeak NG keeps process-wide state, so the missing-data case runs in a child
    # process where the loader points at a directory that does not exist.
    missing = tmp_path / "no-espeak-ng-data"
    completed = subprocess.run(
        [sys.executable, "-c", _MISSING_DATA_RENDER, str(missing), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    note, duration, video_path = completed.stdout.strip().split("\n")
    assert note.startswith("No voice could be loaded (espeak_Initialize returned")
    assert "silent" in note
    check_video(Path(video_path), float(duration))
