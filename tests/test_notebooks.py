"""Execute the example notebooks in a real kernel against the embedded backend."""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from opennote_jupyter.quickstart import (
    check_output_dir,
    execute_notebook,
    new_videos,
    snapshot_videos,
)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
# Seconds for a whole notebook run; a quickstart run took about 6 s on 2 cores.
RUN_TIMEOUT = 300


def notebook_env(tmp_dir: Path) -> dict[str, str]:
    """Return an environment that sends the notebooks to a fresh embedded backend."""
    env = dict(os.environ)
    for name in (
        "OPENNOTE_API_KEY",
        "OPENNOTE_BASE_URL",
        "JUPYTERHUB_SERVICE_PREFIX",
        "OPENNOTE_PROXY_PREFIX",
    ):
        env.pop(name, None)
    home = tmp_dir / "opennote-home"
    ipython_dir = tmp_dir / "ipython"
    home.mkdir(exist_ok=True)
    ipython_dir.mkdir(exist_ok=True)
    env["OPENNOTE_JUPYTER_HOME"] = str(home)
    env["IPYTHONDIR"] = str(ipython_dir)
    return env


def error_outputs(notebook) -> list[str]:
    errors = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(
                    f"cell {index}: {output.get('ename')}: {output.get('evalue')}"
                )
            elif output.get("name") == "stderr" and "Traceback" in output.get(
                "text", ""
            ):
                errors.append(f"cell {index} stderr: {output['text'][-500:]}")
    return errors


def outputs_of_type(notebook, mime: str) -> list:
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if mime in data:
                found.append(data[mime])
    return found


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    """Run the README's first command, ``python -m opennote_jupyter.quickstart``."""
    work_dir = tmp_path_factory.mktemp("quickstart")
    output_dir = work_dir / "quickstart-output"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "opennote_jupyter.quickstart",
            "--output",
            str(output_dir),
        ],
        cwd=work_dir,
        env=notebook_env(work_dir),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    return completed, output_dir


def test_quickstart_runner_succeeds(quickstart_run):
    completed, output_dir = quickstart_run
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert f"HTML page:         {output_dir / 'quickstart.html'}" in completed.stdout
    assert (output_dir / "quickstart.html").is_file()
    assert (output_dir / "quickstart.ipynb").is_file()


def test_quickstart_runner_leaves_playable_mp4(quickstart_run):
    completed, output_dir = quickstart_run
    videos = sorted(output_dir.rglob("*.mp4"))
    assert len(videos) == 1, f"expected one mp4 under {output_dir}, found {videos}"
    video = videos[0]
    assert f"Video:             {video}" in completed.stdout

    import av

    with av.open(str(video)) as container:
        assert container.streams.video, "the mp4 has no video stream"
        assert container.streams.audio, "the mp4 has no narration"
        assert container.duration is not None and container.duration > 0


def test_quickstart_notebook_has_player_and_table(quickstart_run):
    _, output_dir = quickstart_run
    notebook = nbformat.read(output_dir / "quickstart.ipynb", as_version=4)
    assert not error_outputs(notebook), error_outputs(notebook)

    players = [
        text for text in outputs_of_type(notebook, "text/html") if "<video" in text
    ]
    assert len(players) == 1, "the quickstart should show exactly one player"
    plain = [
        text
        for text in outputs_of_type(notebook, "text/plain")
        if text.startswith("Opennote video: ")
    ]
    assert plain, "the player has no text/plain form"

    tables = [
        text for text in outputs_of_type(notebook, "text/html") if "<table" in text
    ]
    assert tables, "the quickstart shows no URL metadata table"
    assert "8159b304-0462-4273-a89d-8bc9bdde926b" in tables[0]
    assert "Multi-Modal AI for Enhanced Wildfire" in tables[0]


