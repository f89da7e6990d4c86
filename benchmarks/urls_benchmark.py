"""Time parse_video_urls on one million URLs against a per-URL standard-library loop.

The baseline is what a user would write first: for each URL, ``urlparse``, then
``unquote`` twice on the title and ``datetime.fromisoformat`` on the timestamp. Both
run in this process on the same URLs, so the printed ratio compares like with like
on whatever machine runs it. The target is a ratio of at least 20.

Run: ``python benchmarks/urls_benchmark.py [--count N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from datetime import datetime, timedelta
from urllib.parse import unquote, urlparse

import pandas as pd

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


def best_of(repeat: int, function, *args) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="URLs to parse")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best counts")
    args = parser.parse_args()

    urls = make_urls(args.count)
    series = pd.Series(urls, dtype="string[pyarrow]")
    base = best_of(args.repeat, baseline, urls)
    vector_series = best_of(args.repeat, parse_video_urls, series)
    vector_list = best_of(args.repeat, parse_video_urls, urls)

    frame = parse_video_urls(series)
    assert frame["error"].isna().all(), frame["error"].dropna().head()
    print(f"URLs: {args.count:,} (best of {args.repeat})")
    print(
        f"baseline loop:               {base:7.3f} s  {args.count / base:12,.0f} URLs/s"
    )
    for label, seconds in (
        ("parse_video_urls(Series):", vector_series),
        ("parse_video_urls(list):", vector_list),
    ):
        print(
            f"{label:28} {seconds:7.3f} s  {args.count / seconds:12,.0f} URLs/s"
            f"  ratio {base / seconds:5.1f}x"
        )


if __name__ == "__main__":
    main()
