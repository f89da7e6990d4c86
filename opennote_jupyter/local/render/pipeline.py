"""The render pipeline: script, narration, slides, captions, then the mp4."""

from __future__ import annotations

import bisect
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opennote_jupyter.local.render import (
    RenderRequest,
    RenderResult,
    StageCallback,
    captions,
    encode,
    layout,
    slides,
    voice,
)
from opennote_jupyter.local.render.script import Section, build_script

logger = logging.getLogger(__name__)

# Silence between the title and each section, in seconds.
PART_GAP = 0.4
_ENDS_SENTENCE = re.compile(r"[.!?:;]$")


@dataclass
class _Part:
    """A narrated stretch: the title or one section, with its slides."""

    spoken: str
    token_offsets: list[int]  # where each body token starts in ``spoken``
    slides: list[layout.SlideLayout]
    speech: voice.Speech | None = None
    start: float = 0.0  # seconds from the start of the video


def _section_part(section: Section) -> _Part:
    heading = section.heading
    token_lists = [layout.tokenize(paragraph) for paragraph in section.paragraphs]
    spoken = ""
    if heading and section.narrate_heading:
        spoken = _spoken(layout.tokenize(heading, layout.HEADING_SIZE))
        if not _ENDS_SENTENCE.search(spoken):
            spoken += "."
    offsets = []
    for tokens in token_lists:
        if spoken:
            spoken += "\n"
        for number, token in enumerate(tokens):
            if number > 0 and token.space_before:
                spoken += " "
            offsets.append(len(spoken))
            spoken += token.spoken
    part_slides = layout.layout_section(heading, token_lists, 0)
    return _Part(spoken=spoken, token_offsets=offsets, slides=part_slides)


def _title_part(title: str) -> _Part:
    spoken = _spoken(layout.tokenize(title, layout.TITLE_SIZES[0]))
    return _Part(spoken=spoken, token_offsets=[], slides=layout.layout_title(title))


def _spoken(tokens: list[layout.Token]) -> str:
    """Join the spoken forms of ``tokens``, with spaces where the text had them."""
    words = []
    for number, token in enumerate(tokens):
        if number > 0 and token.space_before:
            words.append(" ")
        words.append(token.spoken)
    return "".join(words)


def _span_times(
    starts: list[int], text_length: int, speech: voice.Speech
) -> list[float]:
    """Return when each span of text starting at ``starts`` begins to be spoken.

    A span gets the time of the first voice word inside it. A span with no word of
    its own (a voice may merge words) takes the time of the word before it.
    """
    word_offsets = [offset for offset, _ in speech.word_times]
    word_seconds = [seconds for _, seconds in speech.word_times]
    times = []
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else text_length
        index = bisect.bisect_left(word_offsets, start)
        if index < len(word_offsets) and word_offsets[index] < end:
            times.append(word_seconds[index])
        elif index > 0:
            times.append(word_seconds[index - 1])
        else:
            times.append(0.0)
    # Monotonic times keep slides and cues in order even if the voice reorders.
    for number in range(1, len(times)):
        times[number] = max(times[number], times[number - 1])
    return times


def _part_cues(part: _Part) -> list[captions.Cue]:
    assert part.speech is not None
    matches = list(re.finditer(r"\S+", part.spoken))
    if not matches:
        return []
    starts = [m.start() for m in matches]
    times = _span_times(starts, len(part.spoken), part.speech)
    duration = part.speech.duration
    words = []
    for number, match in enumerate(matches):
        end = times[number + 1] if number + 1 < len(times) else duration
        words.append((match.group(), part.start + times[number], part.start + end))
    cues = captions.group_words(words)
    # A cue stays up until the next one starts, within its part.
    joined = []
    for number, cue in enumerate(cues):
        end = cues[number + 1].start if number + 1 < len(cues) else cue.end
        joined.append(captions.Cue(cue.start, max(end, cue.start), cue.text))
    return captions.spread_shared_starts(joined)


def _slide_times(part: _Part) -> list[float]:
    assert part.speech is not None
    if not part.token_offsets:
        return [part.start] * len(part.slides)
    times = _span_times(part.token_offsets, len(part.spoken), part.speech)
    result = []
    for number, slide in enumerate(part.slides):
        if number == 0 or slide.first_token is None:
            result.append(part.start)
        else:
            result.append(part.start + times[slide.first_token])
    return result


