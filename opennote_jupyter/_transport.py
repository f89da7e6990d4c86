"""HTTP transport of the client: timeouts, retries, error mapping and key scrubbing.

Everything that touches ``requests`` lives here, so third-party exceptions are turned
into :mod:`opennote_jupyter.errors` types at one boundary. The API key is kept in a
:class:`Secret`, sent only in the ``Authorization`` header of each request, and
removed from every object handed back to the caller (responses, their requests,
exception messages).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import timezone
from types import TracebackType
from typing import Any

import requests
import requests.auth

from opennote_jupyter.errors import (
    APIError,
    AuthenticationError,
    InsufficientCreditsError,
    NetworkError,
    RateLimitError,
    RequestValidationError,
    ServerError,
)

log = logging.getLogger("opennote_jupyter.client")

REDACTED = "***"

# Cap on how much server text goes into an exception message.
_MAX_DETAIL_CHARS = 300


class Secret:
    """An API key that does not print itself.

    ``repr``, ``str`` and ``format`` show a placeholder. :meth:`reveal` returns the
    value for the one place that needs it, the ``Authorization`` header.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the key itself."""
        return self._value

    def fingerprint(self) -> str:
        """Return a short, non-reversible digest that identifies the key on disk."""
        digest = hashlib.sha256(b"opennote-jupyter/key/" + self._value.encode())
        return digest.hexdigest()[:16]

    def scrub(self, text: str) -> str:
        """Return ``text`` with every occurrence of the key replaced."""
        if self._value and self._value in text:
            return text.replace(self._value, REDACTED)
        return text

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> Any:
        raise TypeError("an API key cannot be pickled")


@dataclass(frozen=True)
class RetryPolicy:
    """Retry limits and backoff for a request that may succeed on a second try.

    Attributes
    ----------
    attempts
        Maximum number of sends, the first one included.
    backoff_base
        Delay in seconds before the first retry. It doubles on each later retry.
    backoff_cap
        Upper bound in seconds of one backoff delay.
    max_retry_wait
        Maximum ``Retry-After`` in seconds that the client sleeps through. A longer one
        raises :class:`RateLimitError` at once, carrying the server's value.
    """

    attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    max_retry_wait: float = 120.0

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Return the jittered delay in seconds before retry number ``retry_number``."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (retry_number - 1))
        # Half fixed, half random: clients that failed together spread out.
        return ceiling * (0.5 + 0.5 * rng.random())


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header into seconds from now.

    Parameters
    ----------
    value
        The header value: delay seconds or an HTTP date.
    now
        Current POSIX time, for tests. Defaults to ``time.time()``.

    Returns
    -------
    float or None
        Seconds to wait, at least 0. A date in the past gives 0. ``None`` when the
        header is missing or unreadable, or the number is negative or not finite.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds) or seconds < 0:
            return None
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are GMT, so a parse without a zone means "-0000".
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _server_detail(response: requests.Response, secret: Secret) -> str:
    """Return the server's error text from a response, key removed and shortened."""
    detail: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("message") or body.get("error")
    if detail is None:
        detail = response.text
    if not isinstance(detail, str):
        detail = str(detail)
    detail = " ".join(secret.scrub(detail).split())
    if len(detail) > _MAX_DETAIL_CHARS:
        detail = detail[: _MAX_DETAIL_CHARS - 3] + "..."
    return detail


def scrub_response(response: requests.Response | None, secret: Secret) -> None:
    """Remove the key from a response before it leaves the transport.

    The ``Authorization`` header of the request (and of any redirect in its
    history) is replaced, and so is any copy of the key in the body, because a
    server may echo the key in an error message.
    """
    if response is None:
        return
    for item in [*response.history, response]:
        request = item.request
        if request is not None and "Authorization" in request.headers:
            request.headers["Authorization"] = f"Bearer {REDACTED}"
        _scrub_headers(item, secret)
        # requests keeps the body in ``_content``. It is rewritten here so that
        # ``.text`` and ``.json()`` only see the scrubbed bytes.
        content = item.content if item._content_consumed else None
        key = secret.reveal().encode()
        if content and key and key in content:
            content = content.replace(key, REDACTED.encode())
            item._content = content
        if content:
            item._content = _scrub_json_escapes(content, secret)


def _scrub_headers(response: requests.Response, secret: Secret) -> None:
    """Replace the key in the response's header values and reason phrase.

    A server may echo the key in ``WWW-Authenticate``, a ``Location`` or a
    custom header. The urllib3 response under ``.raw`` contains copies as well.
    """
    holders = [response.headers, getattr(response.raw, "headers", None)]
    for headers in holders:
        if headers is None:
            continue
        for name, value in list(headers.items()):
            if isinstance(value, str) and secret.scrub(value) != value:
                headers[name] = secret.scrub(value)
    original = getattr(response.raw, "_original_response", None)
    message = getattr(original, "msg", None)
    if message is not None:
        for name, value in list(message.items()):
            if isinstance(value, str) and secret.scrub(value) != value:
                message.replace_header(name, secret.scrub(value))
    if isinstance(response.reason, str):
        response.reason = secret.scrub(response.reason)


