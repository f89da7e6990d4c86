"""Request and response bodies of the Opennote Video API, as pydantic models.

Field names, types and defaults follow the hosted API's contract, so FastAPI
reports a bad field with the same 422 ``detail`` shape the hosted service uses.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator

from opennote_jupyter import contract


class Message(BaseModel):
    """One chat message; the last user message is what the video is about."""

    role: Literal["user", "assistant", "system"]
    content: str

    @field_validator("content")
    @classmethod
    def _content_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message content is empty: write what the video is about")
        return value


class CreateVideoRequest(BaseModel):
    """Body of ``POST /v1/video/create``; every field is optional."""

    model: Literal["picasso"] = contract.MODEL
    messages: list[Message] | None = None
    include_sources: bool = False
    search_for: str | None = Field(
        default=None, max_length=contract.MAX_SEARCH_FOR_CHARS
    )
    source_count: int = Field(
        default=contract.DEFAULT_SOURCE_COUNT,
        ge=contract.MIN_SOURCE_COUNT,
        le=contract.MAX_SOURCE_COUNT,
    )
    length: int = Field(
        default=contract.DEFAULT_LENGTH, ge=contract.MIN_LENGTH, le=contract.MAX_LENGTH
    )
    script: str | None = Field(default=None, max_length=contract.MAX_SCRIPT_CHARS)
    upload_to_s3: bool = False
    title: str | None = ""
    webhook_url: str | None = None

    @field_validator("messages")
    @classmethod
    def _last_message_from_user(
        cls, value: list[Message] | None
    ) -> list[Message] | None:
        if value is None:
            return None
        if not value:
            raise ValueError(
                "messages is empty: send at least one message with role 'user'"
            )
        for index, message in enumerate(value[1:], start=1):
            if message.role == "system":
                raise ValueError(
                    f"message {index} has role 'system': only the first message "
                    "may be a system message"
                )
        if value[-1].role != "user":
            raise ValueError(
                f"the last message has role {value[-1].role!r}: the last message "
                "must be the user's request, with role 'user'"
            )
        return value

    @field_validator("search_for")
    @classmethod
    def _search_for_not_blank(cls, value: str | None) -> str | None:
        # The client refuses a blank query too; leave the field out instead.
        if value is not None and not value.strip():
            raise ValueError(
                "search_for is empty: send a web query, or leave it out (null)"
            )
        return value

    @field_validator("script")
    @classmethod
    def _script_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("script is empty: send the script's text, or leave it out")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise ValueError(
                f"webhook_url {value!r} is not an http or https URL with a host: "
                "pass a URL such as 'https://example.com/hook'"
            )
        return value

    @model_validator(mode="after")
    def _has_prompt_or_script(self) -> CreateVideoRequest:
        if self.messages is None and self.script is None:
            raise ValueError(
                "the request has neither messages nor script: send messages ending "
                "with a user message, or a script"
            )
        return self


class CreateVideoResponse(BaseModel):
    """Body of the response to a create."""

    success: bool
    message: str | None = None
    video_id: str | None = None


class SourceModel(BaseModel):
    """A web source the script drew on."""

    url: str
    content: str


class VideoResponse(BaseModel):
    """The finished video, present in a status once the job is completed."""

    success: bool
    error: str | None = None
    s3_url: str | None = None
    b64_video: str | None = None
    title: str | None = None
    transcript: str | None = None
    sources: list[SourceModel] | None = None
    cost: float = 0.0
    model: Literal["picasso"] = contract.MODEL
    timestamp: str | None = None


class StatusResponse(BaseModel):
    """Body of ``GET /v1/video/status/{video_id}``."""

    success: bool
    status: Literal["pending", "completed", "failed", "status_error"]
    message: str | None = None
    completion_percentage: float | None = None
    video_id: str | None = None
    response: VideoResponse | None = None
    error: str | None = None


class ErrorResponse(BaseModel):
    """Body of a 400, 401, 402, 404, 413 or 429 response."""

    detail: str
