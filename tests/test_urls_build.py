from datetime import datetime, timezone

import pytest

from opennote_jupyter.urls import build_video_key


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
