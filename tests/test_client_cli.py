"""``opennote-video create`` against the real local backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

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


@pytest.fixture
def embedded_env(local_backend, tmp_path, monkeypatch):
    """No key and no base URL, with the session backend as this process's own."""
    import opennote_jupyter.local as local

    monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENNOTE_API_KEY", raising=False)
    monkeypatch.delenv("OPENNOTE_BASE_URL", raising=False)
    monkeypatch.setattr(local, "_default", local_backend)


@pytest.mark.parametrize("timeout", ["0", "-5", "nan", "-inf", "soon"])
def test_create_rejects_bad_timeout(org_env, tmp_path, capsys, timeout):
    with pytest.raises(SystemExit) as exited:
        main(["create", "Gravity", f"--timeout={timeout}"])
    captured = capsys.readouterr()
    assert exited.value.code == 2
    last = captured.err.strip().splitlines()[-1]
    assert "--timeout" in last
    assert timeout in last
    # argparse stopped before a client existed, so no job was created or journaled.
    assert not (tmp_path / "home").exists()


def test_whitespace_prompt_shown_exactly(org_env, capsys):
    code = main(["create", "     ", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "prompt='     '" in captured.err


def test_base_url_help_names_local_backend():
    import argparse

    from opennote_jupyter.cli import build_parser

    commands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    option = next(
        action
        for action in commands.choices["create"]._actions
        if "--base-url" in action.option_strings
    )
    assert "local backend" in option.help
    assert "OPENNOTE_API_KEY" in option.help


def test_missing_key_names_env_variable(local_backend, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENNOTE_API_KEY", raising=False)
    monkeypatch.delenv("OPENNOTE_BASE_URL", raising=False)
    code = main(["create", "Gravity", "--base-url", local_backend.base_url])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "OPENNOTE_API_KEY" in lines[0]
    assert "--base-url" in lines[0]
    assert "api_key=" not in lines[0]


def test_remote_timeout_keeps_resume_hint(org_env, capsys):
    code = main(["create", "Gravity", "--length", "1", "--timeout", "0.001"])
    captured = capsys.readouterr()
    assert code == 1
    assert "resume(" in captured.err


def test_embedded_timeout_says_job_stops(embedded_env, capsys):
    code = main(["create", "Gravity", "--length", "1", "--timeout", "0.001"])
    captured = capsys.readouterr()
    assert code == 1
    last = captured.err.strip().splitlines()[-1]
    assert "resume" not in last
    assert "stops when this command exits" in last
    assert "--timeout" in last


def test_embedded_interrupt_says_job_stops(tmp_path):
    # A real Ctrl-C: the embedded backend lives in the CLI process, so only a
    # separate process shows the message and exit code a user gets.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("OPENNOTE_API_KEY", "OPENNOTE_BASE_URL")
    }
    env["OPENNOTE_JUPYTER_HOME"] = str(tmp_path / "home")

    prompt = "Explain in detail how photosynthesis turns light into sugar"
    command = [sys.executable, "-m", "opennote_jupyter.cli", "create", prompt]
    process = subprocess.Popen(
        [*command, "--length", "5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    try:
        # On a pipe the progress bar prints a line at the first status read,
        # which comes right after the create succeeded.
        first = process.stderr.readline()
        assert "pending" in first or "rendering" in first, first
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 130, err
    assert out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("opennote-video create: error: interrupted")
    assert "resume" not in last
    assert "stops when this command exits" in last


def test_client_repr_without_key(tmp_path, monkeypatch):
    from opennote_jupyter.client import OpennoteClient

    monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENNOTE_API_KEY", raising=False)
    monkeypatch.delenv("OPENNOTE_BASE_URL", raising=False)
    text = repr(OpennoteClient())
    assert "api_key=None" in text
    assert "***" not in text


def test_client_repr_with_key_hides_it(local_backend):
    from opennote_jupyter.client import OpennoteClient

    key = local_backend.create_key(org=f"repr-{uuid.uuid4().hex[:8]}")
    text = repr(OpennoteClient(key, local_backend.base_url))
    assert "api_key='***'" in text
    assert key not in text


def test_create_on_embedded_backend_saves_mp4(
    embedded_env, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code = main(["create", "Tides rise and fall.", "--length", "1", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0
    saved = tmp_path / Path(captured.out.strip()).name
    assert saved.suffix == ".mp4"
    assert saved.read_bytes()[4:8] == b"ftyp"
    assert "/files/" not in captured.out
