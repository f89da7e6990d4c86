"""Run the quickstart notebook headlessly and leave an HTML page and the video on disk.

``python -m opennote_jupyter.quickstart`` executes ``notebooks/quickstart.ipynb`` in a
fresh kernel of the running interpreter, with the embedded local backend (the
``OPENNOTE_API_KEY`` and ``OPENNOTE_BASE_URL`` variables are removed from the kernel's
environment unless ``--hosted`` is given). The notebook writes its mp4 into the output
directory. This module then saves the executed notebook and its HTML export beside
it and prints their paths.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Variables that would send the notebook to the hosted API instead of the embedded
# backend. Creating a hosted video costs credits.
HOSTED_ENV_VARS = ("OPENNOTE_API_KEY", "OPENNOTE_BASE_URL")

DEFAULT_OUTPUT_DIR = "quickstart-output"
NOTEBOOK_NAME = "quickstart.ipynb"
DEFAULT_CELL_TIMEOUT = 600.0
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Interval in seconds at which the main thread wakes while the notebook runs in its
# worker thread.
WORKER_POLL_SECONDS = 0.2
# Exit status of a program stopped by SIGINT, as shells report it (128 + 2).
EXIT_INTERRUPTED = 130


def find_quickstart_notebook() -> Path:
    """Return the path of ``notebooks/quickstart.ipynb``.

    The repository checkout that contains this package comes first (an editable
    install), then ``./notebooks`` under the working directory.

    Raises
    ------
    FileNotFoundError
        If neither place has the notebook.
    """
    candidates = [
        Path(__file__).resolve().parent.parent / "notebooks" / NOTEBOOK_NAME,
        Path.cwd() / "notebooks" / NOTEBOOK_NAME,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"{NOTEBOOK_NAME} not found (looked in {tried}): run this from a clone of "
        "the opennote-jupyter repository or pass --notebook PATH"
    )


def execute_notebook(
    path: Path,
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_CELL_TIMEOUT,
) -> Any:
    """Execute a notebook in a new kernel that runs this Python interpreter.

    The kernel spec is written to a temporary directory, so a ``python3`` kernel
    installed elsewhere for another interpreter is never picked.

    Parameters
    ----------
    path
        The notebook to run. The file itself is not changed.
    cwd
        The kernel's working directory, where relative paths in the notebook resolve.
    env
        The kernel's environment. ``None`` means a copy of this process's.
    timeout
        Seconds one cell may run before execution stops with an error.

    Returns
    -------
    nbformat.NotebookNode
        The executed notebook with its outputs.

    Raises
    ------
    nbclient.exceptions.CellExecutionError
        If a cell raises. The message names the cell and the error.
    """
    import nbformat
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from jupyter_core.utils import ensure_event_loop
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="opennote-kernelspec-") as spec_root:
        kernel_name = "opennote-python"
        write_kernel_spec(Path(spec_root) / kernel_name)
        spec_manager = KernelSpecManager(kernel_dirs=[spec_root])
        # IPC sockets rather than TCP, because the kernel serves only this process.
        # Their path prefix must be absolute because the kernel runs in another
        # directory.
        kernel_manager = KernelManager(
            kernel_name=kernel_name,
            kernel_spec_manager=spec_manager,
            transport="ipc",
            ip=str(Path(spec_root) / "kernel"),
        )
        client = NotebookClient(
            notebook,
            km=kernel_manager,
            timeout=int(timeout),
            kernel_name=kernel_name,
        )
        kernel_env = dict(os.environ if env is None else env)
        failure: list[BaseException] = []
        interrupted = threading.Event()

        def run() -> None:
            try:
                client.execute(cwd=str(cwd), env=kernel_env)
            except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
                failure.append(exc)
            finally:
                # jupyter_core's run_sync gives each thread an event loop of its
                # own, and an unclosed loop leaks its self-pipe sockets. After an
                # interrupt nbclient's tasks are still pending, and closing the
                # loop then makes asyncio print "Task was destroyed but it is
                # pending" to stderr as the process exits.
                if not interrupted.is_set():
                    ensure_event_loop().close()

        # nbclient runs in a worker thread because in the main thread it installs
        # its own SIGINT handler, which shuts the kernel down gracefully (waiting
        # for the running cell) and then fails on its cleared kernel client. Here
        # Ctrl-C raises KeyboardInterrupt in the main thread at any stage.
        worker = threading.Thread(target=run, name="quickstart-notebook", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(WORKER_POLL_SECONDS)
        except KeyboardInterrupt:
            interrupted.set()
            # The running cell would delay a graceful shutdown, so kill the kernel.
            if kernel_manager.has_kernel:
                kernel_manager.shutdown_kernel(now=True)
            raise
        # nbclient cleans up only kernel managers it created itself.
        if client.kc is not None:
            client.kc.stop_channels()
        if kernel_manager.has_kernel:
            kernel_manager.shutdown_kernel(now=False)
        if failure:
            raise failure[0]
    return notebook


def export_html(notebook: Any, destination: Path) -> Path:
    """Write a notebook as a standalone HTML page and return its path."""
    from nbconvert import HTMLExporter

    body, _resources = HTMLExporter().from_notebook_node(notebook)
    destination.write_text(body, encoding="utf-8")
    return destination


def kernel_environment(*, hosted: bool) -> dict[str, str]:
    """Return the kernel's environment: this process's, less the hosted API's keys."""
    env = dict(os.environ)
    if not hosted:
        for name in HOSTED_ENV_VARS:
            env.pop(name, None)
    return env


