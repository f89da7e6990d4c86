"""The exception hierarchy of opennote_jupyter.

::

    OpennoteError
    ├── ConfigurationError      bad or placeholder API key, bad base URL
    ├── RequestValidationError  a field fails the contract (local check or HTTP 422)
    ├── APIError                any unexpected HTTP response, in ``response``
    │   ├── AuthenticationError     401
    │   ├── InsufficientCreditsError 402
    │   ├── RateLimitError          429 or a long pacing wait, ``retry_after`` in s
    │   └── ServerError             5xx
    ├── NetworkError            no response after retries: connection error or timeout
    ├── VideoFailedError        the job ended ``failed`` or ``status_error``
    ├── WaitTimeoutError        ``wait`` gave up, but the job goes on and can be resumed
    └── BatchError              some ``generate_many`` items failed, with all results

Every message states what to do next. No exception text ever contains the API key.
"""

from __future__ import annotations

from typing import Any


class OpennoteError(Exception):
    """Base class of every error raised by opennote_jupyter."""


class ConfigurationError(OpennoteError):
    """The client is not set up to make a request (key or base URL)."""


class RequestValidationError(OpennoteError, ValueError):
    """A create request breaks the contract.

    Attributes
    ----------
    field
        Name of the offending field, for example ``"length"``.
    value
        The rejected value.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: Any = None,
        response: Any = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.response = response


class APIError(OpennoteError):
    """The server returned an HTTP status the client cannot act on by itself.

    Attributes
    ----------
    status_code
        The HTTP status code.
    response
        The :class:`requests.Response`, for inspection. Its request headers have
        the ``Authorization`` value removed.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, response: Any = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response


class AuthenticationError(APIError):
    """HTTP 401: the API key is missing, invalid or revoked."""


class InsufficientCreditsError(APIError):
    """HTTP 402: the organization has no credits left for this video."""


class RateLimitError(APIError):
    """HTTP 429, or a pacing wait longer than the caller allows.

    Attributes
    ----------
    retry_after
        Seconds to wait before the next request, or ``None`` when unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = 429,
        response: Any = None,
    ) -> None:
        super().__init__(message, status_code=status_code, response=response)
        self.retry_after = retry_after


class ServerError(APIError):
    """HTTP 5xx after the client's retries ran out."""


class NetworkError(OpennoteError, ConnectionError):
    """The server could not be reached, or its response was lost, after retries.

    For a create this does not tell whether the server received it. While the
    client's journal is on, a repeated call with the same arguments reuses the
    journaled ``Idempotency-Key``, so the video is made and charged at most once.
    """


class VideoFailedError(OpennoteError):
    """The video job ended without a video.

    Attributes
    ----------
    video_id
        The failed job's id.
    status
        The last :class:`~opennote_jupyter.models.VideoStatus` read.
    """

    def __init__(
        self, message: str, *, video_id: str | None = None, status: Any = None
    ) -> None:
        super().__init__(message)
        self.video_id = video_id
        self.status = status


class WaitTimeoutError(OpennoteError, TimeoutError):
    """``wait`` reached its timeout while the job was still running.

    The job is not cancelled: ``client.resume(video_id)`` picks it up again.
    """

    def __init__(
        self, message: str, *, video_id: str | None = None, status: Any = None
    ) -> None:
        super().__init__(message)
        self.video_id = video_id
        self.status = status


class BatchError(OpennoteError):
    """Failure of some items of a batch. The others finished or are still running.

    Attributes
    ----------
    results
        One entry per input, in input order: a
        :class:`~opennote_jupyter.models.VideoResult`, or the exception that item
        raised.
    video_ids
        The video id of each item, or ``None`` where no job was created.
    """

    def __init__(
        self, message: str, *, results: list[Any], video_ids: list[str | None]
    ) -> None:
        super().__init__(message)
        self.results = results
        self.video_ids = video_ids