class _Progress:
    """Forwards stage reports, at most one per stage and whole percent.

    The server stores every report, and the encoder would otherwise send one
    per frame.
    """

    def __init__(self, on_stage: StageCallback | None) -> None:
        self.on_stage = on_stage
        self.last: tuple[str, int] | None = None

    def __call__(self, stage: str, percent: float) -> None:
        percent = round(min(100.0, max(0.0, percent)), 1)
        key = (stage, int(percent))
        if self.on_stage is None or key == self.last:
            return
        self.last = key
        self.on_stage(stage, percent)


def render(
    request: RenderRequest,
    work_dir: Path,
    on_stage: StageCallback | None = None,
    *,
    use_voice: bool | None = None,
    frame_rate: float | None = None,
) -> RenderResult:
    """Render ``request`` into ``work_dir``; see :func:`render_video`.

    Parameters
    ----------
    use_voice
        False makes a silent video timed by reading speed. None reads the
        ``OPENNOTE_JUPYTER_VOICE`` environment variable ("off" disables the voice).
    frame_rate
        None (the default) writes one frame per visual change. A number of frames
        per second instead composes, converts and encodes every frame at that
        constant rate, as piping frames into an encoder does. Benchmarks use it as
        the baseline.

    Raises
    ------
    ValueError
        If the request contains no text to narrate.
    """
    started = time.perf_counter()
    progress = _Progress(on_stage)
    work_dir.mkdir(parents=True, exist_ok=True)

    progress("script", 0)
    script = build_script(request)
    with layout.MPL_LOCK:
        parts = [_title_part(script.title)]
        parts += [_section_part(section) for section in script.sections]
    notes = list(script.notes)
    progress("script", 10)

    progress("voice", 10)
    _narrate(parts, notes, use_voice)
    progress("voice", 30)

    duration = _place_parts(parts)
    sample_rate = parts[0].speech.sample_rate
    audio = _join_audio(parts, sample_rate)

    cues = [cue for part in parts for cue in _part_cues(part)]
    slide_list = [slide for part in parts for slide in part.slides]
    slide_starts = [t for part in parts for t in _slide_times(part)]

    slide_images = []
    for number, slide in enumerate(slide_list):
        slide_images.append(slides.draw_slide(slide))
        progress("slides", 30 + 30 * (number + 1) / len(slide_list))

    frames = _frame_schedule(slide_starts, cues, duration)
    if frame_rate is not None:
        frames = _constant_rate(frames, duration, frame_rate)
    source = _PictureSource(
        slide_images, cues, frames, convert_each=frame_rate is not None
    )
    done = 0

    def on_frame() -> None:
        nonlocal done
        done += 1
        progress("encode", 60 + 38 * done / len(frames))

    transcript = "\n\n".join(part.spoken for part in parts if part.spoken)
    stem = "video"
    video_path = work_dir / f"{stem}.mp4"
    captions_path = work_dir / f"{stem}.vtt"
    _write_atomically(
        video_path,
        lambda temp: encode.encode_mp4(
            temp,
            iter(source),
            round(duration * 1000),
            audio,
            sample_rate,
            on_frame,
        ),
    )
    _write_atomically(captions_path, lambda temp: captions.write_webvtt(temp, cues))
    progress("done", 100)
    logger.info(
        "rendered %.1f s of video in %.2f s (%d slides, %d captions)",
        duration,
        time.perf_counter() - started,
        len(slide_list),
        len(cues),
    )
    return RenderResult(
        video_path=video_path,
        captions_path=captions_path,
        title=script.title,
        transcript=transcript,
        duration=duration,
        notes=tuple(notes),
    )


def _narrate(parts: list[_Part], notes: list[str], use_voice: bool | None) -> None:
    """Give every part its speech, or silence with a note saying why."""
    if use_voice is None:
        use_voice = voice.voice_enabled()
    if not use_voice:
        reason = "The voice is turned off"
    else:
        failure = voice.load_voice()
        if failure is None:
            try:
                for part in parts:
                    part.speech = voice.speak(part.spoken)
                return
            except OSError as exc:
                logger.warning("eSpeak NG failed, making a silent video: %s", exc)
                failure = str(exc)
        reason = f"No voice could be loaded ({failure})"
    notes.append(
        f"{reason}, so the video is silent and its captions are timed by reading speed."
    )
    for part in parts:
        part.speech = voice.silent_speech(part.spoken)


