"""The magics in a real ipykernel, executed through nbclient like "Run All".

Checks that progress and player updates sent from the background thread reach the
front end (here nbclient, which applies ``update_display_data`` by display id), and
that a failed request stops the run.
"""

from __future__ import annotations

import uuid

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def make_notebook(*sources: str) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return notebook


def run(notebook: nbformat.NotebookNode, cwd) -> None:
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    ).execute()


@pytest.fixture
def kernel_env(tmp_path, monkeypatch, local_backend):
    """The kernel inherits these: the backend's key, an isolated data home."""
    monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPENNOTE_API_KEY", local_backend.api_key)
    monkeypatch.setenv("OPENNOTE_BASE_URL", local_backend.base_url)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    for name in ("OPENNOTE_PROXY_PREFIX", "JUPYTERHUB_SERVICE_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def display_outputs(cell) -> list[dict]:
    return [output for output in cell.outputs if output.output_type == "display_data"]


def test_background_player_reaches_notebook(kernel_env):
    notebook = make_notebook(
        "%load_ext opennote_jupyter",
        "%%opennote_video --background --length 2 --out video\nWhy do tides happen?",
        # Runs while the video renders; the player arrives during this cell.
        "import time\n"
        "for _ in range(600):\n"
        "    if 'video' in globals():\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "print(video.video_id)",
    )
    run(notebook, kernel_env)
    (player,) = display_outputs(notebook.cells[1])
    assert "<video controls" in player.data["text/html"]
    video_id = notebook.cells[2].outputs[0].text.strip()
    assert f"Video id: {video_id}" in player.data["text/plain"]
    assert "%" not in player.data["text/plain"].splitlines()[0]


def test_foreground_player_and_failed_cell_stops_run(kernel_env):
    notebook = make_notebook(
        "%load_ext opennote_jupyter",
        "%%opennote_video --length 1\nWhy is the sky blue?",
        "import os\nos.environ['OPENNOTE_API_KEY'] = 'on_' + 'x' * 32",
        "%%opennote_video\nThis one fails.",
        "print('not reached')",
    )
    with pytest.raises(CellExecutionError):
        run(notebook, kernel_env)
    (player,) = display_outputs(notebook.cells[1])
    assert "<video controls" in player.data["text/html"]
    errors = [o for o in notebook.cells[3].outputs if o.output_type == "error"]
    assert len(errors) == 1
    assert len(errors[0].traceback) == 1
    assert "AuthenticationError" in errors[0].traceback[0]
    assert notebook.cells[4].outputs == []


def test_usage_error_in_kernel_is_one_line(kernel_env):
    notebook = make_notebook(
        "%load_ext opennote_jupyter",
        f"%%opennote_video --length 9 --title {uuid.uuid4().hex}\nExplain.",
    )
    with pytest.raises(CellExecutionError):
        run(notebook, kernel_env)
    # IPython shows a UsageError as one stderr line, and the cell fails.
    (output,) = notebook.cells[1].outputs
    assert output.output_type == "stream"
    assert output.name == "stderr"
    lines = output.text.strip().splitlines()
    assert lines == [
        "UsageError: --length 9 is out of range: use 1 to 5 (number of "
        "script paragraphs)"
    ]


def test_form_updates_reach_widget_state(kernel_env):
    notebook = make_notebook(
        "from opennote_jupyter import VideoForm\n"
        "form = VideoForm()\n"
        "form.prompt.value = 'Why do tides happen?'\n"
        "form.length.value = 1\n"
        "form",
        "form.submit.click()\nform.wait(60)\nprint(form.submit.disabled)",
    )
    run(notebook, kernel_env)
    assert notebook.cells[1].outputs[0].text.strip() == "False"
    # nbclient keeps the last state each widget model sent over its comm.
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    values = [model["state"] for model in state["state"].values()]
    players = [v["value"] for v in values if "<video controls" in str(v.get("value"))]
    assert len(players) == 1
    buttons = [v for v in values if v.get("description") == "Create video"]
    assert [button["disabled"] for button in buttons] == [False]
    bars = [v for v in values if v.get("_model_name") == "IntProgressModel"]
    assert [bar["value"] for bar in bars] == [100]


def test_background_notices_stay_in_their_cell(kernel_env, monkeypatch):
    # No key: the kernel starts its embedded backend and logs a one-time notice.
    monkeypatch.delenv("OPENNOTE_API_KEY")
    monkeypatch.delenv("OPENNOTE_BASE_URL")
    notebook = make_notebook(
        "%load_ext opennote_jupyter",
        "%%opennote_video --background --length 1 --out video\nWhy do tides happen?",
        "import time\n"
        "for _ in range(600):\n"
        "    if 'video' in globals():\n"
        "        break\n"
        "    time.sleep(0.1)",
    )
    run(notebook, kernel_env)
    notices = [
        index
        for index, cell in enumerate(notebook.cells)
        for output in cell.outputs
        if "local Opennote backend" in output.get("text", "")
    ]
    assert notices == [1]
    (player,) = display_outputs(notebook.cells[1])
    assert "<video controls" in player.data["text/html"]
