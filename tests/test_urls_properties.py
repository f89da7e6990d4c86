"""Property tests: the vectorized parser agrees with the one-URL parser everywhere."""

from __future__ import annotations

import string
import uuid
from urllib.parse import quote

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opennote_jupyter.urls import (
    _Mismatch,
    _parse,
    build_video_key,
    parse_video_url,
    parse_video_urls,
)

PREFIXES = [
    "https://videofs-opennote-us-east-1.s3.us-east-1.amazonaws.com/",
    "https://contentfs-opennote-us-east-1.s3.us-east-1.amazonaws.com/",
    "HTTPS://VIDEOFS-OPENNOTE-US-EAST-1.S3.US-EAST-1.AMAZONAWS.COM/",
    "http://my.bucket.s3.amazonaws.com/",
    "https://s3.us-east-1.amazonaws.com/videofs-opennote-us-east-1/",
    "https://s3.amazonaws.com/",
    "http://127.0.0.1:8123/files/",
    "http://localhost/files/",
    "http://127.0.0.1:8123/",
    "https://example.com/",
    "ftp://x/",
    "",
]
VALID_PREFIXES = [
    prefix for index, prefix in enumerate(PREFIXES) if index in (0, 1, 2, 3, 4, 6, 7)
]
HEX = "0123456789abcdefABCDEF"
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def two_digits(low, high):
    return st.integers(low, high).map(lambda value: f"{value:02d}")


@st.composite
def timestamps(draw, compact):
    if draw(st.integers(0, 3)):
        moment = draw(st.datetimes())
        fields = [f"{moment.year:04d}"] + [
            f"{value:02d}"
            for value in (moment.month, moment.day, moment.hour, moment.minute)
        ]
        fields.append(f"{moment.second:02d}")
        fraction = f".{moment.microsecond:06d}"
    else:
        # Any two digits, so impossible dates and times come up too.
        fields = [f"{draw(st.integers(0, 9999)):04d}"]
        fields += [draw(two_digits(0, 99)) for _ in range(5)]
        fraction = draw(st.sampled_from(["", ".", ".1", ".12345", ".1234567"]))
    year, month, day, hour, minute, second = fields
    if compact:
        return year + month + day + hour + minute + second
    colon = draw(st.sampled_from(["%3A", "%3A", "%3a", ":", "%3B"]))
    fraction = draw(st.sampled_from([fraction, fraction, ""]))
    return f"{year}-{month}-{day}T{hour}{colon}{minute}{colon}{second}{fraction}"


@st.composite
def titles(draw):
    title = draw(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
    encoding = draw(st.sampled_from(["twice", "once", "raw", "lower", "junk"]))
    if encoding == "twice":
        return quote(quote(title, safe="/"), safe="/")
    if encoding == "once":
        return quote(title, safe="/")
    if encoding == "lower":
        encoded = quote(quote(title, safe="/"), safe="/")
        return "".join(
            part[:2].lower() + part[2:] if index else part
            for index, part in enumerate(encoded.split("%"))
        )
    if encoding == "junk":
        return draw(st.text(alphabet="%25" + HEX + "./-\u00e9\x80", max_size=20))
    return title


@st.composite
def urls(draw, prefix=None):
    if prefix is None:
        prefix = draw(st.sampled_from(PREFIXES))
    video_id = str(draw(st.uuids()))
    if draw(st.integers(0, 9)) == 0:
        video_id = draw(st.sampled_from([video_id.upper(), video_id[:-1] + "g"]))
    shape = draw(st.sampled_from(["current", "current", "legacy", "image", "mixed"]))
    stamp = draw(timestamps(compact=shape == "image"))
    title = draw(titles())
    file_type = draw(
        st.sampled_from(["mp4", "mp4", "png", "MP4", "webm", "", "abcdefghij", "a-b"])
    )
    if shape == "current":
        key = f"{stamp}-{video_id}--{title}.{file_type}"
    elif shape == "legacy":
        key = f"{stamp}---{video_id}---{title}.{file_type}"
    elif shape == "image":
        key = f"{stamp}-{video_id}.{file_type}"
    else:
        first = draw(st.sampled_from(["-", "---", "--", ""]))
        second = draw(st.sampled_from(["--", "---", "-", "", "."]))
        key = f"{stamp}{first}{video_id}{second}{title}.{file_type}"
    suffix = draw(st.sampled_from(["", "", "?X-Amz-Signature=a%2Fb", "#t=1", "\n"]))
    return prefix + key + suffix


@st.composite
def batches(draw):
    shared = draw(st.sampled_from(PREFIXES[:8]))
    items = st.one_of(
        urls(prefix=shared),
        urls(prefix=shared),
        urls(),
        st.sampled_from([None, float("nan"), ""]),
    )
    return draw(st.lists(items, max_size=12))


def assert_frame_matches_single(values, frame):
    assert len(frame) == len(values)
    for position, value in enumerate(values):
        row = frame.iloc[position]
        try:
            record = _parse(value)
        except _Mismatch as exc:
            assert row["error"] == exc.reason, value
            assert row["created_at"] is pd.NaT
            assert row["id"] is pd.NA
            assert row["title"] is pd.NA
            continue
        assert row["error"] is pd.NA, (value, row["error"])
        assert row["url"] == value
        if record.bucket is None:
            assert row["bucket"] is pd.NA
        else:
            assert row["bucket"] == record.bucket
        assert row["created_at"] == pd.Timestamp(record.created_at), value
        assert row["id"] == record.id
        if record.title is None:
            assert row["title"] is pd.NA
        else:
            assert row["title"] == record.title, value
        assert row["file_type"] == record.file_type


@SETTINGS
@given(batches())
def test_frame_agrees_with_single(values):
    assert_frame_matches_single(values, parse_video_urls(values))


@SETTINGS
@given(st.lists(urls(prefix=PREFIXES[0]), min_size=1, max_size=8))
def test_frame_agrees_on_one_bucket(values):
    assert_frame_matches_single(values, parse_video_urls(values))


@SETTINGS
@given(
    created_at=st.datetimes(),
    video_id=st.uuids(),
    title=st.text(),
    file_type=st.text(alphabet=string.ascii_letters + string.digits, min_size=1),
    prefix=st.sampled_from(VALID_PREFIXES),
)
def test_build_then_parse_round_trip(created_at, video_id, title, file_type, prefix):
    url = prefix + build_video_key(created_at, video_id, title, file_type)
    record = parse_video_url(url)
    assert record.created_at == created_at
    assert record.id == str(video_id)
    assert record.title == title
    assert record.file_type == file_type
    row = parse_video_urls([url, url]).iloc[1]
    assert row["created_at"] == pd.Timestamp(created_at)
    assert row["id"] == str(video_id)
    assert row["title"] == title
    assert row["file_type"] == file_type
    assert row["error"] is pd.NA


def test_uuid_strategy_is_canonical():
    value = uuid.UUID(int=1)
    assert str(value) == "00000000-0000-0000-0000-000000000001"
