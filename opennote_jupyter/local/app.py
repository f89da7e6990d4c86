"""The FastAPI application of the local Opennote-compatible backend.

Rate limits count the creates each organization makes. Status reads and file
downloads are not limited, because the documented client pattern polls the status
every 15 s, which alone would exceed the developer tier's 3 requests per minute.
A create that is rejected (401, 402, 413, 422, 429) or replayed for its
``Idempotency-Key`` does not count.
"""

# No "from __future__ import annotations": FastAPI reads the route functions'
# annotations at run time, and they name closures of create_app.

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from opennote_jupyter.local import store as st
from opennote_jupyter.local.auth import hash_key
from opennote_jupyter.local.jobs import JobRunner, job_cost, read_b64
from opennote_jupyter.local.schemas import (
    CreateVideoRequest,
    CreateVideoResponse,
    ErrorResponse,
    StatusResponse,
    VideoResponse,
)

logger = logging.getLogger(__name__)

# A full 6000-character script of characters outside the BMP, JSON-escaped as
# two \uXXXX sequences each, takes 72,000 bytes. The limit leaves room for that
# plus a long chat history, and stops multi-megabyte bodies before parsing.
MAX_BODY_BYTES = 256 * 1024


@dataclass
class Settings:
    """Configuration of one backend instance.

    ``minute_seconds`` and ``day_seconds`` are the lengths of the two rate-limit
    windows. Shortening them lets tests of pacing run in seconds. An
    ``Idempotency-Key`` is remembered for ``day_seconds``, which is 24 hours by
    default. ``base_url`` is set once the server has bound its port.
    """

    data_dir: Path
    minute_seconds: float = 60.0
    day_seconds: float = 86400.0
    base_url: str = ""
    max_body_bytes: int = MAX_BODY_BYTES