def test_quickstart_html_shows_title_and_link(quickstart_run):
    """The nbconvert page, read as static HTML, names the video and links to it."""
    _, output_dir = quickstart_run
    page = (output_dir / "quickstart.html").read_text(encoding="utf-8")
    notebook = nbformat.read(output_dir / "quickstart.ipynb", as_version=4)
    plain = [
        text
        for text in outputs_of_type(notebook, "text/plain")
        if text.startswith("Opennote video: ")
    ]
    title = plain[0].splitlines()[0].removeprefix("Opennote video: ")
    assert title == "How a rainbow forms"

    assert "Opennote quickstart" in page
    assert html.escape(title) in page, f"the page lacks the title {title!r}"
    links = re.findall(r'<a [^>]*href="([^"]+\.mp4)"', page)
    assert links, "the page has no link to an mp4"
    for link in links:
        assert not link.startswith(("http://", "https://")), (
            f"the page links to {link}, which does not outlive the run"
        )
        assert (output_dir / link).is_file(), f"the page links to {link}, not on disk"
    sources = re.findall(r'<video[^>]* src="([^"]+)"', page)
    assert sources and all((output_dir / src).is_file() for src in sources), sources


def test_widget_form_notebook_executes(tmp_path):
    notebook = execute_notebook(
        NOTEBOOK_DIR / "widget_form.ipynb",
        cwd=tmp_path,
        env=notebook_env(tmp_path),
        timeout=RUN_TIMEOUT,
    )
    assert not error_outputs(notebook), error_outputs(notebook)
    views = outputs_of_type(notebook, "application/vnd.jupyter.widget-view+json")
    assert views, "the widget form notebook displays no widget"
    status = "".join(
        "".join(output.get("text", "") for output in cell.get("outputs", []))
        for cell in notebook.cells
    )
    assert "embedded local backend" in status, status


def test_analyze_video_sets_notebook_executes(tmp_path):
    notebook = execute_notebook(
        NOTEBOOK_DIR / "analyze_video_sets.ipynb",
        cwd=tmp_path,
        env=notebook_env(tmp_path),
        timeout=RUN_TIMEOUT,
    )
    assert not error_outputs(notebook), error_outputs(notebook)
    tables = [
        text for text in outputs_of_type(notebook, "text/html") if "<table" in text
    ]
    assert tables, "the notebook shows no table"


def test_quickstart_runner_reports_failed_cell(tmp_path):
    broken = tmp_path / "broken.ipynb"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("1 / 0")]
    nbformat.write(notebook, broken)
    output_dir = tmp_path / "out"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "opennote_jupyter.quickstart",
            "--notebook",
            str(broken),
            "--output",
            str(output_dir),
        ],
        cwd=tmp_path,
        env=notebook_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 1
    assert "error: the quickstart notebook failed" in completed.stderr
    assert "ZeroDivisionError" in completed.stderr
    assert "\x1b[" not in completed.stderr, "colour codes leaked into the message"
    assert "HTML page" not in completed.stdout


