"""``opennote-video create`` against the real local backend."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_create_out_to_directory_fails_in_one_line(org_env, tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    code = main(["create", "Why ice floats", "--length", "1", "--out", str(folder)])
    captured = capsys.readouterr()
    assert code == 1
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("opennote-video create: error: ")
    assert "is a directory" in last
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "videos"]


def test_unreachable_server_fails_in_one_line(tmp_path):
    # A subprocess: pytest's log capture would hide the retry warnings that
    # Python's last-resort handler prints in a real terminal.
    env = {
        **os.environ,
        "OPENNOTE_JUPYTER_HOME": str(tmp_path / "home"),
        "OPENNOTE_API_KEY": "sk-unreachable-0123456789",
        "OPENNOTE_BASE_URL": "http://127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, "-m", "opennote_jupyter.cli", "create", "Gravity"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("opennote-video create: error: ")
    assert "ConnectionError" in lines[0]


def test_damaged_local_backend_is_one_line(tmp_path, monkeypatch, capsys):
    import opennote_jupyter.local as local

    home = tmp_path / "home"
    (home / "local-backend").mkdir(parents=True)
    (home / "local-backend" / "backend.sqlite3").write_bytes(b"garbage " * 1000)
    monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(home))
    monkeypatch.delenv("OPENNOTE_API_KEY", raising=False)
    monkeypatch.delenv("OPENNOTE_BASE_URL", raising=False)
    monkeypatch.setattr(local, "_default", None)
    code = main(["create", "Gravity", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "local backend did not start" in lines[0]
    assert "backend.sqlite3" in lines[0]
