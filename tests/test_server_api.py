"""The local backend's HTTP contract: health, auth, validation, credits, status."""

from __future__ import annotations

import http.client
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from opennote_jupyter.contract import FINAL_STATUSES
from opennote_jupyter.local import start_local_backend

PROMPT = {
    "messages": [{"role": "user", "content": "Why is the sky blue?"}],
    "length": 1,
}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create(backend, key, body, **headers):
    return requests.post(
        f"{backend.base_url}/v1/video/create",
        json=body,
        headers={**auth(key), **headers},
        timeout=10,
    )


def status(backend, key, video_id):
    return requests.get(
        f"{backend.base_url}/v1/video/status/{video_id}", headers=auth(key), timeout=10
    )


def wait_final(backend, key, video_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = status(backend, key, video_id).json()
        if body["status"] in FINAL_STATUSES:
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {video_id} still pending after {timeout} s")


def new_org(backend, **kwargs) -> str:
    return backend.create_key(org=f"org-{uuid.uuid4().hex[:8]}", **kwargs)


def test_health_is_plain_ok(local_backend):
    answer = requests.get(f"{local_backend.base_url}/v1/health", timeout=10)
    assert answer.status_code == 200
    assert answer.text == "OK"
    assert answer.headers["content-type"].startswith("text/plain")


def test_create_and_status_fields(local_backend):
    key = new_org(local_backend, credits=10)
    answer = create(local_backend, key, PROMPT)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"success", "message", "video_id"}
    assert body["success"] is True
    assert str(uuid.UUID(body["video_id"])) == body["video_id"]

    first = status(local_backend, key, body["video_id"])
    assert first.status_code == 200
    assert set(first.json()) == {
        "success",
        "status",
        "message",
        "completion_percentage",
        "video_id",
        "response",
        "error",
    }
    final = wait_final(local_backend, key, body["video_id"])
    assert final["status"] == "completed", final
    assert final["success"] is True
    assert final["completion_percentage"] == 100.0
    assert final["error"] is None
    result = final["response"]
    assert set(result) == {
        "success",
        "error",
        "s3_url",
        "b64_video",
        "title",
        "transcript",
        "sources",
        "cost",
        "model",
        "timestamp",
    }
    assert result["model"] == "picasso"
    assert result["cost"] == 1.0
    # upload_to_s3 defaults to false: the video comes inline.
    assert result["s3_url"] is None
    assert result["b64_video"]
    assert result["transcript"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer onl_not-a-real-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "unknown", "basic-scheme", "empty"],
)
def test_bad_key_is_401(local_backend, headers):
    for answer in (
        requests.post(
            f"{local_backend.base_url}/v1/video/create",
            json=PROMPT,
            headers=headers,
            timeout=10,
        ),
        requests.get(
            f"{local_backend.base_url}/v1/video/status/{uuid.uuid4()}",
            headers=headers,
            timeout=10,
        ),
    ):
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "API key" in answer.json()["detail"]


def test_auth_checked_before_body(local_backend):
    answer = requests.post(
        f"{local_backend.base_url}/v1/video/create", json={"length": 99}, timeout=10
    )
    assert answer.status_code == 401