def _scrub_json_escapes(content: bytes, secret: Secret) -> bytes:
    r"""Return ``content`` without the key in any of its JSON spellings.

    JSON may write a character of the key as an escape (``\/`` for ``/``,
    ``\u0041`` for ``A``), which the byte replacement misses but ``.json()``
    would decode back into the key. Such a body is decoded, scrubbed and
    encoded again.
    """
    if b"\\" not in content:
        return content
    try:
        body = json.loads(content)
    except ValueError:
        return content
    if secret.reveal() not in json.dumps(body, ensure_ascii=False):
        return content

    def scrubbed(value: Any) -> Any:
        if isinstance(value, str):
            return secret.scrub(value)
        if isinstance(value, list):
            return [scrubbed(item) for item in value]
        if isinstance(value, dict):
            return {secret.scrub(str(k)): scrubbed(v) for k, v in value.items()}
        return value

    return json.dumps(scrubbed(body)).encode()


def _scrub_exception(exc: requests.RequestException, secret: Secret) -> None:
    """Remove the key from a requests exception and drop its frames.

    The frames of requests and urllib3 hold the request headers in local
    variables, which tracebacks with locals (``capture_locals=True``, IPython's
    verbose mode, ``pytest -l``) would print.
    """
    request = getattr(exc, "request", None)
    headers = getattr(request, "headers", None)
    if headers is not None and "Authorization" in headers:
        headers["Authorization"] = f"Bearer {REDACTED}"
    scrub_response(getattr(exc, "response", None), secret)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


def _scrub_frames(tb: TracebackType | None, secret: Secret) -> None:
    """Replace the key in header mappings held by the frames of a traceback.

    Tracebacks with locals would print them. The mappings are changed in place
    because the frames refer to them and do not keep copies.
    """
    bearer = f"Bearer {secret.reveal()}"
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, MutableMapping):
                try:
                    if value.get("Authorization") == bearer:
                        value["Authorization"] = f"Bearer {REDACTED}"
                except Exception:
                    # Skip a mapping of another library that rejects the change.
                    continue
        tb = tb.tb_next


class _BearerAuth(requests.auth.AuthBase):
    """Set the ``Authorization`` header on the prepared request, and remove it after.

    Going through ``auth=`` keeps the key out of the header dicts that the
    caller's frames hold.
    """

    def __init__(self, secret: Secret) -> None:
        self._secret = secret
        self._prepared: list[requests.PreparedRequest] = []

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._secret.reveal()}"
        self._prepared.append(request)
        return request

    def scrub(self) -> None:
        """Replace the key in every request this object prepared."""
        for request in self._prepared:
            request.headers["Authorization"] = f"Bearer {REDACTED}"

    def __repr__(self) -> str:
        return "_BearerAuth('***')"


def _validation_error(response: requests.Response, secret: Secret) -> Exception:
    """Build the error for an HTTP 422 from FastAPI's ``detail`` list."""
    field_name = None
    value = None
    reason = _server_detail(response, secret)
    try:
        body = response.json()
    except ValueError:
        body = None
    details = body.get("detail") if isinstance(body, dict) else None
    if isinstance(details, list) and details and isinstance(details[0], dict):
        first = details[0]
        loc = [str(part) for part in first.get("loc", []) if part != "body"]
        field_name = ".".join(loc) or None
        value = first.get("input")
        reason = secret.scrub(str(first.get("msg", reason)))
    where = f"field {field_name!r}" if field_name else "the request"
    shown = secret.scrub(repr(value))[:100] if value is not None else None
    got = f" (got {shown})" if shown is not None else ""
    return RequestValidationError(
        f"the server rejected {where}{got}: {reason}. Fix the field and call again.",
        field=field_name,
        value=value,
        response=response,
    )


def error_for_response(
    response: requests.Response, secret: Secret, *, retry_after: float | None = None
) -> Exception:
    """Translate a non-2xx response into the matching :mod:`errors` type.

    The response must already be scrubbed with :func:`scrub_response`.
    """
    code = response.status_code
    detail = _server_detail(response, secret)
    said = f" The server said: {detail}" if detail else ""
    if code == 401:
        return AuthenticationError(
            "the server rejected the API key (HTTP 401). Set a valid key with the "
            "OPENNOTE_API_KEY environment variable or OpennoteClient(api_key=...)."
            + said,
            status_code=code,
            response=response,
        )
    if code == 402:
        return InsufficientCreditsError(
            "the organization has too few credits for this video (HTTP 402). Load "
            "credits for the organization, then call again." + said,
            status_code=code,
            response=response,
        )
    if code == 422:
        return _validation_error(response, secret)
    if code == 429:
        if retry_after is None:
            wait = "wait a minute before the next request"
        elif retry_after > 7 * 86400:
            # An absurd Retry-After (a year, 1e308) as a number helps no one.
            wait = "wait more than a week before the next request"
        else:
            wait = f"wait {retry_after:.0f} s before the next request"
        return RateLimitError(
            f"the server's rate limit was hit (HTTP 429): {wait}, or spread requests "
            "out (the client paces creates by tier; check tier=)." + said,
            retry_after=retry_after,
            status_code=code,
            response=response,
        )
    if code >= 500:
        return ServerError(
            f"the server failed with HTTP {code} after the client's retries. Try "
            "again later." + said,
            status_code=code,
            response=response,
        )
    if 300 <= code < 400:
        location = response.headers.get("Location", "another address")
        return APIError(
            f"the server redirected (HTTP {code}) to {location}. The client does "
            "not follow redirects, so the key goes only to the base URL: set "
            "base_url to the new address if you trust it.",
            status_code=code,
            response=response,
        )
    if code == 404:
        return APIError(
            f"not found (HTTP 404) at {response.url}: check the video id and the "
            "base URL." + said,
            status_code=code,
            response=response,
        )
    return APIError(
        f"unexpected HTTP {code} from {response.url}." + said,
        status_code=code,
        response=response,
    )