def run_quickstart_command(
    args: list[str], cwd: Path, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opennote_jupyter.quickstart", *args],
        cwd=cwd,
        env=notebook_env(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_quickstart_output_under_file_fails_early(tmp_path):
    """An output path under a regular file is rejected before a kernel starts."""
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory\n", encoding="utf-8")
    output_dir = blocker / "out"
    completed = run_quickstart_command(["--output", str(output_dir)], tmp_path)

    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert str(output_dir) in lines[0]
    assert "--output" in lines[0]
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root writes into a mode 0o555 directory, so it cannot be read-only here",
)
def test_quickstart_read_only_output_fails_early(tmp_path):
    output_dir = tmp_path / "read-only"
    output_dir.mkdir()
    output_dir.chmod(0o555)
    try:
        completed = run_quickstart_command(["--output", str(output_dir)], tmp_path)
    finally:
        output_dir.chmod(0o755)
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert str(output_dir) in lines[0]
    assert "--output" in lines[0]
    assert "notebook failed" not in completed.stderr


def test_output_dir_check_creates_missing_dir(tmp_path):
    output_dir = tmp_path / "new" / "out"
    check_output_dir(output_dir)
    assert output_dir.is_dir()
    assert list(output_dir.iterdir()) == [], "the write probe was left behind"


SLOW_CELL = """\
import os, pathlib, time
pathlib.Path("kernel.pid").write_text(str(os.getpid()))
time.sleep(120)
"""


def test_quickstart_interrupt_exits_130(tmp_path):
    """SIGINT after the kernel started: one line, exit 130, kernel shut down."""
    slow = write_notebook(tmp_path / "slow.ipynb", SLOW_CELL)
    output_dir = tmp_path / "out"
    pid_file = output_dir / "kernel.pid"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opennote_jupyter.quickstart",
            "--notebook",
            str(slow),
            "--output",
            str(output_dir),
        ],
        cwd=tmp_path,
        env=notebook_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not pid_file.is_file() or not pid_file.read_text():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the kernel never ran the cell"
            time.sleep(0.1)
        kernel_pid = int(pid_file.read_text())
        # A terminal's Ctrl-C reaches the runner only: the kernel runs in a
        # session of its own.
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "interrupted" in lines[0]
    assert "Traceback" not in stderr
    assert stdout == ""
    assert not (output_dir / "quickstart.html").exists()
    try:
        os.kill(kernel_pid, 0)
    except ProcessLookupError:
        pass
    else:
        os.kill(kernel_pid, signal.SIGKILL)
        pytest.fail(f"the kernel (pid {kernel_pid}) still runs after the interrupt")


def test_new_videos_ignores_earlier_runs(tmp_path):
    videos_dir = tmp_path / "opennote-videos"
    videos_dir.mkdir()
    old = videos_dir / "old.mp4"
    old.write_bytes(b"old")
    before = snapshot_videos(tmp_path)
    assert new_videos(tmp_path, before) == []

    fresh = videos_dir / "fresh.mp4"
    fresh.write_bytes(b"fresh")
    assert new_videos(tmp_path, before) == [fresh]


def test_new_videos_counts_rewritten_file(tmp_path):
    video = tmp_path / "same.mp4"
    video.write_bytes(b"first")
    before = snapshot_videos(tmp_path)
    stamp = video.stat().st_mtime_ns
    video.write_bytes(b"second run")
    os.utime(video, ns=(stamp + 10**9, stamp + 10**9))
    assert new_videos(tmp_path, before) == [video]


def write_notebook(path: Path, source: str) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(notebook, path)
    return path


def test_quickstart_prints_only_this_runs_video(tmp_path):
    """An earlier run's mp4 is neither listed nor taken as this run's video."""
    output_dir = tmp_path / "out"
    videos_dir = output_dir / "opennote-videos"
    videos_dir.mkdir(parents=True)
    earlier = videos_dir / "earlier.mp4"
    earlier.write_bytes(b"an earlier run's video")
    writes_mp4 = write_notebook(
        tmp_path / "writes.ipynb",
        'import pathlib\npathlib.Path("opennote-videos/new.mp4").write_bytes(b"new")',
    )
    writes_nothing = write_notebook(tmp_path / "nothing.ipynb", "1 + 1")

    completed = run_quickstart_command(
        ["--notebook", str(writes_mp4), "--output", str(output_dir)], tmp_path
    )
    assert completed.returncode == 0, completed.stderr
    video_lines = [
        line for line in completed.stdout.splitlines() if line.startswith("Video:")
    ]
    assert video_lines == [f"Video:             {videos_dir / 'new.mp4'}"]

    completed = run_quickstart_command(
        ["--notebook", str(writes_nothing), "--output", str(output_dir)], tmp_path
    )
    assert completed.returncode == 1
    assert "wrote no new mp4" in completed.stderr
    assert "Video:" not in completed.stdout