class _BodyLimitAndAccessLog:
    """ASGI middleware that rejects bodies over the limit with 413 and logs requests.

    The body is read up front (it is small by construction) so that a chunked
    upload without ``Content-Length`` is limited as well.
    """

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder = {"status": 0}

        async def send_logged(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
            await send(message)

        try:
            body = await self._read_limited(scope, receive)
            if body is None:
                response = JSONResponse(
                    {
                        "detail": f"The request body is larger than "
                        f"{self.max_body_bytes} bytes: send a shorter script or "
                        "fewer messages."
                    },
                    status_code=413,
                )
                await response(scope, receive, send_logged)
                return
            replayed = False

            async def replay() -> dict:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_logged)
        finally:
            logger.info(
                "%s %s %d %.1f ms",
                scope["method"],
                scope["path"],
                status_holder["status"],
                (time.perf_counter() - started) * 1000,
            )

    async def _read_limited(self, scope: dict, receive: Any) -> bytes | None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    if int(value) > self.max_body_bytes:
                        return None
                except ValueError:
                    pass
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def create_app(store: st.Store, runner: JobRunner, settings: Settings) -> Any:
    """Build the ASGI application serving the Opennote Video API from ``store``.

    The returned object is the FastAPI app wrapped in the body-limit and
    access-log middleware. The FastAPI app itself is its ``.fastapi`` attribute.
    """
    app = FastAPI(
        title="Opennote Video API (local backend)",
        version="1.0.0",
        description="An Opennote-compatible video API that renders on this machine.",
    )
    bearer = HTTPBearer(auto_error=False, description="An API key of the backend.")
    auth_errors = {
        401: {"model": ErrorResponse, "description": "Missing or invalid key"}
    }

    def organization(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> st.Organization:
        if credentials is None or not credentials.credentials:
            raise HTTPException(
                401,
                "Missing API key: send the header 'Authorization: Bearer <key>' "
                "with a key from 'opennote-video keys create'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        org = store.organization_for_key(hash_key(credentials.credentials))
        if org is None:
            raise HTTPException(
                401,
                "Invalid API key: this server has no such key. Create one with "
                "'opennote-video keys create'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return org

    @app.get("/v1/health", response_class=PlainTextResponse)
    def health() -> str:
        """Return ``OK`` while the service is up."""
        return "OK"

    @app.post(
        "/v1/video/create",
        response_model=CreateVideoResponse,
        responses={
            **auth_errors,
            # FastAPI returns 400 when the body is not UTF-8 text. Malformed JSON
            # text is a 422 like any other validation error.
            400: {"model": ErrorResponse, "description": "Body could not be read"},
            402: {"model": ErrorResponse, "description": "Not enough credits"},
            413: {"model": ErrorResponse, "description": "Request body too large"},
            429: {"model": ErrorResponse, "description": "Rate limit reached"},
        },
    )
    def create_video(
        body: CreateVideoRequest,
        org: Annotated[st.Organization, Depends(organization)],
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
        ] = None,
    ) -> Any:
        """Queue a video job and return its id."""
        request = body.model_dump(mode="json")
        video_id = str(uuid.uuid4())
        created_at = datetime.now(timezone.utc).replace(tzinfo=None)
        response = CreateVideoResponse(
            success=True,
            message=f"Video job created: poll GET /v1/video/status/{video_id}.",
            video_id=video_id,
        ).model_dump()
        cost = job_cost(request)
        outcome = store.create_job(
            organization_id=org.id,
            video_id=video_id,
            created_at=created_at.isoformat(timespec="microseconds"),
            request=request,
            body_hash=hashlib.sha256(body.model_dump_json().encode()).hexdigest(),
            cost=cost,
            response=response,
            idempotency_key=idempotency_key,
            minute_seconds=settings.minute_seconds,
            day_seconds=settings.day_seconds,
            idempotency_seconds=settings.day_seconds,
            owner=runner.instance_id,
        )
        if outcome.kind != "created":
            return _not_created(outcome, org, cost, idempotency_key)

        logger.info("job %s created (cost %g)", video_id, cost)
        runner.submit(video_id)
        return response

    @app.get(
        "/v1/video/status/{video_id}",
        response_model=StatusResponse,
        responses={
            **auth_errors,
            404: {"model": ErrorResponse, "description": "Unknown"},
        },
    )
    def video_status(
        video_id: str, org: Annotated[st.Organization, Depends(organization)]
    ) -> Any:
        """Return a job's status, with the finished video once completed."""
        job = store.job(video_id)
        if job is None or job.organization_id != org.id:
            raise HTTPException(
                404,
                f"No video job with id {video_id!r} in this organization: pass the "
                "video_id that the create request returned.",
            )
        return status_payload(job)

    def status_payload(job: st.Job) -> dict[str, Any]:
        if job.state in (st.QUEUED, st.RENDERING):
            return StatusResponse(
                success=True,
                status="pending",
                message=job.message,
                completion_percentage=job.percent,
                video_id=job.id,
            ).model_dump()
        if job.state == st.FAILED:
            return StatusResponse(
                success=False,
                status="failed",
                message=job.message,
                completion_percentage=job.percent,
                video_id=job.id,
                error=job.error,
            ).model_dump()
        result = job.result or {}
        video = VideoResponse(
            success=True,
            title=result.get("title"),
            transcript=result.get("transcript"),
            sources=result.get("sources") or [],
            cost=job.cost,
            timestamp=job.created_at,
        )
        if not runner.video_path(job.id).is_file():
            logger.error("job %s is completed but its video file is missing", job.id)
            return StatusResponse(
                success=False,
                status="status_error",
                message="The video was made, but its file is missing from the "
                "server's data directory. Create the video again.",
                completion_percentage=100.0,
                video_id=job.id,
                error="video file missing",
            ).model_dump()
        if job.file_key is not None:
            video.s3_url = f"{settings.base_url}/files/{job.file_key}"
        else:
            video.b64_video = read_b64(runner.video_path(job.id))
        return StatusResponse(
            success=True,
            status="completed",
            message=job.message,
            completion_percentage=100.0,
            video_id=job.id,
            response=video,
        ).model_dump()

    runner.status_payload = status_payload

    @app.get(
        "/files/{key:path}",
        response_class=FileResponse,
        responses={404: {"model": ErrorResponse, "description": "No such file"}},
    )
    def video_file(key: str, request: Request) -> Any:
        """Serve a finished video (``.mp4``) or its captions (``.vtt``) by URL key."""
        # The key in a video URL is already percent-encoded, so it arrives
        # unchanged in the raw path. A client that encoded it once more sends
        # it in the decoded path instead. A proxy may re-encode the path with
        # other safe characters (jupyter-server-proxy leaves ":" bare), and
        # quote(unquote(...)) restores the form that build_video_key writes.
        raw = request.scope.get("raw_path", b"").decode("latin-1")
        raw_key = raw[len("/files/") :] if raw.startswith("/files/") else ""
        canonical = quote(unquote(raw_key), safe="/")
        for candidate in dict.fromkeys((raw_key, key, canonical)):
            found = _lookup_file(candidate)
            if found is not None:
                return found
        raise HTTPException(404, f"No file with key {key!r}: use a URL from a status.")

    # HEAD shares the handler, and FileResponse then sends the headers only.
    app.add_api_route(
        "/files/{key:path}", video_file, methods=["HEAD"], include_in_schema=False
    )

    def _lookup_file(key: str) -> FileResponse | None:
        if key.endswith(".mp4"):
            job = store.job_for_file_key(key)
            path = runner.video_path(job.id) if job else None
            media_type = "video/mp4"
        elif key.endswith(".vtt"):
            job = store.job_for_file_key(key[: -len(".vtt")] + ".mp4")
            path = runner.captions_path(job.id) if job else None
            media_type = "text/vtt"
        else:
            return None
        if path is None or not path.is_file():
            return None
        return FileResponse(path, media_type=media_type)

    wrapped = _BodyLimitAndAccessLog(app, settings.max_body_bytes)
    wrapped.fastapi = app
    return wrapped


def _not_created(
    outcome: st.CreateOutcome,
    org: st.Organization,
    cost: float,
    idempotency_key: str | None,
) -> JSONResponse:
    """Return the response to a create that made no new job."""
    if outcome.kind == "replayed":
        logger.info(
            "create replayed for idempotency key of job %s",
            outcome.response["video_id"],
        )
        return JSONResponse(outcome.response, headers={"Idempotent-Replayed": "true"})
    if outcome.kind == "key_reused":
        detail = {
            "loc": ["header", "Idempotency-Key"],
            "msg": "This Idempotency-Key was already used with a different request "
            "body: use a new key for a new video.",
            "type": "idempotency_key_reused",
            "input": idempotency_key,
        }
        return JSONResponse({"detail": [detail]}, status_code=422)
    if outcome.kind == "rate_limited":
        limits = f"{org.per_minute} per minute and {org.per_day} per day"
        raise HTTPException(
            429,
            f"Rate limit reached: organization {org.name!r} ({org.tier} tier) may "
            f"create {limits}. Retry after {outcome.retry_after} s.",
            headers={"Retry-After": str(outcome.retry_after)},
        )
    if outcome.kind == "unpaid":
        raise HTTPException(
            402,
            f"Not enough credits: this video costs {cost:g} credits and "
            f"organization {org.name!r} has {outcome.credits:g}. Load credits with "
            f"'opennote-video keys credits --org {org.name} --add N' and try again.",
        )
    raise AssertionError(f"unexpected create outcome {outcome.kind!r}")