class OutputDirError(Exception):
    """The output directory cannot be created or written to."""


def check_output_dir(output_dir: Path) -> None:
    """Create ``output_dir`` if needed and check that a file can be written in it.

    Writing a probe file, rather than asking ``os.access``, also catches read-only
    file systems and gives the same result for root.

    Raises
    ------
    OutputDirError
        If the directory cannot be created or written to. The message names the
        directory and the ``--output`` option.
    """
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputDirError(
            f"cannot write to the output directory {output_dir} ({reason}): "
            "choose a writable directory with --output DIR"
        ) from None


VideoSnapshot = dict[Path, int]


def snapshot_videos(output_dir: Path) -> VideoSnapshot:
    """Return the mp4 files under ``output_dir`` with their modification times."""
    if not output_dir.is_dir():
        return {}
    return {
        path: path.stat().st_mtime_ns
        for path in output_dir.rglob("*.mp4")
        if path.is_file()
    }


def new_videos(output_dir: Path, before: VideoSnapshot) -> list[Path]:
    """Return the mp4 files under ``output_dir`` new or rewritten since ``before``."""
    after = snapshot_videos(output_dir)
    return sorted(path for path, mtime in after.items() if before.get(path) != mtime)


def run_quickstart(
    output_dir: Path,
    *,
    notebook_path: Path | None = None,
    hosted: bool = False,
    timeout: float = DEFAULT_CELL_TIMEOUT,
) -> dict[str, Any]:
    """Execute the quickstart notebook and save its outputs in ``output_dir``.

    Returns
    -------
    dict
        ``notebook`` and ``html``: the paths of the executed notebook and of its
        HTML export. ``videos``: the mp4 files this run wrote, without those
        that earlier runs left in ``output_dir``.

    Raises
    ------
    OutputDirError
        If ``output_dir`` cannot be written. It is raised before a kernel starts.
    FileNotFoundError
        If the notebook is not found.
    """
    import nbformat

    source = notebook_path or find_quickstart_notebook()
    check_output_dir(output_dir)
    before = snapshot_videos(output_dir)
    notebook = execute_notebook(
        source,
        cwd=output_dir,
        env=kernel_environment(hosted=hosted),
        timeout=timeout,
    )
    executed_path = output_dir / NOTEBOOK_NAME
    nbformat.write(notebook, executed_path)
    html_path = export_html(notebook, output_dir / "quickstart.html")
    return {
        "notebook": executed_path,
        "html": html_path,
        "videos": new_videos(output_dir, before),
    }


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser of ``python -m opennote_jupyter.quickstart``."""
    parser = argparse.ArgumentParser(
        prog="python -m opennote_jupyter.quickstart",
        description=(
            "Execute notebooks/quickstart.ipynb headlessly on the embedded local "
            "backend, then write the executed notebook, an HTML page and the mp4 "
            "into one directory."
        ),
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(DEFAULT_OUTPUT_DIR),
        help=f"directory for the page and the video (default: ./{DEFAULT_OUTPUT_DIR})",
    )
    parser.add_argument(
        "--notebook",
        type=Path,
        default=None,
        help="notebook to run (default: notebooks/quickstart.ipynb of this checkout)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_CELL_TIMEOUT,
        help=f"seconds one cell may run (default: {DEFAULT_CELL_TIMEOUT:g})",
    )
    parser.add_argument(
        "--hosted",
        action="store_true",
        help=(
            "keep OPENNOTE_API_KEY and OPENNOTE_BASE_URL, so the notebook calls the "
            "hosted API and spends credits"
        ),
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the quickstart and print where its page and video are.

    Returns 0 on success, 1 on an error and 130 after Ctrl-C.
    """
    from nbclient.exceptions import (
        CellExecutionError,
        CellTimeoutError,
        DeadKernelError,
    )

    args = build_parser().parse_args(argv)
    output_dir = args.output.resolve()
    before = snapshot_videos(output_dir)
    try:
        paths = run_quickstart(
            output_dir,
            notebook_path=args.notebook,
            hosted=args.hosted,
            timeout=args.timeout,
        )
    except (OutputDirError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        # The kernel's traceback carries terminal colour codes.
        details = ANSI_ESCAPE.sub("", str(exc))
        print(f"error: the quickstart notebook failed: {details}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(describe_interrupt(output_dir, before), file=sys.stderr)
        return EXIT_INTERRUPTED

    videos = paths["videos"]
    print(f"HTML page:         {paths['html']}")
    print(f"Executed notebook: {paths['notebook']}")
    if not videos:
        print(
            f"error: the notebook ran but wrote no new mp4 into {output_dir}",
            file=sys.stderr,
        )
        return 1
    for video in videos:
        print(f"Video:             {video}")
    return 0


def describe_interrupt(output_dir: Path, before: VideoSnapshot) -> str:
    """Return the one-line message for a Ctrl-C, naming any mp4 the run left."""
    left = new_videos(output_dir, before)
    if not left:
        return (
            "interrupted: the kernel was stopped; no HTML page, notebook or video "
            f"was written to {output_dir}"
        )
    names = ", ".join(str(path) for path in left)
    return (
        "interrupted: the kernel was stopped before the HTML page was written; "
        f"this run left {names}"
    )


if __name__ == "__main__":
    sys.exit(main())
