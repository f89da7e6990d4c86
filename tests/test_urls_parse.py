"""Parsing Opennote URLs: one at a time, as a DataFrame, and from the local backend."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from opennote_jupyter.contract import FINAL_STATUSES
from opennote_jupyter.urls import (
    VideoUrl,
    build_video_key,
    parse_video_url,
    parse_video_urls,
)

DATA = Path(__file__).parent / "data" / "opennote_urls.jsonl"
HOST = "https://videofs-opennote-us-east-1.s3.us-east-1.amazonaws.com/"
IMAGE_HOST = "https://contentfs-opennote-us-east-1.s3.us-east-1.amazonaws.com/"
VIDEO_ID = "8159b304-0462-4273-a89d-8bc9bdde926b"
CREATED = datetime(2025, 7, 26, 4, 1, 21, 161753)


def real_urls() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text().splitlines() if line]


def expected_record(url: str, bucket: str | None, created_at, title, file_type="mp4"):
    return VideoUrl(url, bucket, created_at, VIDEO_ID, title, file_type)


def assert_row_equals(row: pd.Series, record: VideoUrl) -> None:
    assert row["url"] == record.url
    if record.bucket is None:
        assert row["bucket"] is pd.NA
    else:
        assert row["bucket"] == record.bucket
    assert row["created_at"] == pd.Timestamp(record.created_at)
    assert row["id"] == record.id
    if record.title is None:
        assert row["title"] is pd.NA
    else:
        assert row["title"] == record.title
    assert row["file_type"] == record.file_type
    assert row["error"] is pd.NA


# ---------------------------------------------------------------------------
# The shared real URLs


@pytest.mark.parametrize("case", real_urls(), ids=lambda case: case["url"][8:40])
def test_real_url_parses_to_expected(case):
    record = parse_video_url(case["url"])
    expected = case["expected"]
    assert record.url == case["url"]
    assert record.created_at == datetime.fromisoformat(expected["created_at"])
    assert record.created_at.tzinfo is None
    assert record.id == expected["id"]
    assert record.title == expected["title"]
    assert record.file_type == expected["file_type"]
    assert record.bucket.endswith("-opennote-us-east-1")


def test_real_urls_as_frame():
    cases = real_urls()
    frame = parse_video_urls([case["url"] for case in cases])
    assert list(frame.columns) == [
        "url",
        "bucket",
        "created_at",
        "id",
        "title",
        "file_type",
        "error",
    ]
    for position, case in enumerate(cases):
        assert_row_equals(frame.iloc[position], parse_video_url(case["url"]))
        assert frame["created_at"].iloc[position] == pd.Timestamp(
            case["expected"]["created_at"]
        )


# ---------------------------------------------------------------------------
# Every format and title shape, through both parsers

STAMP = "2025-07-26T04%3A01%3A21.161753"
CASES = {
    "current": (
        HOST + build_video_key(CREATED, VIDEO_ID, '"Wildfire Detection"'),
        expected_record(
            "", "videofs-opennote-us-east-1", CREATED, '"Wildfire Detection"'
        ),
    ),
    "legacy": (
        "https://fs-opennote-us-east-1.s3.us-east-1.amazonaws.com/"
        f"2025-04-18T15:09:11.338354---{VIDEO_ID}---output.mp4",
        expected_record(
            "",
            "fs-opennote-us-east-1",
            datetime(2025, 4, 18, 15, 9, 11, 338354),
            "output",
        ),
    ),
    "legacy_without_fraction": (
        "https://fs-opennote-us-east-1.s3.us-east-1.amazonaws.com/"
        f"2025-04-18T15:09:11---{VIDEO_ID}---output.mp4",
        expected_record(
            "", "fs-opennote-us-east-1", datetime(2025, 4, 18, 15, 9, 11), "output"
        ),
    ),
    "image_without_title": (
        IMAGE_HOST + f"20250922113116-{VIDEO_ID}.png",
        expected_record(
            "",
            "contentfs-opennote-us-east-1",
            datetime(2025, 9, 22, 11, 31, 16),
            None,
            "png",
        ),
    ),
    "image_with_title_ending_in_dot": (
        IMAGE_HOST + build_video_key(CREATED, VIDEO_ID, "the system.", "png"),
        expected_record(
            "", "contentfs-opennote-us-east-1", CREATED, "the system.", "png"
        ),
    ),
    "without_fraction": (
        HOST + f"2025-07-26T04%3A01%3A21-{VIDEO_ID}--Plain.mp4",
        expected_record(
            "", "videofs-opennote-us-east-1", CREATED.replace(microsecond=0), "Plain"
        ),
    ),
    "short_fraction": (
        HOST + f"2025-07-26T04%3A01%3A21.5-{VIDEO_ID}--Plain.mp4",
        expected_record(
            "",
            "videofs-opennote-us-east-1",
            CREATED.replace(microsecond=500000),
            "Plain",
        ),
    ),
    "lowercase_escapes": (
        HOST
        + f"2025-07-26T04%3a01%3a21.161753-{VIDEO_ID}--caf%25c3%25a9%252c%2520ok.mp4",
        expected_record("", "videofs-opennote-us-east-1", CREATED, "café, ok"),
    ),
    "uppercase_uuid": (
        HOST + f"{STAMP}-{VIDEO_ID.upper()}--Plain.mp4",
        expected_record("", "videofs-opennote-us-east-1", CREATED, "Plain"),
    ),
    "presigned": (
        HOST
        + build_video_key(CREATED, VIDEO_ID, "Why?")
        + "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Signature=ab%2F",
        expected_record("", "videofs-opennote-us-east-1", CREATED, "Why?"),
    ),
    "fragment": (
        HOST + build_video_key(CREATED, VIDEO_ID, "Intro") + "#t=10",
        expected_record("", "videofs-opennote-us-east-1", CREATED, "Intro"),
    ),
    "path_style": (
        "https://s3.us-east-1.amazonaws.com/videofs-opennote-us-east-1/"
        + build_video_key(CREATED, VIDEO_ID, "GPS/IMU"),
        expected_record("", "videofs-opennote-us-east-1", CREATED, "GPS/IMU"),
    ),
    "local_backend": (
        "http://127.0.0.1:8123/files/" + build_video_key(CREATED, VIDEO_ID, "GPS/IMU"),
        expected_record("", None, CREATED, "GPS/IMU"),
    ),
}
TITLES = {
    "slash": "GPS/IMU fusion",
    "double_dash": "before--after",
    "triple_dash": "---",
    "leading_dash": "-x",
    "percent": "100% sure",
    "percent_escape_lookalike": "%41 is not A",
    "plus": "C++ a+b",
    "quotes": "\"double\" and 'single'",
    "unicode": "Schrödinger's 細胞 🎥",
    "trailing_dot": "ends with a dot.",
    "two_trailing_dots": "dots..",
    "mp4_inside": "convert.mp4 files",
    "mp4_at_end": "clip.mp4",
    "empty": "",
    "newline": "line\nbreak",
}
for name, title in TITLES.items():
    CASES[f"title_{name}"] = (
        HOST + build_video_key(CREATED, VIDEO_ID, title),
        expected_record("", "videofs-opennote-us-east-1", CREATED, title),
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_format_case_single(name):
    url, expected = CASES[name]
    record = parse_video_url(url)
    assert record == VideoUrl(
        url,
        *[
            getattr(expected, f)
            for f in ("bucket", "created_at", "id", "title", "file_type")
        ],
    )


def test_format_cases_frame():
    names = sorted(CASES)
    frame = parse_video_urls([CASES[name][0] for name in names])
    for position, name in enumerate(names):
        assert_row_equals(frame.iloc[position], parse_video_url(CASES[name][0]))


def test_plus_is_not_space():
    record = parse_video_url(HOST + f"{STAMP}-{VIDEO_ID}--a+b%252Bc.mp4")
    assert record.title == "a+b+c"


def test_title_decoded_exactly_twice():
    # quote(quote(quote("%"))) would need three decodings to give "%".
    record = parse_video_url(HOST + f"{STAMP}-{VIDEO_ID}--%252525.mp4")
    assert record.title == "%25"


def test_key_is_whole_path_not_last_segment():
    url = HOST + build_video_key(CREATED, VIDEO_ID, "a/b/c")
    assert parse_video_url(url).title == "a/b/c"


def test_microseconds_kept_in_frame():
    frame = parse_video_urls([CASES["current"][0]])
    assert frame["created_at"].dtype == np.dtype("datetime64[us]")
    assert frame["created_at"].iloc[0].microsecond == 161753


def test_frame_dtypes():
    frame = parse_video_urls([CASES["current"][0], None])
    for column in ("url", "bucket", "id", "title", "file_type", "error"):
        assert frame[column].dtype == pd.StringDtype("pyarrow"), column


# ---------------------------------------------------------------------------
# Bad input, both error modes

IMPOSSIBLE_DATE = HOST + f"2025-02-30T04%3A01%3A21.161753-{VIDEO_ID}--x.mp4"
BAD_INPUTS = {
    "none": (None, "missing value"),
    "nan": (float("nan"), "missing value"),
    "empty": ("", "empty string"),
    "other_host": ("https://example.com/video.mp4", "host 'example.com'"),
    "other_scheme": ("ftp://x/y", "http:// or https://"),
    "not_a_key": (HOST + "cat.mp4", "matches no Opennote format"),
    "no_key": (HOST, "no object key"),
    "impossible_date": (IMPOSSIBLE_DATE, "not a valid date"),
    "hour_24": (
        HOST + f"2025-02-10T24%3A01%3A21-{VIDEO_ID}--x.mp4",
        "not a valid date",
    ),
    "year_0": (HOST + f"0000-01-01T00%3A00%3A00-{VIDEO_ID}--x.mp4", "not a valid date"),
    "no_extension": (HOST + f"{STAMP}-{VIDEO_ID}--title", "matches no Opennote format"),
    "local_without_files": ("http://127.0.0.1:8123/other/x.mp4", "/files/"),
    "path_style_without_bucket": ("https://s3.amazonaws.com/", "no bucket"),
    "seven_digit_fraction": (
        HOST + f"2025-07-26T04%3A01%3A21.1234567-{VIDEO_ID}--x.mp4",
        "matches no Opennote format",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_single_raises(name):
    value, reason = BAD_INPUTS[name]
    with pytest.raises(ValueError, match="invalid Opennote video URL") as caught:
        parse_video_url(value)
    assert reason in str(caught.value)
    assert repr(value) in str(caught.value)


def test_non_string_single_is_type_error():
    with pytest.raises(TypeError, match="expected the URL as a str, got int"):
        parse_video_url(42)


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_coerced(name):
    value, reason = BAD_INPUTS[name]
    good = CASES["current"][0]
    frame = parse_video_urls([good, value, good])
    row = frame.iloc[1]
    assert reason in row["error"]
    assert row["created_at"] is pd.NaT
    for column in ("bucket", "id", "title", "file_type"):
        assert row[column] is pd.NA, column
    if isinstance(value, str):
        assert row["url"] == value
    else:
        assert row["url"] is pd.NA
    assert frame["error"].isna().tolist() == [True, False, True]


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_raise_mode(name):
    value, reason = BAD_INPUTS[name]
    good = CASES["current"][0]
    with pytest.raises(ValueError, match="at position 1:") as caught:
        parse_video_urls([good, value, good, None], errors="raise")
    assert reason in str(caught.value)
    if value is not None and value == value:
        assert repr(value) in str(caught.value)


def test_non_string_row_coerced():
    frame = parse_video_urls([42, CASES["current"][0]])
    assert frame["error"].iloc[0] == "expected a str, got int"
    assert frame["error"].iloc[1] is pd.NA


def test_lone_surrogate_row_coerced():
    frame = parse_video_urls(["https://x\udc80", CASES["current"][0]])
    assert "lone surrogates" in frame["error"].iloc[0]
    assert frame["title"].iloc[1] == '"Wildfire Detection"'


def test_unknown_errors_mode():
    with pytest.raises(ValueError, match="errors must be 'coerce' or 'raise'"):
        parse_video_urls([], errors="ignore")


def test_string_input_rejected():
    with pytest.raises(TypeError, match="iterable of URL strings"):
        parse_video_urls(CASES["current"][0])


# ---------------------------------------------------------------------------
# Input kinds


def test_series_keeps_index():
    urls = pd.Series([CASES["current"][0], None], index=["a", "b"])
    frame = parse_video_urls(urls)
    assert list(frame.index) == ["a", "b"]
    assert frame.loc["a", "title"] == '"Wildfire Detection"'


def test_arrow_series_with_nulls():
    urls = pd.Series([None, CASES["legacy"][0]], dtype="string[pyarrow]")
    frame = parse_video_urls(urls)
    assert frame["error"].iloc[0] == "missing value"
    assert frame["title"].iloc[1] == "output"


def test_index_and_generator_inputs():
    urls = [CASES["current"][0], CASES["legacy"][0]]
    from_index = parse_video_urls(pd.Index(urls))
    from_generator = parse_video_urls(url for url in urls)
    pd.testing.assert_frame_equal(from_index, from_generator)
    assert list(from_index.index) == [0, 1]


def test_numpy_nan_in_object_series():
    frame = parse_video_urls(pd.Series([np.nan, CASES["current"][0]], dtype=object))
    assert frame["error"].iloc[0] == "missing value"


def test_empty_input():
    frame = parse_video_urls([])
    assert len(frame) == 0
    assert frame["created_at"].dtype == np.dtype("datetime64[us]")
    assert frame["title"].dtype == pd.StringDtype("pyarrow")


def test_large_input_in_chunks():
    # Enough rows for several chunks on several threads; the bad rows sit in the
    # last chunk.
    good = [CASES[name][0] for name in sorted(CASES)]
    urls = good * (80_000 // len(good))
    urls[-5] = IMPOSSIBLE_DATE
    urls[-3] = None
    frame = parse_video_urls(urls)
    assert len(frame) == len(urls)
    assert frame["error"].notna().sum() == 2
    assert "not a valid date" in frame["error"].iloc[-5]
    for position in (0, len(good) + 3, len(urls) // 2, len(urls) - 7):
        assert_row_equals(frame.iloc[position], parse_video_url(urls[position]))
    with pytest.raises(ValueError, match=f"at position {len(urls) - 5}:"):
        parse_video_urls(urls, errors="raise")


# ---------------------------------------------------------------------------
# Against the local backend


def test_local_backend_url_round_trip(local_backend):
    title = '"GPS/IMU" -- 100% +plus. café'
    headers = {"Authorization": f"Bearer {local_backend.api_key}"}
    body = {
        "messages": [{"role": "user", "content": "Sensor fusion"}],
        "length": 1,
        "upload_to_s3": True,
        "title": title,
    }
    created = requests.post(
        f"{local_backend.base_url}/v1/video/create",
        json=body,
        headers=headers,
        timeout=10,
    )
    assert created.status_code == 200, created.text
    video_id = created.json()["video_id"]
    deadline = time.monotonic() + 60
    while True:
        status = requests.get(
            f"{local_backend.base_url}/v1/video/status/{video_id}",
            headers=headers,
            timeout=10,
        ).json()
        if status["status"] in FINAL_STATUSES or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status["status"] == "completed", status
    url = status["response"]["s3_url"]
    record = parse_video_url(url)
    assert record.bucket is None
    assert record.id == video_id
    assert record.title == title
    assert record.file_type == "mp4"
    assert record.created_at == datetime.fromisoformat(status["response"]["timestamp"])
    assert_row_equals(parse_video_urls([url]).iloc[0], record)
    assert requests.get(url, timeout=10).status_code == 200


def test_nan_is_missing_not_text():
    frame = parse_video_urls([float("nan")])
    assert frame["url"].iloc[0] is pd.NA


def test_missing_kinds_in_list():
    frame = parse_video_urls([pd.NA, np.nan, None, pd.NaT, CASES["current"][0]])
    assert frame["error"].tolist()[:4] == ["missing value"] * 4
    assert frame["error"].iloc[4] is pd.NA
