from datetime import datetime, timezone

import pytest
import requests

from opennote_jupyter.client import OpennoteClient
from opennote_jupyter.urls import build_video_key, parse_video_url, parse_video_urls


def test_build_key_matches_published_example():
    key = build_video_key(
        datetime(2025, 7, 26, 4, 1, 21, 161753),
        "8159b304-0462-4273-a89d-8bc9bdde926b",
        '"Multi-Modal AI for Enhanced Wildfire Detection and Monitoring"',
    )
    assert key == (
        "2025-07-26T04%3A01%3A21.161753-8159b304-0462-4273-a89d-8bc9bdde926b--"
        "%2522Multi-Modal%2520AI%2520for%2520Enhanced%2520Wildfire%2520Detection"
        "%2520and%2520Monitoring%2522.mp4"
    )


def test_build_key_keeps_slash_literal():
    key = build_video_key(
        datetime(2025, 1, 2), "8159b304-0462-4273-a89d-8bc9bdde926b", "GPS/IMU"
    )
    assert key.endswith("--GPS/IMU.mp4")


def test_build_key_rejects_aware_datetime():
    with pytest.raises(ValueError, match="naive UTC"):
        build_video_key(
            datetime(2025, 1, 2, tzinfo=timezone.utc),
            "8159b304-0462-4273-a89d-8bc9bdde926b",
            "t",
        )


DOT_TITLES = ["a/../b", "a/./b", "x/../../y", "../a/..", "a/.../b", "./."]


@pytest.mark.parametrize("title", DOT_TITLES)
def test_build_key_dot_segments_round_trip(title):
    key = build_video_key(
        datetime(2025, 1, 2), "8159b304-0462-4273-a89d-8bc9bdde926b", title
    )
    url = f"https://videofs-opennote-us-east-1.s3.us-east-1.amazonaws.com/{key}"
    segments = key.split("/")
    assert "." not in segments
    assert ".." not in segments
    assert parse_video_url(url).title == title
    assert parse_video_urls([url])["title"][0] == title


def test_build_key_without_dot_segments_is_unchanged():
    key = build_video_key(
        datetime(2025, 1, 2), "8159b304-0462-4273-a89d-8bc9bdde926b", "a/.b/c.."
    )
    assert key.endswith("--a/.b/c...mp4")


def test_local_video_with_dot_segment_title_is_served(local_backend):
    client = OpennoteClient(
        local_backend.api_key,
        local_backend.base_url,
        tier="enterprise",
        per_minute=1000,
        per_day=100_000,
    )
    with client:
        result = client.generate("Dots in a title.", title="a/../b", length=1)
    response = requests.get(result.s3_url, timeout=10)
    assert response.status_code == 200
    assert response.content[4:8] == b"ftyp"
    assert parse_video_url(result.s3_url).title == "a/../b"
