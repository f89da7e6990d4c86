"""VideoForm driven through its Python API against the real local backend."""

from __future__ import annotations

import re
import uuid

import ipywidgets
import pytest

from opennote_jupyter import VideoForm
from opennote_jupyter.client import OpennoteClient
from opennote_jupyter.journal import Journal
from opennote_jupyter.notebook import session
from opennote_jupyter.paths import data_home


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENNOTE_JUPYTER_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    session.reset()
    yield
    session.reset()


@pytest.fixture
def client(local_backend):
    with OpennoteClient(
        local_backend.api_key,
        local_backend.base_url,
        tier="enterprise",
        per_minute=1000,
        per_day=100_000,
    ) as client:
        yield client


def journal_requests() -> list[dict]:
    return [row["request"] for row in Journal(data_home() / "journal.jsonl").jobs()]


def test_form_widgets_for_front_end():
    form = VideoForm()
    assert isinstance(form, ipywidgets.VBox)
    assert form.submit.description == "Create video"
    assert isinstance(form.progress, ipywidgets.IntProgress)
    assert (form.progress.min, form.progress.max) == (0, 100)
    assert (form.length.min, form.length.max, form.length.value) == (1, 5, 3)
    assert form.search_for.disabled
    form.include_sources.value = True
    assert not form.search_for.disabled
    assert not form.source_count.disabled


def test_success_shows_player_and_enables_button(client):
    form = VideoForm(client=client)
    form.prompt.value = "Explain {braces} & <tags>"
    form.title.value = "Form <test>"
    form.length.value = 1
    form.submit.click()
    assert form.submit.disabled
    result = form.wait(60)
    assert not form.busy
    assert not form.submit.disabled
    assert result is not None and result.success
    assert form.progress.value == 100
    assert "<video controls" in form.player.value
    assert "Form &lt;test&gt;" in form.player.value
    assert "Done" in form.status.value
    (request,) = journal_requests()
    assert request["messages"][-1]["content"] == "Explain {braces} & <tags>"
    assert request["length"] == 1
    assert form.history[-1]["state"] == "done"


def test_bad_key_shown_in_form_and_enables_button(local_backend):
    bad = OpennoteClient("on_" + uuid.uuid4().hex, local_backend.base_url)
    form = VideoForm(client=bad)
    form.prompt.value = "Explain."
    form.submit.click()
    form.wait(30)
    assert not form.submit.disabled
    assert "AuthenticationError" in form.status.value
    assert "401" in form.status.value
    assert form.progress.bar_style == "danger"
    assert form.player.value == ""
    assert form.history[-1]["state"] == "failed"


def test_no_credits_shown_in_form(local_backend):
    key = local_backend.create_key(org=f"broke-{uuid.uuid4().hex[:8]}", credits=0)
    form = VideoForm(client=OpennoteClient(key, local_backend.base_url))
    form.prompt.value = "Explain."
    form.submit.click()
    form.wait(30)
    assert "InsufficientCreditsError" in form.status.value
    assert not form.submit.disabled


def test_validation_before_any_request(client):
    form = VideoForm(client=client)
    form.prompt.value = "  \n-----\n "
    form.include_sources.value = True
    form.search_for.value = "q" * 101
    form.submit.click()
    assert not form.busy
    assert not form.submit.disabled
    assert "The prompt is empty" in form.validation.value
    assert "101 characters" in form.validation.value
    assert journal_requests() == []


def test_separator_lines_make_a_script_without_the_checkbox(client):
    form = VideoForm(client=client)
    form.prompt.value = "Part one.\n ------ \nPart two.\n-----\nPart three."
    assert not form.script_mode.value
    request = form.request()
    assert request["script"] == "Part one.\n ------ \nPart two.\n-----\nPart three."
    assert "prompt" not in request


def test_prompt_without_separators_stays_a_prompt(client):
    form = VideoForm(client=client)
    form.prompt.value = "Explain tides.\n----\nIn two parts."
    request = form.request()
    assert request["prompt"] == "Explain tides.\n----\nIn two parts."
    assert "script" not in request


def test_long_script_found_by_separators_is_rejected(client):
    form = VideoForm(client=client)
    form.prompt.value = "A.\n-----\n" + "b" * 6000
    with pytest.raises(ValueError, match="at most 6000"):
        form.request()


def test_script_mode_and_sources_in_request(client):
    form = VideoForm(client=client)
    form.prompt.value = "Part one.\n-----\nPart two."
    form.script_mode.value = True
    form.include_sources.value = True
    form.search_for.value = "tides: basics"
    form.source_count.value = 2
    form.length.value = 2
    form.submit.click()
    form.wait(60)
    (request,) = journal_requests()
    assert request["script"] == "Part one.\n-----\nPart two."
    assert request["include_sources"] is True
    assert request["search_for"] == "tides: basics"
    assert request["source_count"] == 2


def test_history_lists_submissions(client, local_backend):
    form = VideoForm(client=client)
    form.prompt.value = "First."
    form.length.value = 1
    form.submit.click()
    form.wait(60)
    form._client = OpennoteClient("on_" + uuid.uuid4().hex, local_backend.base_url)
    form.prompt.value = "Second."
    form.submit.click()
    form.wait(30)
    assert [entry["state"] for entry in form.history] == ["done", "failed"]
    assert form.history_view.value.count("<li>") == 2
    assert "<video controls" not in form.player.value


def test_unexpected_error_shown_in_form(client):
    class BrokenClient:
        """A client whose create has a bug; a real one cannot fail like this."""

        def create(self, **request):
            raise ZeroDivisionError("division by zero in a broken client")

    form = VideoForm(client=BrokenClient())
    form.prompt.value = "Explain."
    form.submit.click()
    form.wait(10)
    assert "Unexpected error: ZeroDivisionError" in form.status.value
    assert "<summary>Traceback</summary>" in form.status.value
    assert not form.submit.disabled


def test_rate_limit_shows_wait_time(local_backend):
    key = local_backend.create_key(org=f"busy-{uuid.uuid4().hex[:8]}", tier="developer")
    client = OpennoteClient(key, local_backend.base_url, max_pacing_wait=0.0)
    for number in range(3):
        client.create(f"Filler video {number}.", length=1)
    form = VideoForm(client=client)
    form.prompt.value = "The fourth create in one minute."
    form.submit.click()
    form.wait(30)
    assert "RateLimitError" in form.status.value
    assert re.search(r"\b[1-9]\d* s\b", form.status.value), form.status.value
    assert not form.submit.disabled
    assert form.history[-1]["state"] == "failed"


def test_history_links_follow_proxy(client, monkeypatch):
    # As on JupyterHub: the browser reaches the backend only through the server.
    monkeypatch.setenv("OPENNOTE_PROXY_PREFIX", "/user/alice/")
    form = VideoForm(client=client)
    form.length.value = 1
    for prompt in ("First.", "Second."):
        form.prompt.value = prompt
        form.submit.click()
        form.wait(60)
    hrefs = re.findall(r'href="([^"]*)"', form.history_view.value)
    assert len(hrefs) == 2
    assert all(href.startswith("/user/alice/proxy/") for href in hrefs), hrefs
