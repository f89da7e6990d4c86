"""Measure what the client adds to a create and a status read over plain requests.

Both sides talk to one local backend, run by ``opennote-video serve`` in a child
process (as a remote server would be, so its render threads do not compete with
the client for this process's GIL). Baselines from the same run:

- plain: ``requests.Session.post``/``get`` with the bearer header, nothing else;
- plain + synced line: the plain POST after appending one line to a file and
  syncing it to disk. A client that must not pay twice after a crash cannot do
  less: the idempotency key has to be on disk before the request leaves.

The client (``OpennoteClient.create``/``status``) also validates, journals the
create (two appends, the first synced), paces it (a small JSON rewrite under a
file lock) and scrubs the key from the response.

The sides alternate, first one then another, so the server's growing render
queue weighs on all alike. Status reads run after the queue is empty, all on one
finished video. Absolute times vary with the machine and the server, so the
ratios are the result.

Targets (medians): a client create costs at most 1.5x the plain + synced line
baseline, and a client status read at most 1.2x the plain GET. Against the bare
POST the create ratio is printed without a target: on the local backend a create
takes a few milliseconds, about as long as one sync to disk.

Run: ``python benchmarks/client_overhead_benchmark.py [--samples N]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import requests

CREATE_TARGET = 1.5
STATUS_TARGET = 1.2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(base_url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base_url + "/v1/health", timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the backend at {base_url} did not start within 60 s")


def _alternate(
    times: dict[str, list[float]], samples: int, *sides: tuple, fresh: list
) -> None:
    """Time each side ``samples`` times, alternating which side goes first.

    The objects in ``fresh`` close their pooled connections first. The server
    responds faster on a new connection than a kept-alive one, so both sides must
    start from the same state.
    """
    for owner in fresh:
        owner.close()
    for i in range(samples):
        ordered = sides if i % 2 == 0 else sides[::-1]
        for name, call in ordered:
            start = time.perf_counter()
            call(i)
            times[name].append(time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60, help="creates per side")
    args = parser.parse_args()
    logging.disable(logging.INFO)

    work = tempfile.mkdtemp(prefix="opennote-client-bench-")
    os.environ["OPENNOTE_JUPYTER_HOME"] = os.path.join(work, "home")
    from opennote_jupyter.client import OpennoteClient

    data_dir = os.path.join(work, "backend")
    cli = [sys.executable, "-m", "opennote_jupyter.cli"]
    key = subprocess.run(
        [*cli, "keys", "create", "--data-dir", data_dir, "--org", "bench"]
        + ["--tier", "enterprise", "--per-minute", "1000000", "--per-day", "1000000"]
        + ["--credits", "1000000000"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*cli, "serve", "--data-dir", data_dir, "--port", str(port)]
        + ["--log-level", "WARNING"],
    )
    try:
        _wait_healthy(base_url)
        client = OpennoteClient(
            key, base_url, tier="enterprise", per_minute=10**6, per_day=10**6
        )
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        create_url = base_url + "/v1/video/create"
        times: dict[str, list[float]] = {
            "plain create": [],
            "plain + synced line": [],
            "client create": [],
            "plain status": [],
            "client status": [],
        }

        def plain_create(i: int) -> None:
            body = {
                "messages": [{"role": "user", "content": f"plain {i}"}],
                "length": 1,
                "upload_to_s3": True,
            }
            session.post(create_url, json=body, timeout=30).raise_for_status()

        sync_path = os.path.join(work, "synced.jsonl")

        def synced_create(i: int) -> None:
            line = json.dumps({"event": "intent", "key": str(uuid.uuid4()), "i": i})
            with open(sync_path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            plain_create(i)

        def client_create(i: int) -> None:
            client.create(f"client {i}", length=1)

        _alternate(
            times,
            args.samples,
            ("plain create", plain_create),
            ("plain + synced line", synced_create),
            ("client create", client_create),
            fresh=[session, client],
        )

        # Renders in the server process slow its request handling, so status
        # reads start once the queue is empty. They all go to one finished
        # video, so both sides read the same body.
        finished = client.create("status target", length=1).video_id
        client.wait(finished, timeout=600)
        status_url = f"{base_url}/v1/video/status/{finished}"

        def plain_status(i: int) -> None:
            session.get(status_url, timeout=30).raise_for_status()

        def client_status(i: int) -> None:
            client.status(finished)

        _alternate(
            times,
            args.samples,
            ("plain status", plain_status),
            ("client status", client_status),
            fresh=[session, client],
        )
    finally:
        server.terminate()
        server.wait(timeout=30)

    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:20s} median {value:7.2f} ms over {args.samples} samples")
    bare_ratio = medians["client create"] / medians["plain create"]
    create_ratio = medians["client create"] / medians["plain + synced line"]
    status_ratio = medians["client status"] / medians["plain status"]
    print(f"create / plain POST          {bare_ratio:.2f} (no target)")
    print(
        f"create / POST + synced line  {create_ratio:.2f} (target <= {CREATE_TARGET})"
    )
    print(
        f"status / plain GET           {status_ratio:.2f} (target <= {STATUS_TARGET})"
    )
    ok = create_ratio <= CREATE_TARGET and status_ratio <= STATUS_TARGET
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
