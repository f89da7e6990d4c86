"""Offline narration with eSpeak NG, driven through ctypes.

The library comes from the ``espeakng-loader`` wheel. It keeps global state (one
callback, one voice, one output mode), so every call goes through ``_LOCK``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE_SILENT = 22050
# Set to "off" to skip the voice and make a silent video timed by reading speed.
VOICE_ENV = "OPENNOTE_JUPYTER_VOICE"
VOICE_NAME = b"en-us"

# Values from eSpeak NG's speak_lib.h (API revision 12).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_POS_CHARACTER = 1
_CHARS_UTF8 = 1

# Reading speed for the silent fallback, close to eSpeak's default of 175 words
# per minute: each word takes a base time plus a time per character.
_SILENT_WORD_SECONDS = 0.12
_SILENT_CHAR_SECONDS = 0.055


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class _Event(ctypes.Structure):
    # espeak_EVENT: six 32-bit ints, then a pointer and an 8-byte union, which
    # ctypes aligns like the C compiler (40 bytes on 64-bit Linux).
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Speech:
    """Audio for one text and the time each word starts.

    ``word_times`` contains ``(char_offset, seconds)`` pairs: the 0-based character
    offset of a word in the text and when it starts in ``samples``.
    """

    samples: np.ndarray  # int16, mono
    sample_rate: int
    word_times: tuple[tuple[int, float], ...]

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return len(self.samples) / self.sample_rate


class _Engine:
    """The loaded library, its sample rate, and the buffers of the current call."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_SetSynthCallback.argtypes = [_Callback]
        self.lib.espeak_SetSynthCallback.restype = None
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetVoiceByName.restype = ctypes.c_int
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self.lib.espeak_Synth.restype = ctypes.c_int

        data_path = espeakng_loader.get_data_path()
        # 0x8000 (espeakINITIALIZE_DONT_EXIT) makes the library return an
        # error instead of exiting the process when its data is missing.
        rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0x8000
        )
        if rate <= 0:
            raise OSError(
                f"espeak_Initialize returned {rate} for the data directory "
                f"{data_path}: reinstall the espeakng-loader package"
            )
        self.sample_rate = rate
        status = self.lib.espeak_SetVoiceByName(VOICE_NAME)
        if status != 0:
            raise OSError(f"eSpeak NG voice {VOICE_NAME!r} not found (error {status})")
        self.chunks: list[bytes] = []
        self.words: list[tuple[int, int]] = []
        # Kept on the instance so the C side never calls a collected function.
        self.callback = _Callback(self._on_audio)
        self.lib.espeak_SetSynthCallback(self.callback)

    def _on_audio(self, wav, count, events) -> int:
        if wav and count > 0:
            self.chunks.append(ctypes.string_at(wav, count * 2))
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_WORD:
                # text_position counts characters from 1.
                self.words.append((event.text_position - 1, event.audio_position))
            index += 1
        return 0

    def speak(self, text: str) -> Speech:
        self.chunks = []
        self.words = []
        data = text.encode("utf-8") + b"\0"
        status = self.lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != 0:
            raise OSError(f"espeak_Synth failed with error {status}")
        samples = np.frombuffer(b"".join(self.chunks), dtype=np.int16).copy()
        times = tuple((offset, ms / 1000.0) for offset, ms in self.words)
        return Speech(samples=samples, sample_rate=self.sample_rate, word_times=times)


_LOCK = threading.Lock()
_engine: _Engine | None = None
_engine_error: str | None = None


def voice_enabled() -> bool:
    """Return False when the environment turns the voice off."""
    return os.environ.get(VOICE_ENV, "").strip().lower() not in ("off", "0", "false")


def load_voice() -> str | None:
    """Load eSpeak NG once per process; return why it failed, or None."""
    global _engine, _engine_error
    with _LOCK:
        if _engine is None and _engine_error is None:
            try:
                _engine = _Engine()
            except (OSError, ImportError, AttributeError) as exc:
                _engine_error = str(exc)
                logger.warning("eSpeak NG could not be loaded: %s", exc)
        return _engine_error


def voice_sample_rate() -> int:
    """Return the loaded voice's sample rate."""
    if _engine is None:
        raise RuntimeError("call load_voice() first and check that it returned None")
    return _engine.sample_rate


def speak(text: str) -> Speech:
    """Synthesize ``text`` with the loaded voice; see :func:`load_voice`."""
    with _LOCK:
        if _engine is None:
            raise RuntimeError(
                "call load_voice() first and check that it returned None"
            )
        return _engine.speak(text)


def silent_speech(text: str, sample_rate: int = SAMPLE_RATE_SILENT) -> Speech:
    """Return silence as long as reading ``text`` aloud, with estimated word times."""
    times = []
    clock = 0.0
    offset = 0
    for word in text.split():
        offset = text.index(word, offset)
        times.append((offset, clock))
        clock += _SILENT_WORD_SECONDS + _SILENT_CHAR_SECONDS * len(word)
        offset += len(word)
    samples = np.zeros(round(clock * sample_rate), dtype=np.int16)
    return Speech(samples=samples, sample_rate=sample_rate, word_times=tuple(times))
