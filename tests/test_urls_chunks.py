"""Large inputs are parsed in chunks; the chunks must not change any value."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from opennote_jupyter import url_frame
from opennote_jupyter.urls import _Mismatch, _parse, build_video_key, parse_video_urls

VIDEOS = "https://videofs-opennote-us-east-1.s3.us-east-1.amazonaws.com/"
IMAGES = "https://contentfs-opennote-us-east-1.s3.us-east-1.amazonaws.com/"


def mixed_values():
    values = []
    for row in range(23):
        prefix = IMAGES if row % 4 == 0 else VIDEOS
        key = build_video_key(
            datetime(2025, 7, 1 + row, row, 30, 15, row * 1000),
            f"{row:08x}-0462-4273-a89d-8bc9bdde926b",
            f"Lesson {row}: café 100% / a+b",
            "png" if prefix == IMAGES else "mp4",
        )
        values.append(prefix + key)
    values[3] = None
    values[7] = float("nan")
    values[8] = "https://example.com/x.mp4"
    values[12] = VIDEOS + "bad\ud800.mp4"
    values[17] = 42
    values[19] = (
        VIDEOS + "2025-02-30T10:00:00---ce36a32a-d8e8-4102-8f58-ba05311b8553---x.mp4"
    )
    return values


@pytest.fixture
def small_chunks(monkeypatch):
    """Parse in chunks of five rows, so 23 rows make five chunks."""
    monkeypatch.setattr(url_frame, "_CHUNK_ROWS", 5)


def test_chunks_agree_with_one_parse(small_chunks):
    values = mixed_values()
    frame = parse_video_urls(values)
    assert list(frame.index) == list(range(len(values)))
    for position, value in enumerate(values):
        row = frame.iloc[position]
        try:
            record = _parse(value)
        except _Mismatch as exc:
            assert row["error"] == exc.reason
            assert row["created_at"] is pd.NaT
            continue
        assert row["error"] is pd.NA
        assert row["url"] == value
        assert row["bucket"] == record.bucket
        assert row["created_at"] == pd.Timestamp(record.created_at)
        assert row["id"] == record.id
        assert row["title"] == record.title
        assert row["file_type"] == record.file_type


def test_chunked_list_and_series_give_one_frame(small_chunks):
    values = mixed_values()
    text = [value if isinstance(value, str) else None for value in values]
    text[12] = None
    series = pd.Series(text, dtype="string[pyarrow]", index=range(50, 73))
    expected = parse_video_urls(text)
    expected.index = series.index
    pd.testing.assert_frame_equal(parse_video_urls(series), expected)


def test_chunked_raise_names_the_global_position(small_chunks):
    values = mixed_values()
    values[3] = values[2]
    values[7] = values[2]
    with pytest.raises(ValueError, match=r"'https://example.com/x.mp4' at position 8:"):
        parse_video_urls(values, errors="raise")
    series = pd.Series(values[9:], index=range(100, 100 + len(values) - 9))
    with pytest.raises(ValueError, match=r"at position 3 \(index label 103\)"):
        parse_video_urls(series, errors="raise")
