"""Time parse_video_urls on one million URLs against a per-URL standard-library loop.

The baseline is what a user would write first: for each URL, ``urlparse``, then
``unquote`` twice on the title and ``datetime.fromisoformat`` on the timestamp. Both
run in this process on the same URLs, so the printed ratio compares like with like
on whatever machine runs it. The target is a ratio of at least 20.

The parser splits large inputs into chunks parsed on up to four threads; the
"one thread" lines show it without them. Other processes on the machine change
every figure, so the load average is printed before and after the runs.

Run: ``python benchmarks/urls_benchmark.py [--count N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from datetime import datetime, timedelta
from urllib.parse import unquote, urlparse

import pandas as pd

from opennote_jupyter import url_frame
from opennote_jupyter.urls import build_video_key, parse_video_urls

BUCKETS = (
    "https://videofs-opennote-us-east-1.s3.us-east-1.amazonaws.com/",
    "https://contentfs-opennote-us-east-1.s3.us-east-1.amazonaws.com/",
)
WORDS = (
    "photosynthesis mitochondria entropy quantum calculus derivative integral "
    "Fourier transform wildfire detection drone sensors GPS/IMU thermal imaging "
    "\"Multi-Modal AI\" café naïve résumé Schrödinger 100% C++ rock'n'roll "
    "(intro) a, b; c: d? e! neural networks for kids Newton's laws 細胞 "
    "plate tectonics supply & demand"
).split()


def make_urls(count: int, seed: int = 0) -> list[str]:
    """Build ``count`` URLs in the current format with mostly distinct titles."""
    rng = random.Random(seed)
    start = datetime(2025, 5, 1)
    urls = []
    for _ in range(count):
        created = start + timedelta(microseconds=rng.randrange(200 * 86_400 * 10**6))
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        video_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        bucket = BUCKETS[0] if rng.random() < 0.9 else BUCKETS[1]
        file_type = "mp4" if bucket == BUCKETS[0] else "png"
        urls.append(bucket + build_video_key(created, video_id, title, file_type))
    return urls


def baseline(urls: list[str]) -> int:
    """Parse with a per-URL loop of urlparse, unquote and fromisoformat."""
    parsed = 0
    for url in urls:
        key = urlparse(url).path[1:]
        stamp, rest = key[:30], key[31:]
        created = datetime.fromisoformat(unquote(stamp))
        title = unquote(unquote(rest[38 : rest.rindex(".")]))
        parsed += bool(created) + bool(title)
    return parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="URLs to parse")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best counts")
    args = parser.parse_args()

    urls = make_urls(args.count)
    series = pd.Series(urls, dtype="string[pyarrow]")
    frame = parse_video_urls(series)
    assert frame["error"].isna().all(), frame["error"].dropna().head()

    def one_thread(values):
        url_frame._MAX_WORKERS = 1
        try:
            return parse_video_urls(values)
        finally:
            url_frame._MAX_WORKERS = workers

    workers = url_frame._MAX_WORKERS
    runs = {
        "baseline loop": (baseline, urls),
        "parse_video_urls(Series)": (parse_video_urls, series),
        "parse_video_urls(list)": (parse_video_urls, urls),
        "Series, one thread": (one_thread, series),
        "list, one thread": (one_thread, urls),
    }
    load_before = os.getloadavg()
    # Rounds interleave the runs, so load from other processes hits all of them.
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeat):
        for label, (function, values) in runs.items():
            started = time.perf_counter()
            function(values)
            best[label] = min(best[label], time.perf_counter() - started)

    load_after = os.getloadavg()
    print(f"URLs: {args.count:,}, best of {args.repeat} interleaved rounds")
    print(
        "load average (1, 5, 15 min): before "
        + ", ".join(f"{value:.2f}" for value in load_before)
        + "; after "
        + ", ".join(f"{value:.2f}" for value in load_after)
    )
    base = best.pop("baseline loop")
    print(f"{'baseline loop':26} {base:7.3f} s  {args.count / base:12,.0f} URLs/s")
    for label, seconds in best.items():
        print(
            f"{label:26} {seconds:7.3f} s  {args.count / seconds:12,.0f} URLs/s"
            f"  ratio {base / seconds:5.1f}x"
        )


if __name__ == "__main__":
    main()
