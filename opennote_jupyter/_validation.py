"""Local checks of API keys, base URLs and create requests, before anything is sent."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from opennote_jupyter import contract
from opennote_jupyter.errors import ConfigurationError, RequestValidationError

_PLACEHOLDER_WORDS = {
    "token",
    "key",
    "apikey",
    "api_key",
    "api-key",
    "api key",
    "secret",
    "changeme",
    "change-me",
    "placeholder",
    "none",
    "null",
    "undefined",
    "test",
    "xxx",
    "todo",
    "opennote_api_key",
}

_HOW_TO_SET = (
    "Set a real key: export OPENNOTE_API_KEY=<key from your Opennote dashboard>, or "
    "pass OpennoteClient(api_key=...). With no key at all the client uses the local "
    "backend."
)


def check_api_key(value: Any, source: str) -> str:
    """Return the key with whitespace and a ``Bearer`` prefix removed.

    Raises
    ------
    ConfigurationError
        If the key is not a string, is a placeholder such as ``"token"``,
        ``"$OPENNOTE_API_KEY"`` or ``"<your key>"``, or cannot go into an HTTP
        header. The message never contains the key.
    """
    if not isinstance(value, str):
        raise ConfigurationError(
            f"the API key from {source} is a {type(value).__name__}, not a string. "
            + _HOW_TO_SET
        )
    key = value.strip().strip("'\"").strip()
    if key.lower().startswith("bearer "):
        key = key[len("bearer ") :].strip()
    lowered = key.lower()
    placeholder = (
        not key
        or lowered in _PLACEHOLDER_WORDS
        or key.startswith("$")
        or key.startswith("%")
        or key.startswith("{")
        or (key.startswith("<") and key.endswith(">"))
        or ("your" in lowered and "key" in lowered)
        or "api_key_here" in lowered
        or len(set(lowered)) == 1
        or lowered.endswith("...")
    )
    if placeholder:
        problem = "empty" if not key else "a placeholder, not a real key"
        raise ConfigurationError(
            f"the API key from {source} is {problem}. " + _HOW_TO_SET
        )
    if any(ch.isspace() for ch in key) or not key.isascii() or not key.isprintable():
        raise ConfigurationError(
            f"the API key from {source} contains spaces or characters an HTTP "
            "header cannot carry; copy the key again. " + _HOW_TO_SET
        )
    return key


def check_base_url(value: Any, source: str) -> str:
    """Return the base URL without a trailing slash, or raise ConfigurationError."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"the base URL from {source} is empty: pass a URL such as "
            "https://api.opennote.com"
        )
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"the base URL from {source} is {url!r}: use an http:// or https:// URL "
            "such as https://api.opennote.com"
        )
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise ConfigurationError(
            f"the base URL from {source} is {url!r}: its port is not a number from "
            "0 to 65535"
        ) from None
    if parts.username or parts.password:
        raise ConfigurationError(
            f"the base URL from {source} contains credentials: remove them, the key "
            "goes in OPENNOTE_API_KEY"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"the base URL from {source} is {url!r}: remove the query and fragment"
        )
    return url


def _invalid(field: str, value: Any, rule: str) -> RequestValidationError:
    value_text = repr(value)
    if len(value_text) > 80:
        value_text = value_text[:77] + "..."
    return RequestValidationError(
        f"{field}={value_text} is invalid: {rule}", field=field, value=value
    )


def _check_int(field: str, value: Any, low: int, high: int, meaning: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not low <= value <= high
    ):
        raise _invalid(field, value, f"use an integer from {low} to {high} ({meaning})")
    return value


def _check_bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _invalid(field, value, "use True or False")
    return value


