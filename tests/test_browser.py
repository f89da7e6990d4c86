"""Drive JupyterLab in headless Chromium: fill the video form and play the result.

The test starts JupyterLab on 127.0.0.1 with a random port and token and temporary
Jupyter and IPython directories. It opens a copy of ``notebooks/widget_form.ipynb``,
runs all cells and submits a prompt through the form. Then it checks that the
``<video>`` element loaded the embedded backend's mp4. Chromium is Debian's package,
launched by path, and every request that is not to 127.0.0.1 is aborted.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "widget_form.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROMPT = (
    "Explain how a rainbow forms. Sunlight bends as it enters a raindrop, reflects "
    "off the back of the drop and bends again on the way out."
)
TITLE = "How a rainbow forms"
# Set this to a path (e.g. docs/form-and-player.png) to keep the screenshot there.
SCREENSHOT_ENV = "OPENNOTE_SCREENSHOT"

# Seconds; each wait below is bounded so a hang fails the test instead of CI.
SERVER_START_TIMEOUT = 60.0
KERNEL_READY_TIMEOUT = 90.0
WIDGET_TIMEOUT = 60.0
VIDEO_DONE_TIMEOUT = 240.0
MEDIA_TIMEOUT = 30.0


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI: install Debian's chromium package")
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium to run this test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"JupyterLab exited with {process.returncode}:\n"
                + log_path.read_text(errors="replace")[-4000:]
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(
        f"JupyterLab did not answer {SERVER_START_TIMEOUT:g} s after start:\n"
        + log_path.read_text(errors="replace")[-4000:]
    )


@pytest.fixture
def jupyterlab(request, tmp_path):
    """Yield (base URL, token, log path, extra variables) of a JupyterLab.

    JupyterLab serves a copy of the notebook. An indirect parameter, a dict of
    extra variables, is added to JupyterLab's environment.
    """
    require_chromium()
    root_dir = tmp_path / "root"
    root_dir.mkdir()
    shutil.copy(NOTEBOOK, root_dir / NOTEBOOK.name)

    env = dict(os.environ)
    for name in (
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_DATA_DIR",
        "JUPYTER_RUNTIME_DIR",
        "IPYTHONDIR",
        "OPENNOTE_JUPYTER_HOME",
    ):
        path = tmp_path / name.lower()
        path.mkdir()
        env[name] = str(path)
    # JupyterLab would ask, in a toast over the notebook, whether to fetch news.
    notification_settings = (
        tmp_path
        / "jupyter_config_dir"
        / "lab"
        / "user-settings"
        / "@jupyterlab"
        / "apputils-extension"
        / "notification.jupyterlab-settings"
    )
    notification_settings.parent.mkdir(parents=True)
    notification_settings.write_text('{"fetchNews": "false"}', encoding="utf-8")
    # Without a key the notebook uses the embedded backend started by its kernel.
    env.pop("OPENNOTE_API_KEY", None)
    env.pop("OPENNOTE_BASE_URL", None)
    env.pop("JUPYTERHUB_SERVICE_PREFIX", None)
    env.pop("OPENNOTE_PROXY_PREFIX", None)
    extra_env = dict(getattr(request, "param", None) or {})
    env.update(extra_env)
    # The kernel spec says "python"; jupyter_client swaps in the server's interpreter,
    # and PATH makes the venv's tools the ones found first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"

    port = free_port()
    token = secrets.token_hex(24)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        # No announcements, update checks or PyPI extension listing: no traffic out.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")

    log_path = tmp_path / "jupyterlab.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            cwd=root_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(f"{base_url}/api/status?token={token}", process, log_path)
        yield base_url, token, log_path, extra_env
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until(page, script: str, timeout: float, description: str, arg=None):
    """Poll a JavaScript predicate in the page; fail with ``description`` on timeout."""
    try:
        return page.wait_for_function(
            script, arg=arg, timeout=timeout * 1000, polling=250
        )
    except Exception as exc:  # playwright's TimeoutError has no stable import path
        pytest.fail(f"timed out after {timeout:g} s waiting for {description}: {exc}")


def run_form(page, base_url: str, token: str) -> dict:
    """Open the notebook, run it, submit the form and return the video's state."""
    page.goto(f"{base_url}/lab/tree/{NOTEBOOK.name}?token={token}")

    # "Run All" does nothing while the toolbar still shows "No Kernel", so wait for a
    # kernel name and for the idle state.
    wait_until(
        page,
        """() => {
            const name = document.querySelector('.jp-KernelName');
            const state = document.querySelector('.jp-Notebook-ExecutionIndicator');
            return name && name.textContent.trim() !== ''
                && !/no kernel/i.test(name.textContent)
                && state && state.dataset.status === 'idle';
        }""",
        KERNEL_READY_TIMEOUT,
        "the notebook's kernel to start and go idle",
    )
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator('li.lm-Menu-item[data-command="runmenu:run-all"]').click()

    textarea = page.locator(".jp-OutputArea-output textarea").first
    textarea.wait_for(state="visible", timeout=WIDGET_TIMEOUT * 1000)
    textarea.fill(PROMPT)
    page.locator(".jp-OutputArea-output input[placeholder='optional']").first.fill(
        TITLE
    )
    page.locator(".jp-OutputArea-output button", has_text="Create video").first.click()

    wait_until(
        page,
        """() => {
            const bar = document.querySelector(
                '.jp-OutputArea-output .progress .progress-bar');
            return bar !== null && parseFloat(bar.style.width) >= 100;
        }""",
        VIDEO_DONE_TIMEOUT,
        "the form's progress bar to reach 100 %",
    )
    video = page.locator(".jp-OutputArea-output video").first
    video.wait_for(state="attached", timeout=WIDGET_TIMEOUT * 1000)
    wait_until(
        page,
        """() => {
            const v = document.querySelector('.jp-OutputArea-output video');
            return v !== null
                && (v.error !== null || (v.readyState >= 1 && v.duration > 0));
        }""",
        MEDIA_TIMEOUT,
        "the <video> element to load its metadata",
    )
    # Playing proves the browser decodes the mp4, beyond reading its header. Paused
    # with its data buffered, the player also draws no loading spinner.
    page.evaluate(
        """() => {
            const v = document.querySelector('.jp-OutputArea-output video');
            v.muted = true;
            return v.play();
        }"""
    )
    wait_until(
        page,
        """() => {
            const v = document.querySelector('.jp-OutputArea-output video');
            return v.currentTime >= 1 || v.error !== null || v.ended;
        }""",
        MEDIA_TIMEOUT,
        "the video to play for one second",
    )
    page.evaluate("() => document.querySelector('.jp-OutputArea-output video').pause()")
    return page.evaluate(
        """() => {
            const v = document.querySelector('.jp-OutputArea-output video');
            const player = v.closest('.opennote-video');
            return {
                title: player ? player.querySelector('strong').textContent : null,
                src: v.currentSrc || v.src,
                readyState: v.readyState,
                duration: v.duration,
                currentTime: v.currentTime,
                error: v.error ? v.error.code : null,
            };
        }"""
    )


