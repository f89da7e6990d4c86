"""Finished video files: URL keys, byte ranges, captions, and the traversal guard."""

from __future__ import annotations

import base64
import http.client
import time
from datetime import datetime
from urllib.parse import quote, urlsplit

import pytest
import requests

from opennote_jupyter.contract import FINAL_STATUSES
from opennote_jupyter.urls import build_video_key

TITLE = '"GPS/IMU" fusion: 100% explained'


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def make_video(backend, **fields):
    body = {
        "messages": [{"role": "user", "content": "How does sensor fusion work?"}],
        "length": 1,
        **fields,
    }
    answer = requests.post(
        f"{backend.base_url}/v1/video/create",
        json=body,
        headers=auth(backend.api_key),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    video_id = answer.json()["video_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = requests.get(
            f"{backend.base_url}/v1/video/status/{video_id}",
            headers=auth(backend.api_key),
            timeout=10,
        ).json()
        if status["status"] in FINAL_STATUSES:
            assert status["status"] == "completed", status
            return status
        time.sleep(0.05)
    raise AssertionError(f"video {video_id} did not finish")


@pytest.fixture(scope="module")
def uploaded(local_backend):
    return make_video(local_backend, upload_to_s3=True, title=TITLE)


def raw_get(backend, path, headers=None):
    """Send ``path`` exactly as written, with no client-side normalization."""
    parts = urlsplit(backend.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_s3_url_uses_video_key(local_backend, uploaded):
    result = uploaded["response"]
    assert result["b64_video"] is None
    created = datetime.fromisoformat(result["timestamp"])
    key = build_video_key(created, uploaded["video_id"], TITLE)
    assert result["s3_url"] == f"{local_backend.base_url}/files/{key}"
    assert result["title"] == TITLE
    # The title's "/" survives the first encoding, so the key has a "/" in it.
    assert "/IMU" in key


def test_video_served_whole(uploaded):
    answer = requests.get(uploaded["response"]["s3_url"], timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "video/mp4"
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.content[4:8] == b"ftyp"


def test_video_byte_range(uploaded):
    url = uploaded["response"]["s3_url"]
    whole = requests.get(url, timeout=10).content
    answer = requests.get(url, headers={"Range": "bytes=10-109"}, timeout=10)
    assert answer.status_code == 206
    assert answer.headers["content-range"] == f"bytes 10-109/{len(whole)}"
    assert answer.content == whole[10:110]
    tail = requests.get(url, headers={"Range": "bytes=-16"}, timeout=10)
    assert tail.status_code == 206
    assert tail.content == whole[-16:]
    beyond = requests.get(
        url, headers={"Range": f"bytes={len(whole) + 5}-"}, timeout=10
    )
    assert beyond.status_code == 416


def test_video_head(uploaded):
    answer = requests.head(uploaded["response"]["s3_url"], timeout=10)
    assert answer.status_code == 200
    assert int(answer.headers["content-length"]) > 1000
    assert answer.content == b""


def test_captions_beside_video(uploaded):
    url = uploaded["response"]["s3_url"]
    assert url.endswith(".mp4")
    answer = requests.get(url[: -len(".mp4")] + ".vtt", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/vtt")
    assert answer.text.startswith("WEBVTT")


def test_key_encoded_again_is_served(uploaded):
    url = uploaded["response"]["s3_url"]
    prefix, key = url.split("/files/", 1)
    answer = requests.get(f"{prefix}/files/{quote(key, safe='/')}", timeout=10)
    assert answer.status_code == 200
    assert answer.content[4:8] == b"ftyp"


def test_inline_video_has_no_file_url(local_backend):
    status = make_video(local_backend, upload_to_s3=False, title="Inline")
    result = status["response"]
    assert result["s3_url"] is None
    assert base64.b64decode(result["b64_video"])[4:8] == b"ftyp"
    # A video that was not uploaded has no key, so no URL reaches it.
    created = datetime.fromisoformat(result["timestamp"])
    key = build_video_key(created, status["video_id"], "Inline")
    code, _ = raw_get(local_backend, f"/files/{key}")
    assert code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/files/../backend.sqlite3",
        "/files/..%2Fbackend.sqlite3",
        "/files/%2e%2e%2fbackend.sqlite3",
        "/files/%2E%2E/%2E%2E/etc/passwd",
        "/files/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/files//etc/passwd",
        "/files/%2Fetc%2Fpasswd",
        "/files/backend.sqlite3",
        "/files/videos/",
        "/files/",
        "/files/nothing-here.mp4",
        "/files/%00.mp4",
    ],
)
def test_file_route_rejects_other_paths(local_backend, uploaded, path):
    code, body = raw_get(local_backend, path)
    assert code == 404
    assert b"SQLite" not in body
    assert b"root:" not in body


def test_file_route_rejects_video_id_names(local_backend, uploaded):
    # Files are stored under the video id; that name is not a URL key.
    video_id = uploaded["video_id"]
    for path in (f"/files/{video_id}.mp4", f"/files/videos/{video_id}.mp4"):
        code, _ = raw_get(local_backend, path)
        assert code == 404


def test_missing_file_is_status_error(local_backend):
    status = make_video(local_backend, upload_to_s3=True, title="Doomed")
    video_id = status["video_id"]
    (local_backend.data_dir / "videos" / f"{video_id}.mp4").unlink()
    answer = requests.get(
        f"{local_backend.base_url}/v1/video/status/{video_id}",
        headers=auth(local_backend.api_key),
        timeout=10,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "status_error"
    assert body["success"] is False
    assert body["error"] == "video file missing"
    url = status["response"]["s3_url"]
    assert requests.get(url, timeout=10).status_code == 404
    # The captions are still there and still served.
    assert requests.get(url[: -len(".mp4")] + ".vtt", timeout=10).status_code == 200
