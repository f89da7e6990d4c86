"""Render queued jobs in worker threads and publish the finished files.

Files live in ``data_dir / "videos"``, named by video id (``<id>.mp4`` and
``<id>.vtt``). The URL key built by :func:`~opennote_jupyter.urls.build_video_key`
is stored with the job, and the file route maps it back to those files. Naming
files by id rather than by key keeps every name short and free of ``/`` although a
twice-encoded title may be longer than a file system allows in one name.
"""

from __future__ import annotations

import base64
import logging
import os
import queue
import shutil
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from opennote_jupyter import contract
from opennote_jupyter.local import store as st
from opennote_jupyter.local.instances import InstanceLock
from opennote_jupyter.local.render import RenderRequest, RenderResult, render_video
from opennote_jupyter.local.render.script import sections_from_messages
from opennote_jupyter.local.webhook import WebhookSender
from opennote_jupyter.urls import build_video_key

logger = logging.getLogger(__name__)

RenderFunction = Callable[..., RenderResult]

INTERRUPTED_MESSAGE = (
    "The server stopped while this video was rendering, so no video was made and "
    "its credits were refunded. Create the video again."
)
NO_WEB_SOURCES_NOTE = (
    "No sources were gathered: this local backend has no web access, so the "
    "script was written without web sources."
)


def job_cost(request: dict[str, Any]) -> float:
    """Return the credits a video costs: one per script section or paragraph.

    A script costs one credit per section the renderer narrates, as split by
    :func:`~opennote_jupyter.contract.split_script_sections` (sections with only
    whitespace are free). A prompt costs one credit per section the renderer
    builds from it: ``length``, or fewer when the prompt has fewer sentences.
    """
    script = request.get("script")
    if script is not None:
        return float(max(1, len(contract.split_script_sections(script))))
    length = request.get("length", contract.DEFAULT_LENGTH)
    messages = tuple(
        (message["role"], message["content"])
        for message in request.get("messages") or ()
    )
    try:
        sections, _, _ = sections_from_messages(messages, length)
    except ValueError:
        # Validation lets no such request through; the render would fail and refund.
        return float(length)
    return float(len(sections))


class _ServerStopping(Exception):
    """Raised inside a render's stage callback to abort it when the server stops."""