def _check_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise _invalid(
            "messages",
            messages,
            "use a non-empty list of {'role': ..., 'content': ...} dicts",
        )
    out = []
    roles = ", ".join(contract.MESSAGE_ROLES)
    for index, message in enumerate(messages):
        name = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _invalid(name, message, "use a dict with 'role' and 'content'")
        role = message.get("role")
        content = message.get("content")
        if role not in contract.MESSAGE_ROLES:
            raise _invalid(f"{name}.role", role, f"use one of {roles}")
        if role == "system" and index != 0:
            raise _invalid(
                f"{name}.role", role, "only the first message may be a system message"
            )
        if not isinstance(content, str) or not content.strip():
            raise _invalid(f"{name}.content", content, "use a non-empty string")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise _invalid(
            f"messages[{len(out) - 1}].role",
            out[-1]["role"],
            "the last message must be a user message: it states the video's topic",
        )
    return out


def build_create_payload(
    prompt: Any = None,
    *,
    messages: Any = None,
    script: Any = None,
    title: Any = "",
    length: Any = contract.DEFAULT_LENGTH,
    include_sources: Any = False,
    search_for: Any = None,
    source_count: Any = contract.DEFAULT_SOURCE_COUNT,
    upload_to_s3: Any = True,
    webhook_url: Any = None,
) -> dict[str, Any]:
    """Check a create request against the contract and return its JSON body.

    Raises
    ------
    RequestValidationError
        Naming the first invalid field, its value and the allowed values.
    """
    if prompt is not None and messages is not None:
        raise _invalid(
            "prompt",
            prompt,
            "pass prompt or messages, not both (a prompt is one user message)",
        )
    payload: dict[str, Any] = {"model": contract.MODEL}
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise _invalid("prompt", prompt, "use a non-empty string")
        payload["messages"] = [{"role": "user", "content": prompt}]
    elif messages is not None:
        payload["messages"] = _check_messages(messages)
    if script is not None:
        if not isinstance(script, str) or not script.strip():
            raise _invalid("script", script, "use a non-empty string")
        if len(script) > contract.MAX_SCRIPT_CHARS:
            raise RequestValidationError(
                f"script has {len(script)} characters, more than the maximum of "
                f"{contract.MAX_SCRIPT_CHARS}: shorten it",
                field="script",
                value=f"<{len(script)} characters>",
            )
        payload["script"] = script
    if "messages" not in payload and "script" not in payload:
        raise RequestValidationError(
            "nothing to make a video about: pass a prompt, messages or a script",
            field="prompt",
            value=None,
        )
    if not isinstance(title, str):
        raise _invalid("title", title, "use a string")
    payload["title"] = title
    payload["length"] = _check_int(
        "length",
        length,
        contract.MIN_LENGTH,
        contract.MAX_LENGTH,
        "number of script paragraphs",
    )
    payload["include_sources"] = _check_bool("include_sources", include_sources)
    if search_for is not None:
        if not isinstance(search_for, str) or not search_for.strip():
            raise _invalid("search_for", search_for, "use a non-empty string or None")
        if len(search_for) > contract.MAX_SEARCH_FOR_CHARS:
            raise _invalid(
                "search_for",
                search_for,
                f"it has {len(search_for)} characters; use at most "
                f"{contract.MAX_SEARCH_FOR_CHARS}",
            )
        payload["search_for"] = search_for
    payload["source_count"] = _check_int(
        "source_count",
        source_count,
        contract.MIN_SOURCE_COUNT,
        contract.MAX_SOURCE_COUNT,
        "number of web sources",
    )
    payload["upload_to_s3"] = _check_bool("upload_to_s3", upload_to_s3)
    if webhook_url is not None:
        parts = urlsplit(webhook_url) if isinstance(webhook_url, str) else None
        try:
            port_ok = parts is not None and (parts.port is None or parts.port > 0)
        except ValueError:
            port_ok = False
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or not port_ok
        ):
            raise _invalid("webhook_url", webhook_url, "use an http:// or https:// URL")
        payload["webhook_url"] = webhook_url
    return payload


_VIDEO_ID = re.compile(r"^[A-Za-z0-9._~:-]{1,200}$")


def check_video_id(video_id: Any) -> str:
    """Return ``video_id`` if it can be put into a status URL path."""
    if not isinstance(video_id, str) or not _VIDEO_ID.match(video_id):
        raise _invalid(
            "video_id",
            video_id,
            "use the id returned by create (letters, digits, '-', '_', '.', ':')",
        )
    return video_id
