"""Time ``%load_ext opennote_jupyter`` in fresh processes against two baselines.

Each sample starts a new Python process, builds an ``InteractiveShell`` and times
only the ``%load_ext`` call, so nothing is cached between samples. Baselines from
the same run:

- a trivial extension (a module whose ``load_ipython_extension`` does nothing):
  the cost of ``%load_ext`` itself;
- ``import IPython`` plus creating the shell: what every kernel pays at start.

Target: the median ``%load_ext opennote_jupyter`` is at most 100 ms.

Run: ``python benchmarks/load_ext_benchmark.py [--samples N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET_MS = 100.0

PROBE = r"""
import json, sys, time
start = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
startup = time.perf_counter() - start
begin = time.perf_counter()
shell.run_line_magic("load_ext", sys.argv[1])
load = time.perf_counter() - begin
print(json.dumps({"startup": startup, "load": load}))
"""

TRIVIAL_EXTENSION = "def load_ipython_extension(ipython):\n    pass\n"


def sample(extension: str, workdir: Path) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, extension],
        capture_output=True,
        text=True,
        check=True,
        cwd=workdir,
        env={
            **os.environ,
            "IPYTHONDIR": str(workdir / "ipython"),
            "PYTHONPATH": str(workdir),
        },
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=7, help="processes per case")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "trivial_extension.py").write_text(TRIVIAL_EXTENSION)
        # One warm-up each, so the OS file cache is the same for both cases.
        sample("trivial_extension", workdir)
        sample("opennote_jupyter", workdir)
        ours, trivial = [], []
        for _ in range(options.samples):
            # Interleaved, so load on the machine affects both cases alike.
            trivial.append(sample("trivial_extension", workdir))
            ours.append(sample("opennote_jupyter", workdir))

    def median_ms(rows: list[dict[str, float]], key: str) -> float:
        return 1000 * statistics.median(row[key] for row in rows)

    ours_ms = median_ms(ours, "load")
    trivial_ms = median_ms(trivial, "load")
    startup_ms = median_ms(trivial, "startup")
    print(f"samples per case: {options.samples} fresh processes (median)")
    print(f"%load_ext opennote_jupyter : {ours_ms:7.1f} ms")
    print(f"%load_ext trivial extension: {trivial_ms:7.1f} ms")
    print(f"import IPython + shell     : {startup_ms:7.1f} ms")
    print(f"ratio to trivial extension : {ours_ms / trivial_ms:7.1f}x")
    print(f"ratio to IPython startup   : {ours_ms / startup_ms:7.2f}x")
    verdict = "meets" if ours_ms <= TARGET_MS else "misses"
    print(f"target {TARGET_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
