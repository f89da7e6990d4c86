"""Time HTTP requests to the local backend while it renders, against idle.

Run with ``python benchmarks/server_latency_benchmark.py``. One backend in this
process serves ``GET /v1/health`` and ``GET /v1/video/status`` first while idle
(the baseline), then while its worker renders five-section videos. The printed
ratios show how much a render slows the HTTP side down; renders run in a worker
thread so requests are served between the renderer's steps.

It also compares ``GET /v1/health`` over one keep-alive connection with a new
connection per request: without TCP_NODELAY on the server's connections the
keep-alive requests each wait about 40 ms for a delayed ACK.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import requests

from opennote_jupyter.local import start_local_backend

PROMPT = (
    "Explain the water cycle: evaporation from oceans, condensation into clouds, "
    "precipitation as rain and snow, and the rivers that carry it back."
)


# Five sections of the prompt's text: a render of several seconds.
SCRIPT = "\n-----\n".join(f"Part {number + 1}\n{PROMPT}" for number in range(5))


def time_requests(session, urls, count):
    """Return the latency in milliseconds of ``count`` GETs cycling over ``urls``."""
    latencies = []
    for number in range(count):
        started = time.perf_counter()
        session.get(urls[number % len(urls)], timeout=30).raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.005)
    return latencies


def summary(latencies):
    ordered = sorted(latencies)
    return {
        "median": statistics.median(ordered),
        "p95": ordered[max(0, int(len(ordered) * 0.95) - 1)],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3, help="videos to render")
    parser.add_argument("--requests", type=int, default=200, help="idle requests")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        backend = start_local_backend(data_dir)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {backend.api_key}"
        try:
            first = session.post(
                f"{backend.base_url}/v1/video/create",
                json={"messages": [{"role": "user", "content": PROMPT}], "length": 1},
                timeout=30,
            ).json()["video_id"]
            status_url = f"{backend.base_url}/v1/video/status/{first}"
            urls = [f"{backend.base_url}/v1/health", status_url]
            while session.get(status_url, timeout=30).json()["status"] == "pending":
                time.sleep(0.05)
            idle = time_requests(session, urls, args.requests)
            health = [f"{backend.base_url}/v1/health"]
            reused = time_requests(session, health, args.requests)
            fresh = time_requests(requests, health, args.requests)

            body = {"script": SCRIPT}
            ids = [
                session.post(
                    f"{backend.base_url}/v1/video/create", json=body, timeout=30
                ).json()["video_id"]
                for _ in range(args.videos)
            ]
            busy = []
            started = time.perf_counter()
            last_url = f"{backend.base_url}/v1/video/status/{ids[-1]}"
            while session.get(last_url, timeout=30).json()["status"] == "pending":
                busy += time_requests(session, urls, 10)
            render_seconds = time.perf_counter() - started
        finally:
            backend.stop()

    idle_stats = summary(idle)
    busy_stats = summary(busy)
    print(f"rendered {args.videos} five-section videos in {render_seconds:.1f} s")
    print(
        f"idle:      n={len(idle)} median {idle_stats['median']:.1f} ms"
        f"  p95 {idle_stats['p95']:.1f} ms"
    )
    print(
        f"rendering: n={len(busy)} median {busy_stats['median']:.1f} ms"
        f"  p95 {busy_stats['p95']:.1f} ms"
    )
    for name in ("median", "p95"):
        ratio = busy_stats[name] / idle_stats[name]
        print(f"{name} ratio rendering/idle: {ratio:.2f}")
    reused_median = statistics.median(reused)
    fresh_median = statistics.median(fresh)
    print(
        f"health, keep-alive median {reused_median:.1f} ms, new connection median "
        f"{fresh_median:.1f} ms, ratio {reused_median / fresh_median:.2f}"
    )


if __name__ == "__main__":
    main()
