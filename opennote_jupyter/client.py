"""Client for the Opennote Video API: create videos and wait for them.

Retries reuse one idempotency key, so a lost response does not charge twice, and the
API key stays out of logs and errors. The module uses plain ``requests`` and does not
import IPython, pandas or ipywidgets at module level, so scripts and the notebook
layer share it::

    from opennote_jupyter import OpennoteClient

    client = OpennoteClient()          # OPENNOTE_API_KEY, or the local backend
    result = client.generate("Explain Fourier series", length=2)
    result.url
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from opennote_jupyter import contract
from opennote_jupyter._transport import RetryPolicy, Secret, Transport
from opennote_jupyter._validation import (
    build_create_payload,
    check_api_key,
    check_base_url,
    check_video_id,
)
from opennote_jupyter.contract import Tier, tier_named
from opennote_jupyter.errors import (
    APIError,
    AuthenticationError,
    BatchError,
    ConfigurationError,
    InsufficientCreditsError,
    NetworkError,
    OpennoteError,
    RateLimitError,
    RequestValidationError,
    ServerError,
    VideoFailedError,
    WaitTimeoutError,
)
from opennote_jupyter.journal import Journal
from opennote_jupyter.models import VideoJob, VideoResult, VideoStatus
from opennote_jupyter.pacing import Pacer
from opennote_jupyter.paths import data_home

if TYPE_CHECKING:
    import pandas

__all__ = ["HOSTED_BASE_URL", "OpennoteClient"]

log = logging.getLogger(__name__)

HOSTED_BASE_URL = "https://api.opennote.com"
API_KEY_ENV = "OPENNOTE_API_KEY"
BASE_URL_ENV = "OPENNOTE_BASE_URL"

# Limits used for the embedded backend when it does not report its own.
_LOCAL_FALLBACK_TIER = Tier("enterprise", per_minute=1000, per_day=100_000)

# Idempotency keys of creates that are being sent by this process right now.
_IN_FLIGHT: set[str] = set()
_IN_FLIGHT_LOCK = threading.Lock()

_local_notice_logged = False


# Bounds that keep the socket timeout representable and retry loops short.
_MAX_TIMEOUT_S = 86400.0
_MAX_RETRIES = 100


def _is_loopback(base_url: str) -> bool:
    """Return whether the URL's host is ``localhost`` or a loopback IP address."""
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # A name such as 127.example.com may resolve anywhere.
        return False


def _backend_tier(backend: Any) -> Tier:
    """Return the limits of the embedded backend's own key, or generous fallbacks."""
    import opennote_jupyter.local as local

    per_minute = getattr(
        backend, "per_minute", getattr(local, "DEFAULT_PER_MINUTE", None)
    )
    per_day = getattr(backend, "per_day", getattr(local, "DEFAULT_PER_DAY", None))
    if isinstance(per_minute, int) and isinstance(per_day, int):
        return Tier("enterprise", per_minute=per_minute, per_day=per_day)
    return _LOCAL_FALLBACK_TIER


