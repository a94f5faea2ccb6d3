"""Shared helpers for the benchmarks: machine description, timing, peak memory in a child process."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

# bench/results/, or where BENCH_RESULTS says (`bash bench/run.sh gpu` writes to results/gpu/).
RESULTS = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}){gpu}, torch {torch.__version__}"


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """The fastest of ``repeats`` wall-clock timings of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def run_child(code: str, env: dict[str, str] | None = None) -> dict:
    """Runs Python ``code`` in a fresh process (so peak RSS is its own); the code prints one JSON
    line. ``env``: variables added to this process's environment for the child."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env} if env else None,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save(name: str, result: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads and "command" in result:  # part of how the figures were made
        result = result | {"command": f"OMP_NUM_THREADS={threads} {result['command']}"}
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), **result}
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