LONG = "x" * 101
INVALID_BODIES = [
    ({**PROMPT, "length": 0}, ["body", "length"], "greater_than_equal"),
    ({**PROMPT, "length": 6}, ["body", "length"], "less_than_equal"),
    ({**PROMPT, "source_count": 0}, ["body", "source_count"], "greater_than_equal"),
    ({**PROMPT, "source_count": 6}, ["body", "source_count"], "less_than_equal"),
    ({**PROMPT, "search_for": LONG}, ["body", "search_for"], "string_too_long"),
    ({**PROMPT, "search_for": " \t "}, ["body", "search_for"], "value_error"),
    ({"script": "y" * 6001}, ["body", "script"], "string_too_long"),
    ({"script": "  \n "}, ["body", "script"], "value_error"),
    (
        {"messages": [{"role": "bot", "content": "hi"}]},
        ["body", "messages", 0, "role"],
        "literal_error",
    ),
    (
        {"messages": [{"role": "user", "content": "  "}]},
        ["body", "messages", 0, "content"],
        "value_error",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": "Explain tides"},
                {"role": "assistant", "content": "Sure"},
            ]
        },
        ["body", "messages"],
        "value_error",
    ),
    ({"messages": []}, ["body", "messages"], "value_error"),
    (
        {
            "messages": [
                {"role": "assistant", "content": "Ask me"},
                {"role": "system", "content": "Be brief"},
                {"role": "user", "content": "Explain tides"},
            ]
        },
        ["body", "messages"],
        "value_error",
    ),
    ({}, ["body"], "value_error"),
    ({"title": "no prompt"}, ["body"], "value_error"),
    ({**PROMPT, "model": "feynman"}, ["body", "model"], "literal_error"),
    ({**PROMPT, "webhook_url": "ftp://127.0.0.1/x"}, ["body", "webhook_url"], None),
    ({**PROMPT, "webhook_url": "file:///etc/passwd"}, ["body", "webhook_url"], None),
    ({**PROMPT, "webhook_url": "http://"}, ["body", "webhook_url"], None),
    (
        {**PROMPT, "webhook_url": "http://127.0.0.1:99999/"},
        ["body", "webhook_url"],
        None,
    ),
    ({**PROMPT, "length": "three"}, ["body", "length"], "int_parsing"),
]


@pytest.mark.parametrize(("body", "loc", "error_type"), INVALID_BODIES)
def test_invalid_body_is_422(local_backend, body, loc, error_type):
    answer = create(local_backend, local_backend.api_key, body)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    for item in detail:
        assert {"loc", "msg", "type"} <= set(item)
    assert [item["loc"] for item in detail] == [loc]
    if error_type is not None:
        assert detail[0]["type"] == error_type


def test_malformed_json_is_422(local_backend):
    answer = requests.post(
        f"{local_backend.base_url}/v1/video/create",
        data=b'{"messages": [',
        headers={**auth(local_backend.api_key), "Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["type"] == "json_invalid"


def test_boundary_values_accepted(tmp_path):
    # A backend of its own, because a 6000-character script takes a while to
    # render; stopping the backend aborts that render instead of queueing
    # the shared backend's later jobs behind it.
    backend = start_local_backend(tmp_path)
    try:
        _check_boundary_values(backend)
    finally:
        backend.stop()


def _check_boundary_values(local_backend):
    key = new_org(local_backend, tier="scale", credits=100)
    bodies = [
        {**PROMPT, "length": 5, "source_count": 5, "search_for": "s" * 100},
        {"script": "z" * 6000, "length": 1},
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Tides"},
                {"role": "assistant", "content": "Which part?"},
                {"role": "user", "content": "Spring tides"},
            ],
            "length": 1,
            "source_count": 1,
        },
    ]
    for body in bodies:
        answer = create(local_backend, key, body)
        assert answer.status_code == 200, answer.text


def test_oversized_body_is_413(local_backend):
    big = {"messages": [{"role": "user", "content": "a" * (260 * 1024)}]}
    answer = create(local_backend, local_backend.api_key, big)
    assert answer.status_code == 413
    assert "262144" in answer.json()["detail"]


def test_escaped_full_script_fits(local_backend):
    # 6000 characters outside the BMP: 72,000 bytes once JSON-escaped.
    key = new_org(local_backend, credits=0)
    answer = create(local_backend, key, {"script": "\U0001f600" * 6000})
    assert len(answer.request.body) > 70_000
    # Read and validated, then rejected only for want of credits.
    assert answer.status_code == 402