class OpennoteClient:
    """A client of the Opennote Video API, hosted or local.

    Parameters
    ----------
    api_key
        The API key. Defaults to ``$OPENNOTE_API_KEY``. With no key anywhere (and
        no ``base_url``) the client starts the embedded local backend on first use.
    base_url
        Server root. Defaults to ``$OPENNOTE_BASE_URL``, then
        ``https://api.opennote.com``.
    tier
        Rate-limit tier of the key's organization. ``"developer"`` (3 creates per
        minute, 50 per day) is the default for a key. The others are ``"scale"``
        and ``"enterprise"`` (alias ``"custom"``), which needs ``per_minute`` and
        ``per_day``.
    per_minute, per_day
        Custom limits. Passing them without ``tier`` selects the enterprise tier.
    pacing_windows
        ``(minute_s, day_s)``: the rate windows in seconds. Shorter ones only make
        sense against a local backend started with the same windows.
    timeout
        Seconds for each HTTP request: one number for both connect and read, or a
        ``(connect, read)`` pair, each above 0 and at most 86400.
    poll_interval
        Seconds between status reads in :meth:`wait`. Defaults to 0.5 s for a
        server on this machine and 10 s otherwise.
    wait_timeout
        Seconds :meth:`wait` waits when called with ``timeout=None``.
    max_retries
        Retries after the first send of a status read or create, 0 to 100.
    max_retry_wait
        Maximum ``Retry-After`` in seconds that the client sleeps through before a
        retry. A longer one raises :class:`RateLimitError`.
    max_pacing_wait
        Maximum wait in seconds for a free slot under the tier. A longer wait
        raises :class:`RateLimitError`. Defaults to twice the minute window plus
        5 s, so a per-minute limit is waited out and a spent day is not.
    backoff
        ``(base, cap)`` of the exponential backoff between retries, in seconds.
    journal
        Record creates in the on-disk journal. Turn it off only for throwaway use.

    Notes
    -----
    The key is kept out of ``repr``, exceptions, logs and files: it only goes into
    the ``Authorization`` header. Placeholder keys (``"token"``,
    ``"$OPENNOTE_API_KEY"``, ``"<your key>"``) raise :class:`ConfigurationError`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        tier: str | None = None,
        per_minute: int | None = None,
        per_day: int | None = None,
        pacing_windows: tuple[float, float] = (60.0, 86400.0),
        timeout: float | tuple[float, float] = (10.0, 60.0),
        poll_interval: float | None = None,
        wait_timeout: float = 3600.0,
        max_retries: int = 4,
        max_retry_wait: float = 120.0,
        max_pacing_wait: float | None = None,
        backoff: tuple[float, float] | None = None,
        journal: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sleep = sleep
        self._journal_enabled = journal
        self._timeout = self._check_timeout(timeout)
        self._pacing_windows = self._check_windows(pacing_windows)
        self.wait_timeout = _setting_seconds("wait_timeout", wait_timeout)
        self.max_pacing_wait = (
            _setting_seconds("max_pacing_wait", max_pacing_wait)
            if max_pacing_wait is not None
            else 2 * self._pacing_windows[0] + 5.0
        )
        self._poll_interval = (
            _setting_seconds("poll_interval", poll_interval)
            if poll_interval is not None
            else None
        )
        self._max_retries = self._check_max_retries(max_retries)
        self._max_retry_wait = _setting_seconds("max_retry_wait", max_retry_wait)
        if backoff is not None:
            if not isinstance(backoff, (tuple, list)) or len(backoff) != 2:
                raise ConfigurationError(
                    f"backoff={backoff!r}: pass a (base, cap) pair of seconds"
                )
            backoff = (
                _setting_seconds("backoff", backoff[0]),
                _setting_seconds("backoff", backoff[1]),
            )
        self._backoff = backoff
        self._requested_tier = (tier, per_minute, per_day)

        if api_key is not None:
            self._secret: Secret | None = Secret(check_api_key(api_key, "api_key="))
        elif os.environ.get(API_KEY_ENV) is not None:
            self._secret = Secret(check_api_key(os.environ[API_KEY_ENV], API_KEY_ENV))
        else:
            self._secret = None

        if base_url is not None:
            self._base_url: str | None = check_base_url(base_url, "base_url=")
        elif os.environ.get(BASE_URL_ENV):
            self._base_url = check_base_url(os.environ[BASE_URL_ENV], BASE_URL_ENV)
        elif self._secret is not None:
            self._base_url = HOSTED_BASE_URL
        else:
            self._base_url = None

        if self._secret is None and self._base_url is not None:
            raise ConfigurationError(
                f"no API key for {self._base_url}: pass api_key=... or set "
                f"{API_KEY_ENV}. Leave both the key and the base URL unset to use "
                "the local backend."
            )
        self.uses_local_backend = self._secret is None
        if self._base_url is not None and self._secret is not None:
            scheme = urlsplit(self._base_url).scheme
            if scheme == "http" and not _is_loopback(self._base_url):
                log.warning(
                    "base URL %s is plain http: the API key travels unencrypted",
                    self._base_url,
                )
        # Validate the tier now, so a bad one fails at construction.
        self._tier: Tier | None = None
        if not self.uses_local_backend or tier is not None or per_minute is not None:
            self._tier = self._resolve_tier(None)

        self._transport: Transport | None = None
        self._pacer: Pacer | None = None
        self._local_data_dir: str | None = None
        self._setup_lock = threading.Lock()

    # -- configuration -----------------------------------------------------

    @staticmethod
    def _check_timeout(timeout: Any) -> tuple[float, float]:
        pair = timeout if isinstance(timeout, (tuple, list)) else (timeout, timeout)
        if len(pair) != 2:
            raise ConfigurationError(
                f"timeout={timeout!r}: pass seconds or a (connect, read) pair"
            )
        out = []
        for part in pair:
            if (
                isinstance(part, bool)
                or not isinstance(part, (int, float))
                or not math.isfinite(part)
                or not 0 < part <= _MAX_TIMEOUT_S
            ):
                raise ConfigurationError(
                    f"timeout={timeout!r} is invalid: every timeout must be a "
                    f"number of seconds above 0 and at most {_MAX_TIMEOUT_S:g}"
                )
            out.append(float(part))
        return out[0], out[1]

    @staticmethod
    def _check_max_retries(value: Any) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 0 <= value <= _MAX_RETRIES
        ):
            raise ConfigurationError(
                f"max_retries={value!r} is invalid: pass a whole number from 0 to "
                f"{_MAX_RETRIES}"
            )
        return value

    @staticmethod
    def _check_windows(windows: Any) -> tuple[float, float]:
        try:
            minute_s, day_s = windows
        except (TypeError, ValueError):
            minute_s = day_s = None
        for part in (minute_s, day_s):
            if (
                isinstance(part, bool)
                or not isinstance(part, (int, float))
                or not math.isfinite(part)
                or part <= 0
            ):
                raise ConfigurationError(
                    f"pacing_windows={windows!r}: pass (minute_s, day_s), two "
                    "positive numbers of seconds"
                )
        return float(minute_s), float(day_s)

    def _resolve_tier(self, backend: Any) -> Tier:
        name, per_minute, per_day = self._requested_tier
        if name is None and per_minute is None and per_day is None:
            if backend is not None:
                return _backend_tier(backend)
            return contract.TIERS["developer"]
        for label, limit in (("per_minute", per_minute), ("per_day", per_day)):
            if limit is not None and (
                isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
            ):
                raise ConfigurationError(
                    f"{label}={limit!r}: pass a whole number of creates, 1 or more"
                )
        if name is None or name.strip().lower() == "custom":
            name = "enterprise"
        if name.strip().lower() in contract.TIERS and (
            per_minute is not None or per_day is not None
        ):
            raise ConfigurationError(
                f"tier={name!r} has fixed limits, so per_minute and per_day would be "
                "ignored: pass tier='enterprise' with your own numbers, or leave "
                "them out"
            )
        try:
            return tier_named(name, per_minute=per_minute, per_day=per_day)
        except ValueError as exc:
            raise ConfigurationError(f"tier={name!r}: {exc}") from exc

    @property
    def base_url(self) -> str:
        """Server root URL. Reading it starts the local backend if needed."""
        return self._ensure_transport().base_url

    @property
    def tier(self) -> Tier:
        """Rate-limit tier that paces the creates of this client."""
        self._ensure_transport()
        assert self._tier is not None
        return self._tier

    @property
    def scope(self) -> str:
        """Identity of server and key in the journal and pacing files.

        It contains a fingerprint of the key, never the key. The embedded backend is
        named by its data directory, because its port changes on every start.
        """
        if self.uses_local_backend:
            if self._local_data_dir is None:
                from opennote_jupyter.paths import local_backend_dir

                # Not started yet: the shared backend will use this directory.
                return f"local:{local_backend_dir()}"
            return f"local:{self._local_data_dir}"
        assert self._secret is not None and self._base_url is not None
        return f"{self._base_url}#{self._secret.fingerprint()}"

    def __repr__(self) -> str:
        if self._transport is not None:
            where = self._transport.base_url
        elif self.uses_local_backend:
            where = "local backend (not started)"
        else:
            where = self._base_url
        tier = self._tier.name if self._tier is not None else "local"
        # The embedded backend's key exists only once the backend has started.
        key = "'***'" if self._secret is not None else "None"
        return f"OpennoteClient(base_url={where!r}, tier={tier!r}, api_key={key})"

    def __reduce__(self) -> Any:
        raise TypeError(
            "OpennoteClient contains an API key and cannot be pickled: create a "
            "new client in the other process"
        )

    def __enter__(self) -> OpennoteClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled HTTP connections. The local backend keeps running."""
        if self._transport is not None:
            self._transport.close()

    def _ensure_transport(self) -> Transport:
        if self._transport is not None:
            return self._transport
        with self._setup_lock:
            if self._transport is not None:
                return self._transport
            if self.uses_local_backend:
                base_url, secret, tier = self._start_local()
            else:
                assert self._base_url is not None and self._secret is not None
                base_url, secret = self._base_url, self._secret
                tier = self._tier or self._resolve_tier(None)
            self._secret = secret
            self._tier = tier
            local = _is_loopback(base_url)
            base, cap = self._backoff or ((0.1, 2.0) if local else (0.5, 8.0))
            policy = RetryPolicy(
                attempts=self._max_retries + 1,
                backoff_base=base,
                backoff_cap=cap,
                max_retry_wait=self._max_retry_wait,
            )
            self._transport = Transport(
                base_url, secret, timeout=self._timeout, retry=policy, sleep=self._sleep
            )
            if self._poll_interval is None:
                self._poll_interval = 0.5 if local else 10.0
            return self._transport

    def _start_local(self) -> tuple[str, Secret, Tier]:
        global _local_notice_logged
        try:
            from opennote_jupyter.local import default_backend
        except ImportError as exc:
            raise ConfigurationError(
                f"no API key is set and the local backend cannot start ({exc}). "
                "Install it with: pip install 'opennote-jupyter[local]', or set "
                f"{API_KEY_ENV} to use the hosted API."
            ) from exc
        try:
            backend = default_backend()
        except (RuntimeError, OSError) as exc:
            # A damaged data directory, or a server that did not come up.
            raise ConfigurationError(
                f"no API key is set and the local backend did not start: {exc}. "
                f"Fix that, or set {API_KEY_ENV} to use the hosted API."
            ) from exc
        if not _local_notice_logged:
            _local_notice_logged = True
            log.warning(
                "Using the local Opennote backend at %s (data in %s) because no API "
                "key is set. To use the hosted API, set %s or pass "
                "OpennoteClient(api_key=...).",
                backend.base_url,
                backend.data_dir,
                API_KEY_ENV,
            )
        tier = self._tier or self._resolve_tier(backend)
        self._local_data_dir = str(backend.data_dir)
        return backend.base_url, Secret(backend.api_key), tier

    def _journal(self) -> Journal | None:
        if not self._journal_enabled:
            return None
        return Journal(data_home() / "journal.jsonl")

    def _get_pacer(self) -> Pacer:
        if self._pacer is None:
            self._pacer = Pacer(
                data_home() / "pacing.json",
                self.scope,
                self.tier,
                windows=self._pacing_windows,
                sleep=self._sleep,
            )
        return self._pacer

    # -- create ------------------------------------------------------------

    def create(
        self,
        prompt: str | None = None,
        *,
        messages: list[dict[str, str]] | None = None,
        script: str | None = None,
        title: str = "",
        length: int = contract.DEFAULT_LENGTH,
        include_sources: bool = False,
        search_for: str | None = None,
        source_count: int = contract.DEFAULT_SOURCE_COUNT,
        upload_to_s3: bool = True,
        webhook_url: str | None = None,
    ) -> VideoJob:
        """Start a video job and return it with its ``video_id``.

        The request is checked locally first. It is paced under the tier,
        journaled with a fresh ``Idempotency-Key`` before it is sent, and retried
        with the same key after a lost response (connection error, timeout, 5xx,
        429), so the server makes and charges the video once. If an earlier call
        with the same arguments never got a response (for example, the kernel
        died), its key is reused.

        Parameters
        ----------
        prompt
            Topic of the video, as shorthand for one user message.
        messages
            Chat messages ``{"role", "content"}``. The last one must be from the user.
        script
            A ready script, sections separated by lines of ``-----``.
        title
            The video's title.
        length
            Number of script paragraphs, 1 to 5.
        include_sources, search_for, source_count
            Gather ``source_count`` (1 to 5) web sources, optionally with the web
            query ``search_for`` (at most 100 characters).
        upload_to_s3
            True: the result has a URL. False: it carries the mp4 as base64.
        webhook_url
            Where the server POSTs the final status.

        Raises
        ------
        RequestValidationError
            A field breaks the contract (checked locally, or HTTP 422).
        AuthenticationError, InsufficientCreditsError
            HTTP 401 or 402, which is not retried.
        RateLimitError
            The tier's next slot, or the server's ``Retry-After``, is too far away.
        NetworkError, ServerError
            No response after the retries. Calling again reuses the key.
        """
        payload = build_create_payload(
            prompt,
            messages=messages,
            script=script,
            title=title,
            length=length,
            include_sources=include_sources,
            search_for=search_for,
            source_count=source_count,
            upload_to_s3=upload_to_s3,
            webhook_url=webhook_url,
        )
        return self._create_payload(payload)

    def _intent_of(self, payload: Mapping[str, Any]) -> str:
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(f"{self.scope}\n{canonical}".encode()).hexdigest()

    def _create_payload(
        self, payload: dict[str, Any], *, idempotency_key: str | None = None
    ) -> VideoJob:
        transport = self._ensure_transport()
        journal = self._journal()
        scope = self.scope
        intent = self._intent_of(payload)
        with _IN_FLIGHT_LOCK:
            ikey = idempotency_key
            if ikey is None and journal is not None:
                try:
                    ikey = journal.reusable_key(scope, intent, _IN_FLIGHT)
                except OSError as exc:
                    raise _state_files_error(exc) from exc
                if ikey is not None:
                    log.info(
                        "create: reusing the idempotency key of an unanswered "
                        "create with the same arguments (%s)",
                        ikey,
                    )
            reused = ikey is not None
            ikey = ikey or str(uuid.uuid4())
            if ikey in _IN_FLIGHT:
                raise OpennoteError(
                    f"a create with idempotency key {ikey} is already being sent by "
                    "this process; wait for it to return"
                )
            _IN_FLIGHT.add(ikey)
        try:
            try:
                if journal is not None and not reused:
                    journal.append(
                        "intent",
                        idempotency_key=ikey,
                        intent=intent,
                        scope=scope,
                        base_url=transport.base_url,
                        pid=os.getpid(),
                        request=payload,
                    )
                pacer = self._get_pacer()
                token = pacer.acquire(self.max_pacing_wait)
            except OSError as exc:
                # Without the journal a lost response could mean paying twice,
                # so nothing is sent.
                raise _state_files_error(exc) from exc
            except RateLimitError as exc:
                # Never sent, so a later call may use a fresh key. A reused key
                # stays open: its first send may have reached the server.
                if not reused:
                    self._journal_rejected(journal, ikey, exc)
                raise
            try:
                response = transport.request(
                    "POST",
                    "/v1/video/create",
                    json_body=payload,
                    headers={"Idempotency-Key": ikey},
                    what="create",
                    hint=(
                        "The server may or may not have received it: call create "
                        "again with the same arguments, or client.resume("
                        f"{ikey!r}); the idempotency key is reused, so the video "
                        "is made and charged once."
                    ),
                )
            except (
                AuthenticationError,
                InsufficientCreditsError,
                RequestValidationError,
            ) as exc:
                self._journal_rejected(journal, ikey, exc)
                raise
            except (NetworkError, ServerError, RateLimitError):
                raise
            except APIError as exc:
                self._journal_rejected(journal, ikey, exc)
                raise
            finally:
                pacer.release(token)
            job = self._job_from_response(response, ikey)
            if journal is not None:
                try:
                    journal.append(
                        "created",
                        idempotency_key=ikey,
                        video_id=job.video_id,
                        base_url=transport.base_url,
                    )
                except OSError as exc:
                    # The video exists and is paid for: hand its id over anyway.
                    log.warning(
                        "create: job %s started, but the journal could not record "
                        "it (%s); note the video id",
                        job.video_id,
                        exc,
                    )
            log.info("create: job %s started", job.video_id)
            return job
        finally:
            with _IN_FLIGHT_LOCK:
                _IN_FLIGHT.discard(ikey)

    @staticmethod
    def _journal_rejected(journal: Journal | None, ikey: str, exc: Exception) -> None:
        """Record a rejected create without letting a journal error hide ``exc``."""
        if journal is None:
            return
        try:
            journal.append(
                "rejected",
                idempotency_key=ikey,
                error=f"{type(exc).__name__}: {exc}",
            )
        except OSError as journal_exc:
            log.warning(
                "create: the journal could not record rejected create %s (%s)",
                ikey,
                journal_exc,
            )

    def _job_from_response(self, response: Any, ikey: str) -> VideoJob:
        try:
            body = response.json()
        except ValueError:
            body = None
        if (
            not isinstance(body, dict)
            or not body.get("success")
            or not body.get("video_id")
        ):
            message = body.get("message") if isinstance(body, dict) else None
            assert self._secret is not None
            shown = self._secret.scrub(str(message or response.text[:200]))
            raise APIError(
                f"the server accepted the create but returned no video id: {shown}. "
                "Check client.jobs() before trying again.",
                status_code=response.status_code,
                response=response,
            )
        return VideoJob(
            video_id=str(body["video_id"]),
            success=True,
            message=body.get("message"),
            idempotency_key=ikey,
        )

    # -- status and wait ---------------------------------------------------

    def status(self, video_id: str) -> VideoStatus:
        """Read a job's status once (retried on connection errors, 5xx and 429)."""
        video_id = check_video_id(video_id)
        transport = self._ensure_transport()
        response = transport.request(
            "GET",
            f"/v1/video/status/{quote(video_id, safe='')}",
            what=f"status read of {video_id}",
        )
        try:
            body = response.json()
        except ValueError as exc:
            raise APIError(
                f"the status of {video_id} was not JSON: try again later",
                status_code=response.status_code,
                response=response,
            ) from exc
        if not isinstance(body, dict):
            raise APIError(
                f"the status of {video_id} was not a JSON object: try again later",
                status_code=response.status_code,
                response=response,
            )
        try:
            status = VideoStatus.from_api(body)
        except (TypeError, ValueError, AttributeError) as exc:
            raise APIError(
                f"the status of {video_id} did not match the API's format "
                f"({type(exc).__name__}: {exc}): check that the base URL points at "
                "an Opennote server",
                status_code=response.status_code,
                response=response,
            ) from exc
        if status.video_id is None:
            status = dataclasses.replace(status, video_id=video_id)
        return status

    def wait(
        self,
        video_id: str,
        timeout: float | None = None,
        on_progress: Callable[[VideoStatus], None] | None = None,
        *,
        poll_interval: float | None = None,
    ) -> VideoResult:
        """Poll a job until it finishes and return its result.

        Parameters
        ----------
        video_id
            The job's id.
        timeout
            Seconds to wait. ``None`` means the client's ``wait_timeout``.
        on_progress
            Called with each :class:`VideoStatus` read, the last one included.
        poll_interval
            Seconds between reads. Defaults to the client's ``poll_interval``.

        Raises
        ------
        VideoFailedError
            The job ended ``failed`` or ``status_error``.
        WaitTimeoutError
            The timeout passed first. The job keeps running, so call :meth:`resume`.
        RequestValidationError
            ``timeout`` or ``poll_interval`` is negative, NaN or not a number.
        """
        video_id = check_video_id(video_id)
        self._ensure_transport()
        limit = _seconds("timeout", self.wait_timeout if timeout is None else timeout)
        interval = _seconds(
            "poll_interval", poll_interval or self._poll_interval or 0.5
        )
        deadline = time.monotonic() + limit
        while True:
            status = self.status(video_id)
            if on_progress is not None:
                on_progress(status)
            if status.done:
                return self._finish(video_id, status)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pct = status.completion_percentage
                at = f" at {pct:.0f}%" if pct is not None else ""
                raise WaitTimeoutError(
                    f"video {video_id} is still {status.status}{at} after {limit:g} s. "
                    f"The job goes on: call client.resume({video_id!r}) to wait again.",
                    video_id=video_id,
                    status=status,
                )
            self._sleep(min(interval, remaining))

    def _finish(self, video_id: str, status: VideoStatus) -> VideoResult:
        result = status.result
        ok = status.status == "completed" and result is not None and result.success
        journal = self._journal()
        if journal is not None:
            try:
                row = journal.find(video_id=video_id)
                journal.append(
                    "status",
                    idempotency_key=row["idempotency_key"] if row else None,
                    video_id=video_id,
                    status=status.status
                    if ok or status.status != "completed"
                    else "failed",
                    url=result.s3_url if result else None,
                    error=None
                    if ok
                    else (status.error or (result.error if result else None)),
                    cost=result.cost if result else None,
                    result_title=result.title if result else None,
                )
            except OSError as exc:
                # The job has ended and is paid for: return or raise its outcome.
                log.warning(
                    "wait: job %s ended %s, but the journal could not record it (%s)",
                    video_id,
                    status.status,
                    exc,
                )
        if ok:
            assert result is not None
            return result
        reason = status.error or (result.error if result else None) or status.message
        raise VideoFailedError(
            f"video {video_id} ended {status.status}: {reason or 'no reason given'}. "
            "Create it again; if the reason names the request, fix that first.",
            video_id=video_id,
            status=status,
        )

    def generate(
        self,
        prompt: str | None = None,
        *,
        timeout: float | None = None,
        on_progress: Callable[[VideoStatus], None] | None = None,
        **create_args: Any,
    ) -> VideoResult:
        """Create a video and wait for it, with the arguments of :meth:`create`.

        Returns
        -------
        VideoResult
            URL (or base64 mp4), title, transcript, sources, cost, model, timestamp.
        """
        job = self.create(prompt, **create_args)
        return self.wait(job.video_id, timeout=timeout, on_progress=on_progress)

    def generate_many(
        self,
        prompts: Iterable[str | Mapping[str, Any]],
        *,
        timeout: float | None = None,
        on_progress: Callable[[VideoStatus], None] | None = None,
        on_created: Callable[[int, VideoJob], None] | None = None,
        raise_on_error: bool = True,
        **create_args: Any,
    ) -> list[VideoResult | Exception]:
        """Create a batch under tier pacing, then wait for every job.

        Parameters
        ----------
        prompts
            One entry per video: a prompt string, or a dict of :meth:`create`
            arguments that override ``create_args`` for that item.
        timeout
            Seconds to wait for each job once all are created.
        on_progress
            Called with each status read of every job.
        on_created
            Called with ``(index, job)`` as each job is created.
        raise_on_error
            True: raise :class:`BatchError` if any item failed, after every other
            item finished. False: return the exceptions in place of results.
        **create_args
            Arguments of :meth:`create` shared by all items.

        Returns
        -------
        list
            One :class:`VideoResult` per prompt, in input order (with exceptions in
            place when ``raise_on_error`` is false).

        Notes
        -----
        A 401, 402 or a spent day limit stops the creates that are not sent yet,
        because they would fail alike. Jobs created before are still waited for. Every
        video id is journaled as soon as it exists, and :class:`BatchError` carries
        them all.
        """
        if isinstance(prompts, (str, bytes, Mapping)):
            # Iterating one prompt would make a paid video per character or key.
            raise RequestValidationError(
                f"prompts={prompts!r:.60} is one item, not a list: pass a list such "
                "as [prompt], or call generate() for one video",
                field="prompts",
                value=prompts,
            )
        items = list(prompts)
        outcomes: list[Any] = [None] * len(items)
        video_ids: list[str | None] = [None] * len(items)
        stop: Exception | None = None
        for index, item in enumerate(items):
            if stop is not None:
                outcomes[index] = stop
                continue
            args = dict(create_args)
            if isinstance(item, Mapping):
                args.update(item)
            else:
                args["prompt"] = item
            try:
                job = self.create(**args)
            except (
                AuthenticationError,
                InsufficientCreditsError,
                RateLimitError,
            ) as exc:
                log.warning(
                    "generate_many: item %d failed, later items not sent: %s",
                    index,
                    exc,
                )
                outcomes[index] = exc
                stop = exc
                continue
            except OpennoteError as exc:
                log.warning("generate_many: item %d failed: %s", index, exc)
                outcomes[index] = exc
                continue
            video_ids[index] = job.video_id
            if on_created is not None:
                on_created(index, job)
        for index, video_id in enumerate(video_ids):
            if video_id is None:
                continue
            try:
                outcomes[index] = self.wait(
                    video_id, timeout=timeout, on_progress=on_progress
                )
            except OpennoteError as exc:
                outcomes[index] = exc
        failed = [i for i, out in enumerate(outcomes) if isinstance(out, Exception)]
        if failed and raise_on_error:
            first = outcomes[failed[0]]
            raise BatchError(
                f"{len(failed)} of {len(items)} videos failed (items {failed}); the "
                f"first error: {first}. The other videos finished: see .results, and "
                ".video_ids for the jobs.",
                results=outcomes,
                video_ids=video_ids,
            )
        return outcomes

    def save(self, result: VideoResult, path: str | os.PathLike[str]) -> Path:
        """Write a finished video's mp4 to ``path`` and return the path.

        A base64 result is decoded. A URL result is downloaded without the API
        key, because video URLs are public and may point at another host. A
        regular file appears complete or not at all: the bytes go to a uniquely
        named temporary file beside it, which is renamed at the end and removed on
        failure. Concurrent saves to one path therefore never share a file. A path
        that exists and is not a regular file (``/dev/stdout``, a named pipe) is
        written in place.

        Raises
        ------
        OpennoteError
            ``path`` is a directory or cannot be written, or the result has no
            video.
        NetworkError, APIError
            The download failed.
        """
        target = Path(path)
        if target.is_dir():
            raise OpennoteError(
                f"cannot save the video to {target}: it is a directory. Pass a "
                f"file path such as {target / 'video.mp4'}"
            )
        in_place = target.exists() and not target.is_file()
        if not in_place and target.is_symlink():
            # Write through the link, not over it.
            target = target.resolve()
        partial = target
        try:
            if not in_place:
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = _create_partial_file(target)
            self._write_video(result, partial)
            if not in_place:
                os.replace(partial, target)
        except OSError as exc:
            raise OpennoteError(
                f"cannot write the video to {target}: "
                f"{exc.strerror or type(exc).__name__}. Choose a writable file path."
            ) from exc
        finally:
            if partial != target:
                with contextlib.suppress(OSError):
                    partial.unlink()
        return Path(path)

    def _write_video(self, result: VideoResult, destination: Path) -> None:
        """Write the mp4 of ``result`` to ``destination``, downloading it if needed."""
        import requests

        data = result.video_bytes()
        if data is not None:
            destination.write_bytes(data)
            return
        if not result.s3_url:
            raise OpennoteError(
                f"video {result.video_id} has neither a URL nor base64 data to save"
            )
        try:
            with requests.get(
                result.s3_url, stream=True, timeout=self._timeout
            ) as response:
                if not response.ok:
                    raise APIError(
                        f"download of {result.s3_url} failed with HTTP "
                        f"{response.status_code}: check the URL in a browser",
                        status_code=response.status_code,
                        response=response,
                    )
                with open(destination, "wb") as handle:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        handle.write(chunk)
        except requests.RequestException as exc:
            raise NetworkError(
                f"download of {result.s3_url} failed: {type(exc).__name__}. Try again."
            ) from exc

    # -- journal -----------------------------------------------------------

    def resume(
        self,
        job: str | None = None,
        *,
        timeout: float | None = None,
        on_progress: Callable[[VideoStatus], None] | None = None,
    ) -> VideoResult:
        """Wait for a journaled job, re-sending its create if it never got a response.

        Parameters
        ----------
        job
            A video id, or the idempotency key of a create that got no video id
            (see :meth:`jobs`). ``None`` picks this server's newest unfinished job.

        Raises
        ------
        OpennoteError
            If ``job`` is None and nothing is left to resume.
        """
        journal = self._journal()
        row = None
        if journal is not None:
            if job is None:
                unfinished = [
                    r
                    for r in journal.jobs(self.scope)
                    if r["status"] in ("sending", "pending")
                ]
                row = unfinished[-1] if unfinished else None
                if row is None:
                    raise OpennoteError(
                        "no unfinished job in the journal for this server and key: "
                        "client.jobs() lists the history"
                    )
            else:
                row = journal.find(video_id=job) or journal.find(idempotency_key=job)
        if row is None:
            if job is None:
                raise OpennoteError("the journal is off: pass a video id to resume")
            return self.wait(job, timeout=timeout, on_progress=on_progress)
        video_id = row["video_id"]
        if video_id is None:
            if row["scope"] != self.scope:
                # Re-sending it here would make a second, separately paid video.
                raise OpennoteError(
                    f"the create with idempotency key {row['idempotency_key']} was "
                    f"sent to another server or key ({row['base_url']}): resume it "
                    "with a client for that server and key"
                )
            if row["status"] == "rejected":
                raise OpennoteError(
                    f"the create with idempotency key {row['idempotency_key']} was "
                    f"rejected ({row['error']}); fix it and call create again"
                )
            created = self._create_payload(
                dict(row["request"]), idempotency_key=row["idempotency_key"]
            )
            video_id = created.video_id
        return self.wait(video_id, timeout=timeout, on_progress=on_progress)

    def jobs(self, *, all_servers: bool = False) -> pandas.DataFrame:
        """Return the journaled jobs as a DataFrame, oldest first.

        The columns are ``video_id``, ``status``, ``prompt``, ``requested_title``,
        ``requested_at``, ``updated_at``, ``url``, ``error``, ``cost``,
        ``idempotency_key`` and ``base_url``, then ``created_at``, ``title`` and
        ``file_type`` parsed from ``url``. Besides the API's statuses, ``status``
        is ``sending`` while no response has arrived, and ``rejected`` after a 4xx
        or when pacing did not send the create.

        Parameters
        ----------
        all_servers
            Include jobs of other servers and keys, not only this client's.
        """
        import pandas as pd

        journal = Journal(data_home() / "journal.jsonl")
        rows = journal.jobs(None if all_servers else self.scope)
        records = []
        for row in rows:
            request = row["request"] or {}
            messages = request.get("messages") or []
            prompt = messages[-1].get("content") if messages else None
            records.append(
                {
                    "video_id": row["video_id"],
                    "status": row["status"],
                    "prompt": prompt,
                    "requested_title": request.get("title"),
                    "requested_at": row["requested_at"],
                    "updated_at": row["updated_at"],
                    "url": row["url"],
                    "error": row["error"],
                    "cost": row["cost"],
                    "idempotency_key": row["idempotency_key"],
                    "base_url": row["base_url"],
                }
            )
        columns = [
            "video_id",
            "status",
            "prompt",
            "requested_title",
            "requested_at",
            "updated_at",
            "url",
            "error",
            "cost",
            "idempotency_key",
            "base_url",
        ]
        frame = pd.DataFrame.from_records(records, columns=columns)
        for name in ("requested_at", "updated_at"):
            frame[name] = pd.to_datetime(frame[name], unit="s", utc=True)
        return _add_url_metadata(frame)


