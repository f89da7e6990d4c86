"""The ``opennote-video`` command: run the local backend, manage keys, make videos."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any

_DEFAULT_DIR_HELP = "local-backend in the user data directory"


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of seconds, got {text}"
        )
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port from 0 to 65535 (0 picks a free one), got {text}"
        )
    return value


def _log_level(text: str) -> str:
    level = text.upper()
    if not isinstance(logging.getLevelName(level), int):
        raise argparse.ArgumentTypeError(
            f"expected DEBUG, INFO, WARNING or ERROR, got {text}"
        )
    return level


def _data_dir(text: str) -> Path:
    return Path(text).expanduser()


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``opennote-video``."""
    parser = argparse.ArgumentParser(
        prog="opennote-video",
        description="Make Opennote educational videos, or run the local backend.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the local Opennote-compatible API server in the foreground"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--data-dir",
        type=_data_dir,
        default=None,
        help="directory for the database and videos (default: "
        + _DEFAULT_DIR_HELP
        + ")",
    )
    serve.add_argument(
        "--minute-seconds",
        type=_positive_float,
        default=60.0,
        help="length in seconds of the per-minute rate window (default 60)",
    )
    serve.add_argument(
        "--day-seconds",
        type=_positive_float,
        default=86400.0,
        help="length in seconds of the per-day rate window and of the "
        "Idempotency-Key memory (default 86400)",
    )
    serve.add_argument(
        "--log-level",
        type=_log_level,
        default="INFO",
        help="logging level (default INFO)",
    )
    serve.set_defaults(handler=_serve)

    keys = commands.add_parser("keys", help="manage API keys of the local backend")
    key_commands = keys.add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    create_key = key_commands.add_parser(
        "create", help="create an API key for an organization and print it once"
    )
    create_key.add_argument(
        "--data-dir",
        type=_data_dir,
        default=None,
        help=f"the server's data directory (default: {_DEFAULT_DIR_HELP})",
    )
    create_key.add_argument("--org", required=True, help="organization name")
    create_key.add_argument(
        "--tier",
        default="developer",
        help="rate-limit tier of a new organization: developer (3/min, 50/day), "
        "scale (10/min, 150/day) or enterprise (needs --per-minute and --per-day)",
    )
    create_key.add_argument(
        "--credits",
        type=float,
        default=100.0,
        help="credits of a new organization (default 100; a video costs one credit "
        "per paragraph or script section)",
    )
    create_key.add_argument(
        "--per-minute", type=int, default=None, help="enterprise creates per minute"
    )
    create_key.add_argument(
        "--per-day", type=int, default=None, help="enterprise creates per day"
    )
    create_key.set_defaults(handler=_keys_create)

    credits = key_commands.add_parser(
        "credits", help="add credits to an organization and print its balance"
    )
    credits.add_argument(
        "--data-dir",
        type=_data_dir,
        default=None,
        help=f"the server's data directory (default: {_DEFAULT_DIR_HELP})",
    )
    credits.add_argument("--org", required=True, help="organization name")
    credits.add_argument(
        "--add", type=float, required=True, help="credits to add (a positive number)"
    )
    credits.set_defaults(handler=_keys_credits)

    from opennote_jupyter import cli_create

    cli_create.add_parser(commands)
    return parser


def _resolve_data_dir(path: Path | None) -> Path:
    if path is not None:
        return path
    from opennote_jupyter.paths import local_backend_dir

    return local_backend_dir()


def _open_store(command: str, data_dir: Path | None) -> Any:
    """Open the store of ``data_dir``, or print why not and return ``None``."""
    from opennote_jupyter.local.store import DataDirError, Store

    try:
        return Store(_resolve_data_dir(data_dir))
    except DataDirError as exc:
        print(f"opennote-video {command}: {exc}", file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from opennote_jupyter.local.server import Backend
    from opennote_jupyter.local.store import DataDirError

    try:
        backend = Backend(
            _resolve_data_dir(args.data_dir),
            minute_seconds=args.minute_seconds,
            day_seconds=args.day_seconds,
        )
    except DataDirError as exc:
        print(f"opennote-video serve: {exc}", file=sys.stderr)
        return 2
    try:
        backend.serve_forever(args.host, args.port)
    except OSError as exc:
        # str() of OSError(errno, text) starts with "[Errno N]", which the text
        # already explains.
        message = exc.strerror if exc.strerror and exc.filename is None else str(exc)
        print(f"opennote-video serve: {message}", file=sys.stderr)
        return 2
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from opennote_jupyter.local.auth import create_key

    # Checked here so the message names the options, not create_key's arguments.
    limits = {"--per-minute": args.per_minute, "--per-day": args.per_day}
    if args.tier.strip().lower() == "enterprise" and not all(
        limit is not None and limit >= 1 for limit in limits.values()
    ):
        received = ", ".join(
            f"{option} {'not set' if value is None else value}"
            for option, value in limits.items()
        )
        print(
            "opennote-video keys create: the enterprise tier needs its own limits: "
            f"pass --per-minute and --per-day as positive integers (got {received})",
            file=sys.stderr,
        )
        return 2
    store = _open_store("keys create", args.data_dir)
    if store is None:
        return 2
    try:
        key = create_key(
            store,
            args.org,
            tier=args.tier,
            credits=args.credits,
            per_minute=args.per_minute,
            per_day=args.per_day,
        )
    except ValueError as exc:
        print(f"opennote-video keys create: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(key)
    return 0


def _keys_credits(args: argparse.Namespace) -> int:

    if not (args.add > 0 and math.isfinite(args.add)):
        print(
            "opennote-video keys credits: --add must be positive and finite, got "
            f"{args.add:g}",
            file=sys.stderr,
        )
        return 2
    store = _open_store("keys credits", args.data_dir)
    if store is None:
        return 2
    try:
        org = store.add_credits(args.org.strip(), args.add)
    finally:
        store.close()
    if org is None:
        print(
            f"opennote-video keys credits: no organization named {args.org!r}; "
            "create it with 'opennote-video keys create --org NAME'",
            file=sys.stderr,
        )
        return 2
    print(f"{org.name}: {org.credits:g} credits")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``opennote-video`` with ``argv`` (default ``sys.argv[1:]``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