def save_screenshot(page, tmp_path: Path) -> Path:
    """Screenshot the cell with the form and the player, paused after one second."""
    cell = page.locator(".jp-Cell", has=page.locator("video")).first
    cell.scroll_into_view_if_needed()
    path = tmp_path / "form-and-player.png"
    cell.screenshot(path=str(path))
    keep = os.environ.get(SCREENSHOT_ENV)
    if keep:
        target = Path(keep)
        if not target.is_absolute():
            target = ROOT / target
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return path


# "direct": the browser loads the backend's loopback URL, as on a laptop.
# "proxied": the player routes it through jupyter-server-proxy on the Jupyter
# server, as on Binder and JupyterHub, where JUPYTERHUB_SERVICE_PREFIX is set.
@pytest.mark.parametrize(
    "jupyterlab",
    [{}, {"OPENNOTE_PROXY_PREFIX": "/"}],
    ids=["direct", "proxied"],
    indirect=True,
)
def test_form_makes_video_that_plays(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    base_url, token, log_path, extra_env = jupyterlab
    proxied = "OPENNOTE_PROXY_PREFIX" in extra_env
    blocked: list[str] = []

    def allow_loopback_only(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1100, "height": 1500})
            context.route("**/*", allow_loopback_only)
            page = context.new_page()
            page.set_default_timeout(WIDGET_TIMEOUT * 1000)
            try:
                media = run_form(page, base_url, token)
            except BaseException:
                failure = tmp_path / "failure.png"
                page.screenshot(path=str(failure))
                print(
                    f"screenshot of the failure: {failure}; JupyterLab log: {log_path}"
                )
                raise
            if not proxied:
                save_screenshot(page, tmp_path)
        finally:
            browser.close()

    assert media["title"] == TITLE, media
    assert media["error"] is None, f"the video failed to load: {media}"
    assert media["readyState"] >= 1, media
    assert media["duration"] > 0, media
    assert media["currentTime"] >= 1, f"the video did not play: {media}"
    src = urlsplit(media["src"])
    assert src.hostname == "127.0.0.1", media
    if proxied:
        assert src.netloc == urlsplit(base_url).netloc, media
        assert re.match(r"^/proxy/\d+/files/", src.path), media
    else:
        assert src.netloc != urlsplit(base_url).netloc, media
        assert src.path.startswith("/files/"), media
    assert not blocked, f"the page tried to reach other hosts: {blocked}"