def _seconds(name: str, value: Any) -> float:
    """Return ``value`` as seconds, or raise naming ``name`` if it is not 0 or more.

    NaN would make every deadline comparison false, so a wait would never end.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or math.isnan(value)
        or value < 0
    ):
        raise RequestValidationError(
            f"{name}={value!r} is invalid: use a number of seconds, 0 or more",
            field=name,
            value=value,
        )
    return float(value)


def _create_partial_file(target: Path) -> Path:
    """Create an empty, uniquely named file beside ``target`` and return its path.

    ``O_EXCL`` makes the name this call's alone. Mode 0o666 minus the umask gives
    the saved video the permissions of a normally created file, which ``mkstemp``
    (always 0o600) would not.
    """
    for _ in range(10):
        candidate = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"no free temporary name beside {target}")


def _setting_seconds(name: str, value: Any) -> float:
    """Return a client setting in seconds, or raise ConfigurationError naming it."""
    try:
        return _seconds(name, value)
    except RequestValidationError as exc:
        raise ConfigurationError(str(exc)) from None


def _state_files_error(exc: OSError) -> ConfigurationError:
    """Return the error for a job journal or pacing file that cannot be used."""
    return ConfigurationError(
        f"cannot use the job journal or pacing file in {data_home()} "
        f"({exc.strerror or type(exc).__name__}); nothing was sent. Set "
        "OPENNOTE_JUPYTER_HOME to a writable directory."
    )


def _add_url_metadata(frame: pandas.DataFrame) -> pandas.DataFrame:
    """Add ``created_at``, ``title`` and ``file_type`` parsed from ``url``."""
    from opennote_jupyter.urls import parse_video_urls

    names = ("created_at", "title", "file_type")
    if frame.empty:
        for name in names:
            frame[name] = None
        return frame
    # Rows without a URL (still rendering, failed) get missing values.
    parsed = parse_video_urls(frame["url"], errors="coerce")
    for name in names:
        frame[name] = parsed[name].to_numpy()
    return frame
