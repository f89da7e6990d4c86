"""The %%opennote_video and %opennote magics through a real InteractiveShell.

Every request goes over HTTP to the real local backend; what the client sent is
read back from the client's own on-disk job journal.
"""

from __future__ import annotations

import atexit
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

from opennote_jupyter.client import OpennoteClient
from opennote_jupyter.journal import Journal
from opennote_jupyter.notebook import background, session
from opennote_jupyter.notebook.magics import OpennoteCellError
from opennote_jupyter.paths import data_home


@pytest.fixture
def env(tmp_path, monkeypatch, local_backend):
    """Isolated data home, IPython dir and working directory; the backend's key."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPENNOTE_API_KEY", local_backend.api_key)
    monkeypatch.setenv("OPENNOTE_BASE_URL", local_backend.base_url)
    for name in ("OPENNOTE_PROXY_PREFIX", "JUPYTERHUB_SERVICE_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    session.reset()
    yield tmp_path
    assert background.wait_all(60), "a background job did not finish"
    session.reset()


def new_shell() -> InteractiveShell:
    """Return a fresh InteractiveShell with the extension loaded."""
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "opennote_jupyter")
    return shell


def close_shell(shell: InteractiveShell) -> None:
    # Runs the shell's exit hooks now, while its temporary IPython dir exists,
    # and only once: IPython's second call would fail.
    shell.atexit_operations()
    atexit.unregister(shell.atexit_operations)
    InteractiveShell.clear_instance()


@pytest.fixture
def shell(env, local_backend):
    """A fresh InteractiveShell with the extension loaded and a generous tier."""
    shell = new_shell()
    # The backend key's organization allows 1000 creates a minute. The client
    # paces an unknown key at 3 a minute, so this client gets the real limits.
    session.use_client(
        OpennoteClient(
            local_backend.api_key,
            local_backend.base_url,
            tier="enterprise",
            per_minute=1000,
            per_day=100_000,
        )
    )
    yield shell
    assert background.wait_all(60), "a background job did not finish"
    session.reset()
    close_shell(shell)


def journal_requests() -> list[dict]:
    """Return the request bodies the client journaled, oldest first."""
    return [row["request"] for row in Journal(data_home() / "journal.jsonl").jobs()]


def run_cell(shell, source: str):
    with capture_output() as captured:
        result = shell.run_cell(source)
    return result, captured


def last_bundle(captured) -> dict:
    return captured.outputs[-1].data


# -- loading -------------------------------------------------------------------

LOAD_CHECK = r"""
import io, logging, sys, contextlib
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
hooks = (sys.excepthook, sys.displayhook, list(logging.getLogger().handlers),
         dict(shell.events.callbacks), shell.custom_exceptions)
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    shell.run_line_magic("load_ext", "opennote_jupyter")
after = (sys.excepthook, sys.displayhook, list(logging.getLogger().handlers),
         dict(shell.events.callbacks), shell.custom_exceptions)
heavy = ["pandas", "ipywidgets", "requests", "opennote_jupyter.local",
         "opennote_jupyter.client", "numpy"]
