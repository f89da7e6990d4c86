"""The inline player: HTML and text forms, sizes, escaping, files and proxy URLs.

The results come from real renders of the local backend; the escaping and sources
cases replace fields of a real result with hostile text.
"""

from __future__ import annotations

import dataclasses
import html
import http.server
import json
import re
import socket
import subprocess
import sys
import threading

import nbformat
import pytest

from opennote_jupyter.client import OpennoteClient
from opennote_jupyter.models import Source
from opennote_jupyter.notebook import player
from opennote_jupyter.notebook.player import (
    VideoPlayer,
    browser_url,
    caption_url,
    mp4_duration,
)


@pytest.fixture(scope="module")
def results(local_backend, tmp_path_factory):
    """One finished video with a URL and one with base64 only."""
    home = tmp_path_factory.mktemp("player-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENNOTE_JUPYTER_HOME", str(home))
        client = OpennoteClient(
            local_backend.api_key,
            local_backend.base_url,
            tier="enterprise",
            per_minute=1000,
            per_day=100_000,
        )
        with client:
            url_result = client.generate(
                "Why do tides happen?", title="Tides & <moons>", length=1
            )
            b64_result = client.generate(
                "Why do tides happen?",
                title="Tides, inline",
                length=1,
                upload_to_s3=False,
            )
    return url_result, b64_result


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch, tmp_path):
    for name in (player.PROXY_PREFIX_ENV, player.HUB_PREFIX_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def saved_size(bundle: dict) -> int:
    """Bytes one display output adds to a saved notebook."""
    output = nbformat.v4.new_output("display_data", data=bundle)
    return len(json.dumps(output, indent=1))


def test_url_player_points_at_url(results):
    url_result, _ = results
    bundle = VideoPlayer(url_result).bundle()
    src = html.escape(url_result.s3_url, quote=True)
    assert f'<video controls preload="metadata" src="{src}"' in bundle["text/html"]
    assert f'<a href="{src}" download=' in bundle["text/html"]
    assert "base64" not in bundle["text/html"]
    assert "Tides &amp; &lt;moons&gt;" in bundle["text/html"]


def test_url_player_text_form(results):
    url_result, _ = results
    text = VideoPlayer(url_result).bundle()["text/plain"]
    lines = text.splitlines()
    assert lines[0] == f"Opennote video: {url_result.title}"
    assert f"URL: {url_result.s3_url}" in lines
    assert f"Video id: {url_result.video_id}" in lines


def test_url_player_saved_size_small(results):
    url_result, _ = results
    bundle = VideoPlayer(url_result).bundle()
    transcript = len(html.escape(url_result.transcript or ""))
    # Markup, both MIME forms and the URL (twice, plus its captions) stay within
    # about 2 KB; the transcript comes on top.
    assert saved_size(bundle) - transcript <= 2048, saved_size(bundle)


def test_captions_track_for_local_url(results):
    url_result, _ = results
    vtt = caption_url(url_result.s3_url)
    assert vtt == url_result.s3_url[: -len(".mp4")] + ".vtt"
    assert f'<track kind="captions" src="{html.escape(vtt, quote=True)}"' in (
        VideoPlayer(url_result).html()
    )


def test_no_captions_for_hosted_url():
    hosted = "https://videofs-opennote-us-east-1.s3.us-east-1.amazonaws.com/k.mp4"
    assert caption_url(hosted) is None


def test_transcript_collapsible(results):
    url_result, _ = results
    page = VideoPlayer(url_result).html()
    assert "<details><summary>Transcript</summary>" in page
    first = url_result.transcript.split("\n\n")[0]
    assert f"<p>{html.escape(first)}</p>" in page


def test_hostile_text_escaped(results):
    url_result, _ = results
    hostile = dataclasses.replace(
        url_result,
        title='<img src=x onerror="alert(1)">',
        transcript="<script>alert(2)</script>\n\nplain & simple",
        sources=(
            Source(url="javascript:alert(3)"),
            Source(url='https://example.org/a?b=1&c="2"'),
        ),
    )
    page = VideoPlayer(hostile).html()
    assert "<img" not in page
    assert "<script" not in page
    assert 'href="javascript:' not in page
    assert "javascript:alert(3)" in page
    assert 'href="https://example.org/a?b=1&amp;c=&quot;2&quot;"' in page
    assert "Sources (2)" in page
    text = VideoPlayer(hostile).text()
    assert "Sources: 2" in text


def test_base64_result_written_to_file(results, tmp_path):
    _, b64_result = results
    assert b64_result.s3_url is None
    shown = VideoPlayer(b64_result)
    expected = tmp_path / "opennote-videos" / f"{b64_result.video_id}.mp4"
    assert shown.path == expected
    assert expected.read_bytes() == b64_result.video_bytes()
    page = shown.html()
    assert f'src="opennote-videos/{b64_result.video_id}.mp4"' in page
    assert "base64," not in page
    assert f"File: {expected}" in shown.text()
    assert saved_size(shown.bundle()) - len(html.escape(b64_result.transcript)) <= 2048


def test_duration_matches_decoder(results, tmp_path):
    av = pytest.importorskip("av")
    _, b64_result = results
    shown = VideoPlayer(b64_result)
    with av.open(str(shown.path)) as container:
        decoded = container.duration / av.time_base
    assert shown.duration == pytest.approx(decoded, abs=0.1)
    assert re.search(r"Duration: \d+:\d\d", shown.text())


def test_duration_of_non_mp4_is_none():
    assert mp4_duration(b"") is None
    assert mp4_duration(b"\x00\x00\x00\x10moov\x00\x00\x00\x08free") is None
    assert mp4_duration(b"not an mp4 at all") is None


def test_embed_inlines_small_video(results):
    _, b64_result = results
    shown = VideoPlayer(b64_result, embed=True)
    assert shown.src.startswith("data:video/mp4;base64,")
    assert shown.path is None
    assert "Embedded in the notebook" in shown.text()


def test_embed_over_limit_falls_back_to_file(results, monkeypatch, tmp_path):
    _, b64_result = results
    # A real over-limit video would take minutes to render; lower the limit instead.
    monkeypatch.setattr(player, "EMBED_MAX_BYTES", 1000)
    shown = VideoPlayer(b64_result, embed=True)
    assert shown.path == tmp_path / "opennote-videos" / f"{b64_result.video_id}.mp4"
    assert "Not embedded" in shown.note
    assert "Not embedded" in shown.html()
    assert "base64," not in shown.html()


@pytest.mark.parametrize("prefix", ["/user/alice/", "/user/alice"])
def test_hub_prefix_routes_through_proxy(results, monkeypatch, prefix):
    url_result, _ = results
    monkeypatch.setenv(player.HUB_PREFIX_ENV, prefix)
    port = re.match(r"http://127\.0\.0\.1:(\d+)/", url_result.s3_url).group(1)
    path = url_result.s3_url.split(f":{port}/", 1)[1]
    assert browser_url(url_result.s3_url) == f"/user/alice/proxy/{port}/{path}"
    page = VideoPlayer(url_result).html()
    assert f'src="/user/alice/proxy/{port}/files/' in page
    assert f'<track kind="captions" src="/user/alice/proxy/{port}/files/' in page
    # The plain-text form keeps the kernel-side URL.
    assert f"URL: {url_result.s3_url}" in VideoPlayer(url_result).text()


def test_proxy_setting_overrides_hub(monkeypatch):
    monkeypatch.setenv(player.HUB_PREFIX_ENV, "/user/alice/")
    monkeypatch.setenv(player.PROXY_PREFIX_ENV, "none")
    assert browser_url("http://127.0.0.1:8123/files/a.mp4") == (
        "http://127.0.0.1:8123/files/a.mp4"
    )
    monkeypatch.setenv(player.PROXY_PREFIX_ENV, "/")
    assert browser_url("http://127.0.0.1:8123/files/a.mp4") == "/proxy/8123/files/a.mp4"


def test_proxy_leaves_remote_urls(monkeypatch):
    monkeypatch.setenv(player.HUB_PREFIX_ENV, "/user/alice/")
    hosted = "https://videofs.example.com/files/a.mp4"
    assert browser_url(hosted) == hosted
    assert browser_url("http://127.0.0.1/files/a.mp4") == "http://127.0.0.1/files/a.mp4"


def test_unwritable_folder_shows_note_not_traceback(results, tmp_path):
    _, b64_result = results
    # A file where the folder should be: a real write failure, even as root.
    (tmp_path / "opennote-videos").write_text("not a folder")
    shown = VideoPlayer(b64_result)
    assert shown.path is None
    assert "Could not save the video" in shown.note
    assert "video_bytes()" in shown.note
    page = shown.html()
    assert "<video" not in page
    assert "Download" not in page
    assert "Could not save the video" in shown.text()


def test_embed_download_failure_falls_back_to_url(results):
    url_result, _ = results
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more, so the download is refused.
    dead = dataclasses.replace(
        url_result, s3_url=f"http://127.0.0.1:{port}/files/a.mp4"
    )
    shown = VideoPlayer(dead, embed=True)
    assert shown.src == dead.s3_url
    assert "Not embedded" in shown.note
    assert "data:" not in shown.html()


PARTIAL_WRITE = r"""
import resource, signal, sys
from pathlib import Path
from opennote_jupyter.notebook.player import write_video_file
folder = Path(sys.argv[1])
write_video_file("vid", b"old" * 100, folder)
# The kernel refuses writes past 1000 bytes with EFBIG, like a full disk.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
try:
    write_video_file("vid", b"x" * 5000, folder)
except OSError as exc:
    print("failed", exc.errno)
"""


def test_failed_write_leaves_no_partial_file(tmp_path):
    folder = tmp_path / "videos"
    completed = subprocess.run(
        [sys.executable, "-c", PARTIAL_WRITE, str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert completed.stdout.startswith("failed"), completed.stdout
    assert [p.name for p in folder.iterdir()] == ["vid.mp4"]
    assert (folder / "vid.mp4").read_bytes() == b"old" * 100


def test_non_http_video_url_not_linked(results):
    url_result, _ = results
    hostile = dataclasses.replace(url_result, s3_url="javascript:alert(1)//a.mp4")
    shown = VideoPlayer(hostile)
    page = shown.html()
    assert "javascript:" not in page
    assert "<video" not in page
    assert "not an http(s) URL" in shown.note
    assert "URL: javascript:alert(1)//a.mp4" in shown.text()


class _BigVideo(http.server.BaseHTTPRequestHandler):
    """Serves 64 MB in chunks and records how much of it was sent."""

    size = 64_000_000
    sent: list[int] = []

    def do_GET(self):  # noqa: N802 - the http.server hook name
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.end_headers()
        chunk = b"\0" * 65536
        sent = 0
        try:
            while sent < self.size:
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass
        type(self).sent.append(sent)

    def log_message(self, *args):
        pass


def test_embed_stops_downloading_past_the_limit(results):
    url_result, _ = results
    server = http.server.HTTPServer(("127.0.0.1", 0), _BigVideo)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/files/big.mp4"
        shown = VideoPlayer(dataclasses.replace(url_result, s3_url=url), embed=True)
        thread.join(30)
    finally:
        server.server_close()
    assert shown.src == url
    assert "Not embedded" in shown.note
    # Sending stopped once the player had read past the limit and hung up.
    assert _BigVideo.sent and _BigVideo.sent[0] < _BigVideo.size / 2


def test_duration_of_url_result_read_from_server(results):
    av = pytest.importorskip("av")
    url_result, _ = results
    shown = VideoPlayer(url_result)
    assert shown.path is None
    with av.open(url_result.s3_url) as container:
        decoded = container.duration / av.time_base
    assert shown.duration == pytest.approx(decoded, abs=0.1)
    assert re.search(r"Duration: \d+:\d\d", shown.text())


def test_duration_of_unreachable_url_is_none(results):
    url_result, _ = results
    dead = dataclasses.replace(url_result, s3_url="http://127.0.0.1:9/files/x.mp4")
    shown = VideoPlayer(dead)
    assert shown.duration is None
    assert "Duration" not in shown.text()