def test_oversized_chunked_body_is_413(local_backend):
    # A generator body goes out chunked, without Content-Length.
    def chunks():
        yield b'{"script": "'
        for _ in range(300):
            yield b"b" * 1024
        yield b'"}'

    answer = requests.post(
        f"{local_backend.base_url}/v1/video/create",
        data=chunks(),
        headers={**auth(local_backend.api_key), "Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 413


def test_unpaid_create_is_402_and_creates_nothing(local_backend):
    key = new_org(local_backend, credits=2)
    # Three sentences make three sections, so a length of 3 costs 3 credits.
    three = "Why is the sky blue? Sunlight scatters in air. Blue light scatters most."
    body = {"messages": [{"role": "user", "content": three}]}
    answer = create(local_backend, key, {**body, "length": 3})
    assert answer.status_code == 402
    assert "credits" in answer.json()["detail"]
    # Nothing was spent: a two-credit video still fits.
    answer = create(local_backend, key, {**body, "length": 2})
    assert answer.status_code == 200
    final = wait_final(local_backend, key, answer.json()["video_id"])
    assert final["response"]["cost"] == 2.0
    answer = create(local_backend, key, {**PROMPT, "length": 1})
    assert answer.status_code == 402


def test_script_costs_one_credit_per_section(local_backend):
    key = new_org(local_backend, credits=3)
    script = "Waves carry energy.\n-----\nTides follow the moon.\n-----\nSurf breaks."
    answer = create(local_backend, key, {"script": script, "length": 1})
    assert answer.status_code == 200
    assert create(local_backend, key, {**PROMPT, "length": 1}).status_code == 402


def test_script_costs_the_sections_the_renderer_narrates(local_backend):
    # Longer and indented dash lines separate sections too; an empty one is free.
    key = new_org(local_backend, credits=4)
    script = "Waves.\n------\nTides.\n \t---------- \n\n-----\nSurf.\r\n-----\r\nFoam."
    answer = create(local_backend, key, {"script": script, "length": 1})
    assert answer.status_code == 200
    assert create(local_backend, key, {**PROMPT, "length": 1}).status_code == 402


def test_empty_script_sections_cost_nothing(local_backend):
    key = new_org(local_backend, credits=2)
    script = "Waves.\n-----\n\n-----\n   \n-----\nTides."
    answer = create(local_backend, key, {"script": script, "length": 1})
    assert answer.status_code == 200


def test_status_unknown_id_is_404(local_backend):
    answer = status(local_backend, local_backend.api_key, uuid.uuid4())
    assert answer.status_code == 404
    assert "video_id" in answer.json()["detail"]


def test_status_of_other_org_is_404(local_backend):
    owner = new_org(local_backend)
    stranger = new_org(local_backend)
    video_id = create(local_backend, owner, PROMPT).json()["video_id"]
    assert status(local_backend, owner, video_id).status_code == 200
    assert status(local_backend, stranger, video_id).status_code == 404


def test_sources_without_web(local_backend):
    body = {**PROMPT, "include_sources": True, "search_for": "Rayleigh scattering"}
    video_id = create(local_backend, local_backend.api_key, body).json()["video_id"]
    final = wait_final(local_backend, local_backend.api_key, video_id)
    assert final["status"] == "completed"
    assert final["response"]["sources"] == []
    assert "no web access" in final["message"]


def test_access_log_has_no_key(local_backend, caplog):
    key = new_org(local_backend)
    with caplog.at_level("INFO", logger="opennote_jupyter.local"):
        create(local_backend, key, PROMPT)
        status(local_backend, key, uuid.uuid4())
        time.sleep(0.2)
    lines = [record.getMessage() for record in caplog.records]
    assert any("POST /v1/video/create 200" in line for line in lines)
    assert any("GET /v1/video/status/" in line and " 404 " in line for line in lines)
    assert not any(key in line for line in lines)


def test_raw_http_client(local_backend):
    # A plain HTTP/1.1 client without requests gets the same response.
    parts = urlsplit(local_backend.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", "/v1/health")
    answer = connection.getresponse()
    assert answer.status == 200
    assert answer.read() == b"OK"
    connection.close()


def test_prompt_costs_the_sections_it_makes(local_backend):
    # One sentence makes one section whatever the requested length.
    key = new_org(local_backend, credits=10)
    body = {"messages": [{"role": "user", "content": "Only one sentence here."}]}
    answer = create(local_backend, key, {**body, "length": 3})
    assert answer.status_code == 200
    final = wait_final(local_backend, key, answer.json()["video_id"])
    assert final["response"]["cost"] == 1.0
    assert "1 section(s) instead of 3" in final["message"]