def _is_retryable_status(code: int) -> bool:
    return code == 429 or code >= 500


class Transport:
    """Send requests to one base URL with one key, retrying what is safe to retry.

    Parameters
    ----------
    base_url
        Server root, for example ``https://api.opennote.com``.
    secret
        The API key.
    timeout
        ``(connect, read)`` timeout in seconds applied to every request.
    retry
        Retry limits for status reads and keyed creates.
    sleep
        Replacement for ``time.sleep`` between retries, for tests.
    rng
        Random source of the backoff jitter. A seeded one makes retry waits
        reproducible.
    """

    def __init__(
        self,
        base_url: str,
        secret: Secret,
        *,
        timeout: tuple[float, float],
        retry: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = secret
        self.timeout = timeout
        self.retry = retry
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._session = requests.Session()
        # A proxy or .netrc from the environment could rewrite the Authorization
        # header or route the key elsewhere, but the caller chose only the base URL.
        self._session.trust_env = False
        self._session.headers["User-Agent"] = "opennote-jupyter"

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def _send_once(
        self, method: str, path: str, json_body: Any, headers: dict[str, str]
    ) -> requests.Response:
        auth = _BearerAuth(self._secret)
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                json=json_body,
                headers=headers,
                auth=auth,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            auth.scrub()
            _scrub_exception(exc, self._secret)
            raise
        except BaseException as exc:
            # KeyboardInterrupt mid-request: frames in its traceback still refer
            # to the prepared headers, and to urllib3's copy of them.
            auth.scrub()
            _scrub_frames(exc.__traceback__, self._secret)
            raise
        auth.scrub()
        scrub_response(response, self._secret)
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        retry: bool = True,
        what: str = "request",
        hint: str = "Check that the server is reachable; calling again is safe.",
    ) -> requests.Response:
        """Send a request and return its 2xx response, or raise a typed error.

        Connection errors, timeouts, 5xx and 429 are retried up to
        ``retry.attempts`` times when ``retry`` is true. ``retry`` defaults to true,
        so pass false for a request that is not safe to repeat. The client's calls
        are safe: status reads, and creates that carry an ``Idempotency-Key``, which
        the server runs at most once per key. Other 4xx are never retried.
        """
        headers = headers or {}
        attempts = max(1, self.retry.attempts if retry else 1)
        last_exc: Exception | None = None
        for attempt in range(1, attempts + 1):
            delay: float | None = None
            try:
                response = self._send_once(method, path, json_body, headers)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_exc = exc
                log.warning(
                    "%s %s: %s on attempt %d of %d",
                    method,
                    path,
                    type(exc).__name__,
                    attempt,
                    attempts,
                )
            except requests.RequestException as exc:
                raise NetworkError(
                    f"{what} to {self.base_url} failed: {self._secret.scrub(str(exc))}"
                ) from exc
            else:
                if 200 <= response.status_code < 300:
                    return response
                code = response.status_code
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if not _is_retryable_status(code) or attempt == attempts:
                    raise error_for_response(
                        response, self._secret, retry_after=retry_after
                    )
                if retry_after is not None and retry_after > self.retry.max_retry_wait:
                    # Sleeping an hour inside a notebook cell helps no one, so the
                    # caller gets the server's value and decides.
                    raise error_for_response(
                        response, self._secret, retry_after=retry_after
                    )
                if retry_after is not None:
                    delay = retry_after
                log.warning(
                    "%s %s: HTTP %d on attempt %d of %d (Retry-After %r)",
                    method,
                    path,
                    code,
                    attempt,
                    attempts,
                    response.headers.get("Retry-After"),
                )
                last_exc = None
            if attempt == attempts:
                break
            backoff = self.retry.backoff(attempt, self._rng)
            # A Retry-After of 0 or a past date must not turn into a tight loop.
            delay = backoff if delay is None else max(delay, backoff)
            self._sleep(delay)
        assert last_exc is not None
        kind = "timed out" if isinstance(last_exc, requests.Timeout) else "failed"
        raise NetworkError(
            f"{what} to {self.base_url} {kind} after {attempts} attempt(s): "
            f"{type(last_exc).__name__}. {hint}"
        ) from last_exc
