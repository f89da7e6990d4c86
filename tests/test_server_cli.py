"""``opennote-video serve`` and ``keys create``, and the embedded backend helpers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from opennote_jupyter.local import start_local_backend

CLI = [sys.executable, "-m", "opennote_jupyter.cli"]
PROMPT = {"messages": [{"role": "user", "content": "What is a prime?"}], "length": 1}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keys_create(data_dir, *args):
    return subprocess.run(
        [*CLI, "keys", "create", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_create_prints_key_once(tmp_path):
    done = keys_create(tmp_path, "--org", "team", "--tier", "scale", "--credits", "5")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("onl_")
    assert len(lines[0]) > 40
    # Only the hash is stored.
    assert lines[0].encode() not in (tmp_path / "backend.sqlite3").read_bytes()


def test_keys_create_rejects_bad_tier(tmp_path):
    done = keys_create(tmp_path, "--org", "team", "--tier", "platinum")
    assert done.returncode == 2
    assert "unknown tier 'platinum'" in done.stderr
    assert done.stdout == ""
    done = keys_create(tmp_path, "--org", "team", "--tier", "enterprise")
    assert done.returncode == 2
    assert "--per-minute" in done.stderr
    assert "--per-day" in done.stderr
    assert "per_minute" not in done.stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serve_with_cli_key(tmp_path, stop_signal):
    done = keys_create(tmp_path, "--org", "team", "--tier", "developer")
    key = done.stdout.strip()
    port = free_port()
    server = subprocess.Popen(
        [
            *CLI,
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
            "--minute-seconds",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = requests.get(f"{base_url}/v1/health", timeout=1)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert health.text == "OK"
        headers = {"Authorization": f"Bearer {key}"}
        codes = [
            requests.post(
                f"{base_url}/v1/video/create", json=PROMPT, headers=headers, timeout=10
            ).status_code
            for _ in range(4)
        ]
        # The developer tier allows three creates per (shortened) minute.
        assert codes == [200, 200, 200, 429]
    finally:
        server.send_signal(stop_signal)
        try:
            log = server.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            server.kill()
            log = server.communicate()[0]
    assert server.returncode == 0, log
    assert "local backend serving http://127.0.0.1:" in log
    assert "POST /v1/video/create 429" in log
    assert "stopped" in log
    assert key not in log


def test_package_import_is_light():
    code = (
        "import sys, opennote_jupyter.local; "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'av') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_default_backend_is_shared(tmp_path):
    code = (
        "import requests\n"
        "from opennote_jupyter.local import default_backend\n"
        "first = default_backend()\n"
        "assert default_backend() is first\n"
        "print(requests.get(first.base_url + '/v1/health', timeout=5).text)\n"
        "print(first.data_dir)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"OPENNOTE_JUPYTER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    health, data_dir = done.stdout.split()
    assert health == "OK"
    assert data_dir == str(tmp_path / "local-backend")


def test_keys_credits_tops_up_running_server(tmp_path):
    backend = start_local_backend(tmp_path)
    try:
        key = backend.create_key("poor", credits=0)
        url = f"{backend.base_url}/v1/video/create"
        headers = {"Authorization": f"Bearer {key}"}
        rejected = requests.post(url, json=PROMPT, headers=headers, timeout=10)
        assert rejected.status_code == 402
        assert "keys credits --org poor" in rejected.json()["detail"]

        done = subprocess.run(
            [*CLI, "keys", "credits", "--data-dir", str(tmp_path), "--org", "poor"]
            + ["--add", "1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "poor: 1 credits"
        paid = requests.post(url, json=PROMPT, headers=headers, timeout=10)
        assert paid.status_code == 200
    finally:
        backend.stop()


def test_keys_credits_rejects_bad_input(tmp_path):
    base = [*CLI, "keys", "credits", "--data-dir", str(tmp_path)]
    unknown = subprocess.run(
        [*base, "--org", "nobody", "--add", "5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2
    assert "no organization named 'nobody'" in unknown.stderr
    negative = subprocess.run(
        [*base, "--org", "nobody", "--add", "-5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert negative.returncode == 2
    assert "--add must be positive" in negative.stderr


def test_listening_socket_is_tcp(tmp_path):
    # asyncio turns on TCP_NODELAY for accepted connections only when the
    # listening socket's proto is IPPROTO_TCP. Keep-alive clients stall without it.
    from opennote_jupyter.local.server import Backend

    backend = Backend(tmp_path)
    sock = backend.bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
        backend.runner.instance.release()
        backend.store.close()


def test_busy_port_error_names_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            start_local_backend(tmp_path, port=port)
    # The failed start left no running instance behind.
    assert list((tmp_path / "instances").iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [
        ["keys", "create", "--org", "team", "--credits", "nan"],
        ["keys", "create", "--org", "team", "--credits", "inf"],
        ["keys", "credits", "--org", "team", "--add", "inf"],
    ],
)
def test_keys_reject_non_finite_credits(tmp_path, capsys, command):
    from opennote_jupyter.cli import main

    main(["keys", "create", "--data-dir", str(tmp_path), "--org", "team"])
    capsys.readouterr()
    code = main([*command, "--data-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert "finite" in captured.err


@pytest.mark.parametrize("damage", ["a file", "not a database"])
@pytest.mark.parametrize(
    "command",
    [
        ["keys", "create", "--org", "team"],
        ["keys", "credits", "--org", "team", "--add", "1"],
        ["serve", "--port", "0"],
    ],
)
def test_unusable_data_dir_is_one_line(tmp_path, capsys, damage, command):
    from opennote_jupyter.cli import main

    data_dir = tmp_path / "data"
    if damage == "a file":
        data_dir.write_text("not a directory")
    else:
        data_dir.mkdir()
        (data_dir / "backend.sqlite3").write_bytes(b"garbage " * 1000)
    code = main([*command, "--data-dir", str(data_dir)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert str(data_dir) in lines[0]


@pytest.mark.parametrize(
    "options",
    [
        ["--port", "70000"],
        ["--port", "-1"],
        ["--log-level", "LOUD"],
        ["--host", "256.1.1.1", "--port", "0"],
    ],
)
def test_serve_bad_options_are_one_line(tmp_path, capsys, options):
    from opennote_jupyter.cli import main

    try:
        code = main(["serve", "--data-dir", str(tmp_path), *options])
    except SystemExit as exc:  # argparse's own usage error
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err
    assert captured.err.strip().splitlines()[-1].startswith("opennote-video serve")


def test_serve_busy_port_is_one_line(tmp_path, capsys):
    from opennote_jupyter.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--data-dir", str(tmp_path), "--port", str(port)])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(
        f"opennote-video serve: cannot listen on 127.0.0.1:{port}"
    )
    assert "Errno" not in lines[0]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("localhost", "http://localhost:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("", "http://127.0.0.1:8000"),
        ("::", "http://[::1]:8000"),
        ("::1", "http://[::1]:8000"),
        ("192.0.2.7", "http://192.0.2.7:8000"),
    ],
)
def test_base_url_of_wildcard_bind(host, expected):
    from opennote_jupyter.local.server import public_base_url

    assert public_base_url(host, 8000) == expected


@pytest.mark.parametrize(
    ("host", "exposed"),
    [
        ("127.0.0.1", False),
        ("127.0.0.2", False),
        ("localhost", False),
        ("::1", False),
        ("0.0.0.0", True),
        ("::", True),
        ("", True),
        ("192.0.2.7", True),
    ],
)
def test_exposure_warning_beyond_loopback(host, exposed):
    from opennote_jupyter.local.server import exposure_warning, public_base_url

    warning = exposure_warning(host, public_base_url(host, 8000))
    assert (warning is not None) == exposed
    if exposed:
        assert "beyond this machine" in warning
        assert "--host 127.0.0.1" in warning


def test_serve_ipv6_loopback_base_url(tmp_path):
    from opennote_jupyter.local.server import Backend

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"cannot bind ::1 on this machine: {exc}")
    backend = Backend(tmp_path)
    try:
        sock = backend.bind("::1", 0)
        port = sock.getsockname()[1]
        sock.close()
        assert backend.settings.base_url == f"http://[::1]:{port}"
    finally:
        backend.runner.instance.release()
        backend.store.close()
