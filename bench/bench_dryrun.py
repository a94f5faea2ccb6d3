"""5. `snakemake -n all` wall time on the default config (goal <= 3 s)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import save

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    times = []
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "all", "--directory", workdir],
                           cwd=ROOT, check=True, capture_output=True)  # fmt: skip
            times.append(time.perf_counter() - start)
    save("dryrun", {"command": "python bench/bench_dryrun.py", "best_seconds": min(times), "all_seconds": times,
                    "target_seconds": 3.0})  # fmt: skip


if __name__ == "__main__":
    main()
