"""``opennote-video create`` against the real local backend."""

from __future__ import annotations

import uuid

import pytest

from opennote_jupyter.cli import main


@pytest.fixture
def org_env(local_backend, tmp_path, monkeypatch):
    key = local_backend.create_key(org=f"cli-{uuid.uuid4().hex[:8]}", credits=50.0)
    monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPENNOTE_API_KEY", key)
    monkeypatch.setenv("OPENNOTE_BASE_URL", local_backend.base_url)
    return key


def test_create_saves_mp4(org_env, tmp_path, capsys):
    out = tmp_path / "video.mp4"
    code = main(
        [
            "create",
            "Why ice floats",
            "--title",
            "Ice",
            "--length",
            "1",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip() == str(out)
    assert out.read_bytes()[4:8] == b"ftyp"
    assert "100.0% completed" in captured.err


def test_create_prints_url_from_script(org_env, local_backend, tmp_path, capsys):
    script = tmp_path / "script.txt"
    script.write_text("Water expands.\n-----\nSo ice floats.\n", encoding="utf-8")
    code = main(["create", "--script", str(script), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip().startswith(local_backend.base_url + "/files/")
    assert captured.err == ""


def test_create_failure_is_one_line(org_env, monkeypatch, capsys):
    monkeypatch.setenv("OPENNOTE_API_KEY", "on-not-a-valid-key-42")
    code = main(["create", "Gravity", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("opennote-video create: error: ")
    assert "401" in lines[0]
    assert "on-not-a-valid-key-42" not in captured.err


def test_create_rejects_bad_length(org_env, capsys):
    code = main(["create", "Gravity", "--length", "7", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "length=7" in captured.err
    assert "from 1 to 5" in captured.err


def test_create_needs_prompt_or_script(org_env, capsys):
    code = main(["create"])
    assert code == 2
    assert "pass a prompt or --script" in capsys.readouterr().err