def _place_parts(parts: list[_Part]) -> float:
    """Set each part's start time, with a pause between parts; return the total."""
    clock = 0.0
    for number, part in enumerate(parts):
        if number > 0:
            clock += PART_GAP
        part.start = clock
        clock += part.speech.duration
    return clock


class _PictureSource:
    """Yields ``(pts_ms, yuv420p)`` pictures for the scheduled frames.

    Each slide is converted to yuv420p once and each caption band is drawn once,
    so a frame costs one copy. With ``convert_each`` every frame is composed in
    RGB and converted again, as a pipeline that pipes every frame would do.
    """

    def __init__(
        self,
        slide_images: list[np.ndarray],
        cues: list[captions.Cue],
        frames: list[tuple[int, int, int | None]],
        convert_each: bool = False,
    ) -> None:
        self.slide_images = slide_images
        self.cues = cues
        self.frames = frames
        self.convert_each = convert_each
        self.slide_pictures = [encode.rgb_to_yuv420(image) for image in slide_images]
        empty = slides.empty_caption()
        self.band_background = encode.rgb_to_yuv420(empty)
        full = np.empty_like(empty)
        full[:] = slides.hex_color(slides.CAPTION_COLOR)
        self.band_foreground = encode.rgb_to_yuv420(full)
        self.bands: dict[int | None, np.ndarray] = {None: self.band_background}

    def _band_rgb(self, cue_index: int | None) -> np.ndarray:
        if cue_index is None:
            return slides.empty_caption()
        return slides.draw_caption([self.cues[cue_index].text])

    def _picture(self, slide_index: int, cue_index: int | None) -> np.ndarray:
        if self.convert_each:
            image = self.slide_images[slide_index].copy()
            image[layout.CAPTION_TOP :] = self._band_rgb(cue_index)
            return encode.rgb_to_yuv420(image)
        band = self.bands.get(cue_index)
        if band is None:
            coverage = slides.caption_coverage([self.cues[cue_index].text])
            band = encode.blend_yuv420(
                coverage, self.band_background, self.band_foreground
            )
            self.bands[cue_index] = band
        return encode.replace_rows(
            self.slide_pictures[slide_index], band, layout.CAPTION_TOP
        )

    def __iter__(self):
        for pts, slide_index, cue_index in self.frames:
            yield pts, self._picture(slide_index, cue_index)


def _join_audio(parts: list[_Part], sample_rate: int) -> np.ndarray:
    gap = np.zeros(round(PART_GAP * sample_rate), dtype=np.int16)
    pieces = []
    for number, part in enumerate(parts):
        if number > 0:
            pieces.append(gap)
        pieces.append(part.speech.samples)
    return np.concatenate(pieces)


def _frame_schedule(
    slide_starts: list[float], cues: list[captions.Cue], duration: float
) -> list[tuple[int, int, int | None]]:
    """Return ``(pts_ms, slide_index, cue_index)`` for every visual change."""
    end_ms = round(duration * 1000)
    slide_ms = [min(round(t * 1000), end_ms) for t in slide_starts]
    changes = set(slide_ms)
    for cue in cues:
        changes.add(round(cue.start * 1000))
        changes.add(round(cue.end * 1000))
    frames: list[tuple[int, int, int | None]] = []
    cue_starts = [round(c.start * 1000) for c in cues]
    for pts in sorted(t for t in changes if 0 <= t < end_ms):
        slide_index = max(bisect.bisect_right(slide_ms, pts) - 1, 0)
        cue_index = bisect.bisect_right(cue_starts, pts) - 1
        if cue_index < 0 or round(cues[cue_index].end * 1000) <= pts:
            cue_index = None
        state = (slide_index, cue_index)
        if frames and frames[-1][1:] == state:
            continue
        frames.append((pts, *state))
    if not frames or frames[0][0] != 0:
        frames.insert(0, (0, 0, None))
    return frames


def _constant_rate(
    frames: list[tuple[int, int, int | None]], duration: float, frame_rate: float
) -> list[tuple[int, int, int | None]]:
    """Repeat the scheduled pictures at a constant ``frame_rate``."""
    starts = [pts for pts, _, _ in frames]
    result = []
    count = int(duration * frame_rate)
    for number in range(count):
        pts = round(number * 1000 / frame_rate)
        index = bisect.bisect_right(starts, pts) - 1
        result.append((pts, *frames[index][1:]))
    return result


def _write_atomically(path: Path, write) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it."""
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent
    )
    os.close(handle)
    temp = Path(temp_name)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