print(json.dumps({
    "output": out.getvalue(),
    "loaded": [name for name in heavy if name in sys.modules],
    "hooks_unchanged": hooks == after,
    "cell": shell.find_cell_magic("opennote_video") is not None,
    "line": shell.find_line_magic("opennote") is not None,
}))
"""


def test_load_ext_is_light_and_silent(tmp_path):
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    completed = subprocess.run(
        [sys.executable, "-c", "import json\n" + LOAD_CHECK],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["output"] == ""
    assert report["loaded"] == []
    assert report["hooks_unchanged"]
    assert report["cell"]
    assert report["line"]


def test_help_documents_every_option(shell):
    doc = shell.find_cell_magic("opennote_video").__doc__
    for option in (
        "--title", "--length", "--system", "--script", "--sources", "--no-sources",
        "--search", "--count", "--webhook", "--base64", "--embed", "--background",
        "--out", "--timeout",
    ):  # fmt: skip
        assert option in doc, option
    assert "-----" in doc


# -- the body and the options ----------------------------------------------------

TRICKY_BODY = (
    'Explain {braces}, $dollars and $(cmd) in f"{x!r}" strings,\n'
    "with 'single' quotes and a C:\\path\\to\\file backslash; 100% sure? {{}}"
)


def test_body_sent_exactly_as_written(shell):
    shell.user_ns["braces"] = "EXPANDED"
    shell.user_ns["dollars"] = "EXPANDED"
    shell.user_ns["topic"] = "EXPANDED"
    line = (
        "%%opennote_video --title 'Braces {topic}: $topic \"quoted\" C:\\dir' --out v"
    )
    result, _ = run_cell(shell, f"{line}\n\n{TRICKY_BODY}\n\n")
    assert result.success, result.error_in_exec
    (request,) = journal_requests()
    assert request["messages"][-1]["content"] == TRICKY_BODY
    assert request["title"] == 'Braces {topic}: $topic "quoted" C:\\dir'
    assert "script" not in request
    assert shell.user_ns["v"].success


def test_player_replaces_progress(shell):
    result, captured = run_cell(
        shell, "%%opennote_video --length 1\nWhy is the sky blue?"
    )
    assert result.success
    texts = [output.data["text/plain"] for output in captured.outputs]
    assert any("%" in text for text in texts[:-1]), texts
    final = last_bundle(captured)
    assert "<video controls" in final["text/html"]
    assert final["text/plain"].startswith("Opennote video: ")
    assert "URL: http://127.0.0.1:" in final["text/plain"]


def test_script_detected_by_separators(shell):
    body = "First part: {a}.\n-----\nSecond part, $b.\n"
    result, _ = run_cell(shell, f"%%opennote_video --length 2\n{body}")
    assert result.success
    (request,) = journal_requests()
    assert request["script"] == body.rstrip()
    assert "messages" not in request


def test_longer_dash_lines_make_a_script(shell):
    body = "First part.\n \t------ \nSecond part.\n----------\nThird part."
    result, _ = run_cell(shell, f"%%opennote_video --length 1\n{body}")
    assert result.success, result.error_in_exec
    (request,) = journal_requests()
    assert request["script"] == body
    assert "messages" not in request


def test_upper_case_webhook_scheme_accepted(shell):
    # The client's rule: the scheme is case-insensitive, as in any URL.
    result, _ = run_cell(
        shell,
        "%%opennote_video --length 1 --webhook HTTPS://127.0.0.1:9/hook\nExplain.",
    )
    assert not isinstance(result.error_in_exec, UsageError), result.error_in_exec
    (request,) = journal_requests()
    assert request["webhook_url"] == "HTTPS://127.0.0.1:9/hook"


OPTION_CASES = [
    ("--length 2", {"length": 2}),
    ("--script", {"script": "One paragraph only."}),
    (
        '--system "Answer like a patient teacher: short sentences."',
        {
            "messages": [
                {
                    "role": "system",
                    "content": "Answer like a patient teacher: short sentences.",
                },
                {"role": "user", "content": "One paragraph only."},
            ]
        },
    ),
    ("--sources", {"include_sources": True, "source_count": 3}),
    (
        '--search "fourier series: intro" --count 2',
        {
            "include_sources": True,
            "search_for": "fourier series: intro",
            "source_count": 2,
        },
    ),
    ("--count 1", {"include_sources": True, "source_count": 1}),
    ("--no-sources", {"include_sources": False}),
    ("--base64", {"upload_to_s3": False}),
]


@pytest.mark.parametrize(("options", "expected"), OPTION_CASES)
def test_option_reaches_request(shell, options, expected):
    result, _ = run_cell(
        shell, f"%%opennote_video --length 1 {options} --out v\nOne paragraph only."
    )
    assert result.success, result.error_in_exec
    (request,) = journal_requests()
    for field, value in expected.items():
        assert request.get(field) == value, (field, request)
    assert shell.user_ns["v"].video_id is not None


def test_base64_result_saved_beside_notebook(shell, env):
    result, captured = run_cell(
        shell, "%%opennote_video --length 1 --base64 --out v\nWaves."
    )
    assert result.success
    video_id = shell.user_ns["v"].video_id
    path = env / "opennote-videos" / f"{video_id}.mp4"
    assert path.stat().st_size > 1000
    bundle = last_bundle(captured)
    assert f'src="opennote-videos/{video_id}.mp4"' in bundle["text/html"]
    assert "base64" not in bundle["text/html"]
    assert f"File: {path}" in bundle["text/plain"]


def test_unsaved_base64_result_still_stored(shell, env):
    # A file where the video folder should be makes the save fail for real.
    (env / "opennote-videos").write_text("not a folder")
    result, captured = run_cell(
        shell, "%%opennote_video --length 1 --base64 --out v\nWaves."
    )
    assert result.success, result.error_in_exec
    assert shell.user_ns["v"].video_bytes()
    bundle = last_bundle(captured)
    assert "Could not save the video" in bundle["text/plain"]
    assert "Traceback" not in captured.stdout + captured.stderr


def test_embed_inlines_data_uri(shell):
    result, captured = run_cell(shell, "%%opennote_video --length 1 --embed\nWaves.")
    assert result.success
    html = last_bundle(captured)["text/html"]
    assert 'src="data:video/mp4;base64,' in html


class _WebhookReceiver(http.server.BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self):  # noqa: N802 - the http.server hook name
        length = int(self.headers.get("Content-Length", 0))
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_receives_final_status(shell):
    server = http.server.HTTPServer(("127.0.0.1", 0), _WebhookReceiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook?x=1"
        result, _ = run_cell(
            shell, f"%%opennote_video --length 1 --webhook {url} --out v\nA."
        )
        assert result.success
        (request,) = journal_requests()
        assert request["webhook_url"] == url
        video_id = shell.user_ns["v"].video_id
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _WebhookReceiver.bodies:
            time.sleep(0.1)
        assert [body["video_id"] for body in _WebhookReceiver.bodies] == [video_id]
    finally:
        server.shutdown()
        server.server_close()


# -- usage errors: one line, no request ---------------------------------------------

USAGE_CASES = [
    ("--length 9", "Explain.", "--length 9 is out of range"),
    ("--length two", "Explain.", "invalid int value"),
    ("--count 0", "Explain.", "--count 0 is out of range"),
    ("--bogus", "Explain.", "unrecognized arguments"),
    ('--title "unclosed', "Explain.", "cannot parse the options"),
    ("--no-sources --search heat", "Explain.", "drop --no-sources"),
    ("--search " + "q" * 101, "Explain.", "at most 100"),
    ("--out 1abc", "Explain.", "not a valid Python variable name"),
    ("--out class", "Explain.", "not a valid Python variable name"),
    ("--timeout 0", "Explain.", "positive number of seconds"),
    ("--timeout nan", "Explain.", "positive number of seconds"),
    ("--webhook ftp://example.org/x", "Explain.", "not an http(s) URL"),
    ("--webhook http://", "Explain.", "not an http(s) URL"),
    ("--webhook http://x:0", "Explain.", "--webhook 'http://x:0' is not an http(s)"),
    ("--webhook http://x:99999", "Explain.", "--webhook 'http://x:99999' is not"),
    ('--system " "', "Explain.", "--system is empty"),
    ("--system hi", "A\n-----\nB", "drop --system"),
    ("", "", "the cell body is empty"),
    ("", "\n   \n", "the cell body is empty"),
    ("", "-----\n\n-----\n", "the cell body is empty"),
    ("--script", "x" * 6001, "at most 6000"),
]


@pytest.mark.parametrize(("options", "body", "message"), USAGE_CASES)
def test_usage_error_sends_nothing(shell, options, body, message):
    with pytest.raises(
        UsageError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        shell.run_cell_magic("opennote_video", options, body)
    assert journal_requests() == []


def test_usage_error_fails_cell_in_one_line(shell):
    result, captured = run_cell(shell, "%%opennote_video --length 9\nExplain.")
    assert isinstance(result.error_in_exec, UsageError)
    assert not result.success
    lines = [
        line
        for line in captured.stderr.splitlines() + captured.stdout.splitlines()
        if line
    ]
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]


# -- API errors: one line, failed cell --------------------------------------


def assert_one_line_failure(result, captured, *needles):
    assert not result.success
    assert isinstance(result.error_in_exec, OpennoteCellError)
    lines = [line for line in captured.stdout.splitlines() if line.strip()]
    error_lines = [line for line in lines if line.startswith(needles[0])]
    assert len(error_lines) == 1, lines
    for needle in needles:
        assert needle in error_lines[0]
    assert "Traceback" not in captured.stdout
    assert "site-packages" not in captured.stdout
    assert result.error_in_exec._render_traceback_() == [error_lines[0]]


def test_bad_key_is_one_line_and_fails(env, monkeypatch):
    monkeypatch.setenv("OPENNOTE_API_KEY", "on_" + uuid.uuid4().hex)
    shell = new_shell()
    try:
        result, captured = run_cell(shell, "%%opennote_video\nExplain.")
        assert_one_line_failure(result, captured, "AuthenticationError", "401")
        assert os.environ["OPENNOTE_API_KEY"] not in captured.stdout
    finally:
        close_shell(shell)


def test_no_credits_is_one_line_and_fails(env, monkeypatch, local_backend):
    key = local_backend.create_key(org=f"broke-{uuid.uuid4().hex[:8]}", credits=0)
    monkeypatch.setenv("OPENNOTE_API_KEY", key)
    shell = new_shell()
    try:
        result, captured = run_cell(shell, "%%opennote_video\nExplain.")
        assert_one_line_failure(result, captured, "InsufficientCreditsError", "402")
        assert key not in captured.stdout
    finally:
        close_shell(shell)


def test_run_all_stops_at_failed_cell(shell, monkeypatch):
    session.reset()
    monkeypatch.setenv("OPENNOTE_API_KEY", "on_" + uuid.uuid4().hex)
    result, _ = run_cell(shell, "%%opennote_video\nExplain.")
    assert result.error_in_exec is not None
    assert result.error_before_exec is None


def test_timeout_names_resume_command(shell):
    # Forty sentences in five sections take seconds to render, far past 0.05 s
    # even when a loaded machine slows the first status read.
    body = " ".join(f"Sentence number {n} of a longer one." for n in range(40))
    result, captured = run_cell(
        shell, f"%%opennote_video --length 5 --timeout 0.05\n{body}"
    )
    assert not result.success
    (line,) = result.error_in_exec._render_traceback_()
    video_id = Journal(data_home() / "journal.jsonl").jobs()[0]["video_id"]
    assert f"%opennote resume {video_id}" in line
    assert "keeps rendering" in line


def test_interrupt_while_sending_then_rerun_makes_one_video(env, tmp_path):
    from opennote_jupyter.local import start_local_backend

    # Four-second rate windows, so the fourth create waits for pacing briefly.
    backend = start_local_backend(tmp_path / "paced", minute_seconds=4)
    key = backend.create_key(org=f"paced-{uuid.uuid4().hex[:8]}")
    shell = new_shell()
    try:
        client = OpennoteClient(key, backend.base_url, pacing_windows=(4, 86400))
        session.use_client(client)
        for number in range(3):
            client.create(f"Filler {number}.", length=1)
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        cell = "%%opennote_video --length 1\nThe fourth one."
        result, _ = run_cell(shell, cell)
        (line,) = result.error_in_exec._render_traceback_()
        assert "Run the cell again" in line
        result, _ = run_cell(shell, cell)
        assert result.success, result.error_in_exec
        rows = Journal(data_home() / "journal.jsonl").jobs()
        fourth = [row for row in rows if "fourth" in json.dumps(row["request"])]
        assert [row["status"] for row in fourth] == ["completed"]
    finally:
        session.reset()
        close_shell(shell)
        backend.stop()


def test_interrupt_stops_wait_not_job(shell, local_backend):
    journal = Journal(data_home() / "journal.jsonl")

    def interrupt_once_created():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = journal.jobs() if journal.path.exists() else []
            if rows and rows[0]["video_id"]:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.02)

    threading.Thread(target=interrupt_once_created, daemon=True).start()
    result, _ = run_cell(shell, "%%opennote_video --length 5\nA longer one.")
    assert isinstance(result.error_in_exec, OpennoteCellError)
    video_id = journal.jobs()[0]["video_id"]
    (line,) = result.error_in_exec._render_traceback_()
    assert f"%opennote resume {video_id}" in line
    # The job goes on: resuming it plays the video.
    result, captured = run_cell(shell, f"%opennote resume {video_id}")
    assert result.success, result.error_in_exec
    assert "<video controls" in last_bundle(captured)["text/html"]


# -- background ----------------------------------------------------------------------


def test_background_returns_at_once(shell):
    with capture_output() as captured:
        started = time.monotonic()
        result = shell.run_cell(
            "%%opennote_video --background --length 2 --out v\nTides."
        )
        returned_after = time.monotonic() - started
        still_running = bool(background.running())
        assert background.wait_all(60)
    assert result.success
    assert still_running, f"the cell blocked for {returned_after:.2f} s"
    assert "v" in shell.user_ns
    final = captured.outputs[-1].data
    assert "<video controls" in final["text/html"]
    assert shell.user_ns["v"].s3_url in final["text/plain"]


def test_background_error_shown_in_output(shell, monkeypatch):
    session.reset()
    monkeypatch.setenv("OPENNOTE_API_KEY", "on_" + uuid.uuid4().hex)
    with capture_output() as captured:
        result = shell.run_cell("%%opennote_video --background\nTides.")
        assert background.wait_all(30)
    assert result.success
    assert "AuthenticationError" in captured.outputs[-1].data["text/plain"]


# -- %opennote ------------------------------------------------------------------------


def test_line_magic_usage_errors(shell):
    for line in ("", "bogus", "resume", "resume a b", "status now"):
        with pytest.raises(UsageError):
            shell.run_line_magic("opennote", line)


def test_login_keeps_key_in_memory(env, monkeypatch, local_backend):
    import getpass

    session.reset()
    monkeypatch.delenv("OPENNOTE_API_KEY")
    # Stands in for the user typing the key at the prompt.
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": local_backend.api_key)
    shell = new_shell()
    try:
        with capture_output() as captured:
            shell.run_line_magic("opennote", "login")
        assert "memory only" in captured.stdout
        assert local_backend.api_key not in captured.stdout
        result, captured = run_cell(shell, "%%opennote_video --length 1\nLogged in.")
        assert result.success, result.error_in_exec
        home = data_home()
        for path in home.rglob("*"):
            if path.is_file():
                assert local_backend.api_key not in path.read_text(errors="replace")
        with capture_output() as captured:
            shell.run_line_magic("opennote", "status")
        assert "Key: %opennote login" in captured.stdout
    finally:
        close_shell(shell)


def test_login_with_key_argument_hides_it(shell):
    key = "on_" + uuid.uuid4().hex
    with pytest.raises(UsageError) as raised:
        shell.run_line_magic("opennote", f"login {key}")
    assert key not in str(raised.value)
    assert "prompts for the key" in str(raised.value)


def test_login_while_own_client_in_use_says_so(shell, monkeypatch, local_backend):
    import getpass

    # The shell fixture gave the kernel its own client with use_client.
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": local_backend.api_key)
    with capture_output() as captured:
        shell.run_line_magic("opennote", "login")
    assert "use_client" in captured.stdout
    assert local_backend.api_key not in captured.stdout
    with capture_output() as captured:
        shell.run_line_magic("opennote", "status")
    assert "Key: the client given to use_client" in captured.stdout


def test_login_without_stdin_explains_env(shell, monkeypatch):
    import getpass

    from IPython.core.error import StdinNotImplementedError

    def no_stdin(prompt=""):
        # What ipykernel raises when the front end does not allow input requests.
        raise StdinNotImplementedError("this frontend does not support input requests")

    monkeypatch.setattr(getpass, "getpass", no_stdin)
    with pytest.raises(OpennoteCellError, match="OPENNOTE_API_KEY"):
        shell.run_line_magic("opennote", "login")


def test_status_reports_backend_tier_quota(shell, local_backend):
    run_cell(shell, "%%opennote_video --length 1\nOne.")
    with capture_output() as captured:
        shell.run_line_magic("opennote", "status")
    text = captured.stdout
    assert f"Backend: Opennote API at {local_backend.base_url}" in text
    assert "Tier: enterprise (1000 per minute, 100000 per day)" in text
    assert "Quota left today: 99999 of 100000" in text


def test_status_says_default_tier_is_assumed(env):
    shell = new_shell()
    try:
        with capture_output() as captured:
            shell.run_line_magic("opennote", "status")
    finally:
        close_shell(shell)
    tier_line = next(
        line for line in captured.stdout.splitlines() if line.startswith("Tier:")
    )
    assert tier_line.startswith("Tier: developer (3 per minute, 50 per day)")
    assert "assumed" in tier_line
    assert "use_client" in tier_line


def test_jobs_returns_dataframe(shell):
    run_cell(shell, "%%opennote_video --length 1 --title Listed\nOne.")
    frame = shell.run_line_magic("opennote", "jobs")
    assert list(frame["requested_title"]) == ["Listed"]
    assert list(frame["status"]) == ["completed"]


def test_form_subcommand_returns_form(shell):
    from opennote_jupyter import VideoForm

    assert isinstance(shell.run_line_magic("opennote", "form"), VideoForm)


def test_resume_unknown_id_is_one_line(shell):
    missing = str(uuid.uuid4())
    result, captured = run_cell(shell, f"%opennote resume {missing}")
    assert isinstance(result.error_in_exec, OpennoteCellError)
    (line,) = result.error_in_exec._render_traceback_()
    assert missing in line
    assert "Traceback" not in captured.stdout


def test_failed_video_is_one_line(shell, local_backend):
    result, _ = run_cell(shell, "%%opennote_video --length 1 --out v\nDoomed.")
    video_id = shell.user_ns["v"].video_id
    # The server reports status_error for a finished job whose mp4 is gone.
    (local_backend.data_dir / "videos" / f"{video_id}.mp4").unlink()
    result, captured = run_cell(shell, f"%opennote resume {video_id}")
    assert_one_line_failure(result, captured, "VideoFailedError", video_id)