class JobRunner:
    """Worker threads that render queued jobs one after another.

    Workers are daemon threads, so an embedded backend never keeps its process
    alive. Every job records the instance that runs it, and a runner takes over
    only the unfinished jobs of instances that no longer run (see
    :mod:`~opennote_jupyter.local.instances`), at start and then every
    ``recover_seconds`` while idle. When the runner stops, a running render
    aborts at its next stage and its job ends ``failed``. A render that dies with
    its process is marked failed by :meth:`recover` of a later runner.
    """

    def __init__(
        self,
        store: st.Store,
        data_dir: Path,
        *,
        webhooks: WebhookSender,
        status_payload: Callable[[st.Job], dict[str, Any]],
        workers: int = 1,
        render: RenderFunction = render_video,
        recover_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.videos_dir = Path(data_dir) / "videos"
        self.work_root = Path(data_dir) / "work"
        self.videos_dir.mkdir(parents=True, exist_ok=True)
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.webhooks = webhooks
        self.status_payload = status_payload
        self.render = render
        self.recover_seconds = recover_seconds
        self.instance = InstanceLock(data_dir)
        self._recover_lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._work, name=f"opennote-render-{i}", daemon=True
            )
            for i in range(workers)
        ]

    def video_path(self, video_id: str) -> Path:
        """Return where the finished mp4 of ``video_id`` is kept."""
        return self.videos_dir / f"{video_id}.mp4"

    def captions_path(self, video_id: str) -> Path:
        """Return where the WebVTT captions of ``video_id`` are kept."""
        return self.videos_dir / f"{video_id}.vtt"

    def start(self) -> None:
        """Recover jobs left by an earlier run, then start the workers."""
        self.recover()
        for thread in self._threads:
            thread.start()

    @property
    def instance_id(self) -> str:
        """The id recorded as the owner of the jobs this runner creates."""
        return self.instance.instance_id

    def recover(self) -> None:
        """Take over the jobs of stopped instances.

        A job that was rendering fails, because its render died with its
        process; a job that was still queued is rendered here.
        """
        with self._recover_lock:
            for job in self._orphans(st.RENDERING):
                logger.warning("job %s was rendering when its server stopped", job.id)
                self._fail(
                    job.id, INTERRUPTED_MESSAGE, "server stopped during rendering"
                )
                shutil.rmtree(self.work_root / job.id, ignore_errors=True)
            for job in self._orphans(st.QUEUED):
                logger.info(
                    "job %s requeued: the server that queued it stopped", job.id
                )
                self._queue.put(job.id)

    def _orphans(self, state: str) -> list[st.Job]:
        orphans = []
        for job in self.store.jobs_in_state(state):
            if job.owner == self.instance_id or self.instance.is_running(job.owner):
                continue
            if self.store.claim_job(job.id, job.owner, self.instance_id):
                orphans.append(job)
        return orphans

    def submit(self, video_id: str) -> None:
        """Queue a newly created job for rendering."""
        self._queue.put(video_id)

    def stop(self) -> None:
        """Ask the workers to end; a running render aborts at its next stage."""
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        self.webhooks.stop()
        self.instance.release()

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                video_id = self._queue.get(timeout=self.recover_seconds)
            except queue.Empty:
                try:
                    self.recover()
                except Exception:
                    logger.exception("taking over the jobs of stopped servers failed")
                continue
            if video_id is None or self._stopping.is_set():
                return
            try:
                self._run(video_id)
            except Exception:
                # _run handles render errors itself, so this is a bug of ours
                # (a database or file error); the job must not stay pending.
                logger.exception("job %s failed outside the renderer", video_id)
                try:
                    self._fail(
                        video_id,
                        "The server failed while finishing this video.",
                        "internal error",
                    )
                except Exception:
                    # A full disk rejects this write too. The worker must live
                    # on for the jobs behind it; a restart fails this one.
                    logger.exception("job %s could not be marked failed", video_id)

    def _run(self, video_id: str) -> None:
        if not self.store.start_job(video_id):
            return
        job = self.store.job(video_id)
        assert job is not None
        logger.info("job %s rendering", video_id)
        request = job.request
        render_request = RenderRequest(
            messages=tuple(
                (m["role"], m["content"]) for m in request.get("messages") or ()
            ),
            script=request.get("script"),
            title=request.get("title") or "",
            length=int(request.get("length", contract.DEFAULT_LENGTH)),
        )
        work_dir = self.work_root / video_id
        shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True)

        def on_stage(stage: str, percent: float) -> None:
            if self._stopping.is_set():
                raise _ServerStopping
            # 100 is reported only once the files are published.
            self.store.set_progress(
                video_id, min(max(float(percent), 0.0), 99.0), f"Rendering: {stage}."
            )

        try:
            try:
                result = self.render(render_request, work_dir, on_stage)
            except _ServerStopping:
                logger.warning("job %s aborted: the server is stopping", video_id)
                self._fail(
                    video_id, INTERRUPTED_MESSAGE, "server stopped during rendering"
                )
                return
            except Exception as exc:
                logger.exception("job %s: rendering failed", video_id)
                self._fail(
                    video_id,
                    f"Rendering failed: {exc}. Check the prompt or script and create "
                    "the video again.",
                    f"rendering failed: {type(exc).__name__}: {exc}",
                )
                return
            self._publish(job, result)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    def _publish(self, job: st.Job, result: RenderResult) -> None:
        _move_into_place(Path(result.video_path), self.video_path(job.id))
        _move_into_place(Path(result.captions_path), self.captions_path(job.id))
        request = job.request
        file_key = None
        if request.get("upload_to_s3"):
            created = datetime.fromisoformat(job.created_at)
            file_key = build_video_key(created, job.id, result.title)
        notes = list(result.notes)
        if request.get("include_sources"):
            notes.append(NO_WEB_SOURCES_NOTE)
        message = " ".join(["Video completed.", *notes])
        fields = {
            "title": result.title,
            "transcript": result.transcript,
            "sources": [],
            "duration": result.duration,
        }
        self.store.complete_job(
            job.id, file_key=file_key, message=message, result=fields
        )
        logger.info("job %s completed (%.1f s of video)", job.id, result.duration)
        self._notify(job.id)

    def _fail(self, video_id: str, message: str, error: str) -> None:
        if self.store.fail_job(video_id, message=message, error=error):
            self._notify(video_id)

    def _notify(self, video_id: str) -> None:
        job = self.store.job(video_id)
        url = job.request.get("webhook_url") if job else None
        if job is None or not url:
            return
        try:
            payload = self.status_payload(job)
        except OSError:
            logger.exception("job %s: could not build the webhook payload", video_id)
            return
        self.webhooks.send(video_id, url, payload)


def read_b64(path: Path) -> str:
    """Return the base64 text of the file at ``path``."""
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _move_into_place(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` so that readers never see a partial file."""
    try:
        os.replace(source, target)
    except OSError:
        # Another file system: copy beside the target first, then rename.
        partial = target.with_name(target.name + ".part")
        shutil.copyfile(source, partial)
        os.replace(partial, target)
