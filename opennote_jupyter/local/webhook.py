"""Deliver a job's final status to its ``webhook_url``, in the background."""

from __future__ import annotations

import logging
import threading
from typing import Any

import requests

logger = logging.getLogger(__name__)


class WebhookSender:
    """POST final statuses to webhooks from daemon threads, retrying with backoff.

    A delivery is tried ``attempts`` times. Before try ``n`` (counting from 1) the
    sender waits ``min(first_delay * 2 ** (n - 2), max_delay)`` seconds. A 2xx
    response ends the delivery; anything else is logged and retried, and a delivery
    that runs out of tries is logged and dropped: it never changes the job.
    """

    def __init__(
        self,
        *,
        attempts: int = 5,
        first_delay: float = 1.0,
        max_delay: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        self.attempts = attempts
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self._stopping = threading.Event()

    def send(
        self, video_id: str, url: str, payload: dict[str, Any]
    ) -> threading.Thread:
        """Start delivering ``payload`` to ``url`` and return the delivery thread."""
        thread = threading.Thread(
            target=self._deliver,
            args=(video_id, url, payload),
            name=f"opennote-webhook-{video_id}",
            daemon=True,
        )
        thread.start()
        return thread

    def stop(self) -> None:
        """Cut the waits between retries short, so deliveries end soon."""
        self._stopping.set()

    def _deliver(self, video_id: str, url: str, payload: dict[str, Any]) -> None:
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                delay = min(self.first_delay * 2 ** (attempt - 2), self.max_delay)
                if self._stopping.wait(delay):
                    logger.warning(
                        "webhook for job %s dropped after %d tries: the server stopped",
                        video_id,
                        attempt - 1,
                    )
                    return
            try:
                response = requests.post(url, json=payload, timeout=self.timeout)
            except requests.RequestException as exc:
                logger.warning(
                    "webhook for job %s, try %d of %d, failed: %s",
                    video_id,
                    attempt,
                    self.attempts,
                    exc,
                )
                continue
            if 200 <= response.status_code < 300:
                logger.info(
                    "webhook for job %s delivered on try %d (HTTP %d)",
                    video_id,
                    attempt,
                    response.status_code,
                )
                return
            logger.warning(
                "webhook for job %s, try %d of %d, got HTTP %d",
                video_id,
                attempt,
                self.attempts,
                response.status_code,
            )
        logger.error(
            "webhook for job %s not delivered after %d tries; the job is unaffected",
            video_id,
            self.attempts,
        )
