"""Typed records of the responses of the Opennote Video API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Source:
    """A web source the script drew on."""

    url: str
    content: str = ""


@dataclass(frozen=True)
class VideoJob:
    """Response to a create request."""

    video_id: str
    success: bool = True
    message: str | None = None
    idempotency_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class VideoResult:
    """A finished video: ``s3_url`` when uploaded, ``b64_video`` otherwise."""

    video_id: str | None
    success: bool
    s3_url: str | None = None
    b64_video: str | None = field(default=None, repr=False)
    title: str | None = None
    transcript: str | None = None
    sources: tuple[Source, ...] = ()
    cost: float = 0.0
    model: str = "picasso"
    timestamp: str | None = None
    error: str | None = None
    message: str | None = None

    @property
    def url(self) -> str | None:
        """The video's URL, or ``None`` for a base64-only result."""
        return self.s3_url

    def video_bytes(self) -> bytes | None:
        """Decode ``b64_video`` to mp4 bytes, or return ``None`` when absent."""
        if not self.b64_video:
            return None
        import base64

        return base64.b64decode(self.b64_video)

    @classmethod
    def from_api(
        cls,
        data: dict[str, Any],
        *,
        video_id: str | None = None,
        message: str | None = None,
    ) -> VideoResult:
        """Build a result from the status response's ``response`` object."""
        sources = tuple(
            Source(url=str(s.get("url", "")), content=str(s.get("content") or ""))
            for s in (data.get("sources") or [])
        )
        return cls(
            video_id=video_id,
            success=bool(data.get("success", False)),
            s3_url=data.get("s3_url"),
            b64_video=data.get("b64_video"),
            title=data.get("title"),
            transcript=data.get("transcript"),
            sources=sources,
            cost=float(data.get("cost") or 0.0),
            model=str(data.get("model") or "picasso"),
            timestamp=data.get("timestamp"),
            error=data.get("error"),
            message=message,
        )


@dataclass(frozen=True)
class VideoStatus:
    """One read of ``GET /v1/video/status/{video_id}``."""

    video_id: str | None
    status: str
    success: bool = True
    message: str | None = None
    completion_percentage: float | None = None
    result: VideoResult | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        """Whether the job has reached a final status."""
        return self.status in ("completed", "failed", "status_error")

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> VideoStatus:
        """Build a status from the JSON body of the status endpoint."""
        response = data.get("response")
        result = None
        if isinstance(response, dict):
            result = VideoResult.from_api(
                response, video_id=data.get("video_id"), message=data.get("message")
            )
        pct = data.get("completion_percentage")
        return cls(
            video_id=data.get("video_id"),
            status=str(data.get("status") or "status_error"),
            success=bool(data.get("success", False)),
            message=data.get("message"),
            completion_percentage=float(pct) if pct is not None else None,
            result=result,
            error=data.get("error"),
        )
