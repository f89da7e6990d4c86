"""Execute the example notebooks in a real kernel against the embedded backend."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from opennote_jupyter.quickstart import execute_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
# Seconds for a whole notebook run; a quickstart run takes about 15 s here.
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
