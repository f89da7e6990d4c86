"""Write still frames and narration into an mp4 with PyAV (libx264 and AAC).

Frames arrive as packed yuv420p arrays (see :func:`rgb_to_yuv420`), so a slide is
converted from RGB once and each caption change only swaps the rows of the band.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

# Frame times are whole milliseconds, fine enough for caption changes.
VIDEO_TIME_BASE = Fraction(1, 1000)
AAC_FRAME_SAMPLES = 1024
NOMINAL_FPS = 30
WIDTH = 1280
HEIGHT = 720

_reformatters = threading.local()


def rgb_to_yuv420(rgb: np.ndarray) -> np.ndarray:
    """Convert an (h, w, 3) RGB image to packed yuv420p with BT.709 limited range.

    The result has ``h * 3 // 2`` rows of ``w`` bytes: the Y plane, then the U and
    V planes with two chroma rows packed in each row, as PyAV's ``yuv420p``
    ``from_ndarray`` expects.
    """
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    # A reformatter keeps its swscale context between calls with one size, which
    # makes converting a caption band about three times faster.
    reformatters = _reformatters.__dict__.setdefault("by_shape", {})
    reformatter = reformatters.setdefault(rgb.shape, VideoReformatter())
    converted = reformatter.reformat(frame, format="yuv420p", dst_colorspace="ITU709")
    return converted.to_ndarray()


def replace_rows(picture: np.ndarray, band: np.ndarray, top: int) -> np.ndarray:
    """Return a copy of packed yuv420p ``picture`` with ``band`` from row ``top``.

    ``top`` and the band's height must be multiples of 4, so chroma rows of the
    picture and of the band line up.
    """
    height = picture.shape[0] * 2 // 3
    band_height = band.shape[0] * 2 // 3
    if top % 4 or band_height % 4 or top + band_height != height:
        raise ValueError(
            f"band of {band_height} rows at row {top} does not fit a {height}-row "
            "picture on chroma row pairs"
        )
    quarter, band_quarter = height // 4, band_height // 4
    result = picture.copy()
    result[top:height] = band[:band_height]
    u_start = height + top // 4
    result[u_start : height + quarter] = band[band_height : band_height + band_quarter]
    v_start = height + quarter + top // 4
    result[v_start:] = band[band_height + band_quarter :]
    return result


def blend_yuv420(
    coverage: np.ndarray, background: np.ndarray, foreground: np.ndarray
) -> np.ndarray:
    """Blend two solid packed yuv420p pictures with ``coverage`` as alpha.

    RGB to YUV conversion is affine, so blending in YUV gives the same picture
    as blending in RGB and converting, without a swscale pass per caption.
    ``coverage`` is (h, w) with even h and w; chroma uses its 2x2 means.
    """
    height, width = coverage.shape
    luma = (
        background[:height]
        + (foreground[:height].astype(np.float32) - background[:height]) * coverage
    )
    half = coverage.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
    packed_half = half.reshape(height // 4, width)
    chroma = []
    for plane in (0, 1):
        start = height + plane * height // 4
        rows = slice(start, start + height // 4)
        low = background[rows].astype(np.float32)
        chroma.append(low + (foreground[rows] - low) * packed_half)
    result = np.concatenate([luma, *chroma])
    return np.clip(result.round(), 0, 255).astype(np.uint8)


def encode_mp4(
    path: Path,
    frames: Iterable[tuple[int, np.ndarray]],
    end_ms: int,
    samples: np.ndarray,
    sample_rate: int,
    on_frame: Callable[[], None] | None = None,
) -> None:
    """Encode ``frames`` and ``samples`` into an H.264 High / AAC mp4 at ``path``.

    Parameters
    ----------
    path
        The file to write; it is overwritten.
    frames
        ``(pts_ms, yuv420p)`` pairs in increasing time. Each frame stays on screen
        until the next one, so the video has a variable frame rate.
    end_ms
        When the last frame leaves the screen: the video's duration.
    samples
        Mono int16 narration; its length sets the audio duration.
    sample_rate
        Samples per second of ``samples``.
    on_frame
        Called after each frame of ``frames`` is encoded.
    """
    with av.open(
        str(path), mode="w", format="mp4", options={"movflags": "+faststart"}
    ) as container:
        video = _add_video_stream(container)
        audio = _add_audio_stream(container, sample_rate)

        # FFmpeg's AAC encoder runs outside the GIL, so it overlaps with drawing
        # and video encoding on a second core. Packets are muxed afterwards.
        audio_packets: list[av.Packet] = []
        audio_errors: list[BaseException] = []
        worker = threading.Thread(
            target=_encode_audio,
            args=(audio, samples, sample_rate, audio_packets, audio_errors),
            name="aac-encoder",
        )
        worker.start()
        try:
            _encode_frames(container, video, frames, end_ms, on_frame)
        finally:
            worker.join()
        if audio_errors:
            raise audio_errors[0]
        for packet in audio_packets:
            container.mux(packet)


def _add_video_stream(container):
    video = container.add_stream(
        "libx264",
        options={
            "profile": "high",
            # On slides "superfast" keeps High-profile tools (CABAC, 8x8
            # transforms) and took about 5 ms per 720p frame on a 2-core machine,
            # against about 8 ms for "veryfast", for files about 30% larger.
            "preset": "superfast",
            "crf": "20",
            "tune": "stillimage",
            # B-frames reorder packets, and with sparse variable-rate frames the
            # mp4 muxer then misreports the stream duration. Stills gain nothing
            # from them.
            "x264-params": "keyint=30:bframes=0",
        },
    )

    video.width = WIDTH
    video.height = HEIGHT
    video.pix_fmt = "yuv420p"
    video.time_base = VIDEO_TIME_BASE

    context = video.codec_context
    context.time_base = VIDEO_TIME_BASE
    # A nominal rate only: every frame carries its own pts, and the muxer gives
    # the last frame a duration of one nominal frame.
    context.framerate = Fraction(NOMINAL_FPS, 1)
    context.color_primaries = 1  # BT.709
    context.color_trc = 1  # BT.709
    context.colorspace = 1  # BT.709
    context.color_range = 1  # limited (TV) range
    return video


def _add_audio_stream(container, sample_rate: int):
    # The "fast" coder encodes speech about 2.5 times quicker than the default
    # "twoloop" coder (measured on a 60 s narration, FFmpeg's native AAC).
    audio = container.add_stream(
        "aac", rate=sample_rate, layout="mono", options={"aac_coder": "fast"}
    )
    audio.bit_rate = 64_000
    return audio


def _encode_frames(container, video, frames, end_ms, on_frame) -> None:
    last_picture = None
    last_pts = -1
    for pts, picture in frames:
        _encode_picture(container, video, picture, pts)
        last_picture, last_pts = picture, pts
        if on_frame is not None:
            on_frame()
    # A repeat of the last picture one nominal frame before the end makes the
    # video stream end at end_ms.
    final_pts = end_ms - round(1000 / NOMINAL_FPS)
    if last_picture is not None and final_pts > last_pts:
        _encode_picture(container, video, last_picture, final_pts)
    for packet in video.encode(None):
        container.mux(packet)


def _encode_picture(container, stream, picture: np.ndarray, pts: int) -> None:
    frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
    frame.pts = pts
    frame.time_base = VIDEO_TIME_BASE
    for packet in stream.encode(frame):
        container.mux(packet)


def _encode_audio(audio, samples, sample_rate, packets, errors) -> None:
    try:
        floats = samples.astype(np.float32) / 32768.0
        for start in range(0, len(floats), AAC_FRAME_SAMPLES):
            chunk = floats[start : start + AAC_FRAME_SAMPLES]
            frame = av.AudioFrame.from_ndarray(
                chunk.reshape(1, -1), format="fltp", layout="mono"
            )
            frame.sample_rate = sample_rate
            frame.pts = start
            frame.time_base = Fraction(1, sample_rate)
            packets.extend(audio.encode(frame))
        packets.extend(audio.encode(None))
    except BaseException as exc:  # re-raised by the caller's thread
        errors.append(exc)
