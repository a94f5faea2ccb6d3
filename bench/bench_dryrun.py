"""5. `snakemake -n all` wall time on the default config (goal <= 3 s).

Every snakemake call imports its executor plugins, and the SLURM plugin runs `scontrol show config`
while importing: where SLURM is installed but its controller does not answer, that call alone
waits ~9 s. The time of that call is reported beside the dry run, so the figure can be read.
"""

from __future__ import annotations

import shutil
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
            subprocess.run(
                [sys.executable, "-m", "snakemake", "-n", "--quiet", "all", "--directory", workdir],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            times.append(time.perf_counter() - start)
    scontrol_seconds = None
    if shutil.which("scontrol"):
        start = time.perf_counter()
        subprocess.run(["scontrol", "show", "config"], capture_output=True)
        scontrol_seconds = time.perf_counter() - start
    save(
        "dryrun",
        {
            "command": "python bench/bench_dryrun.py",
            "best_seconds": min(times),
            "all_seconds": times,
            "scontrol_show_config_seconds": scontrol_seconds,
            "target_seconds": 3.0,
        },
    )


if __name__ == "__main__":
    main()
