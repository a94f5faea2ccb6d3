"""Shared fixtures: one tiny end-to-end run of the workflow for every test session."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "tiny.yaml"


def run_snakemake(*args: str, workdir: Path | None = None, timeout: int = 1500) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--configfile", str(TINY), "--cores", "2"]
    if workdir is not None:
        command += ["--directory", str(workdir)]
    return subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole workflow (`all`: training, evaluation, comparison, plots) on the tiny config.

    HDS_TINY_RUN=<folder> reuses (and brings up to date) the run in that folder instead of a new one.
    """
    workdir = Path(os.environ["HDS_TINY_RUN"]) if os.environ.get("HDS_TINY_RUN") else tmp_path_factory.mktemp("tiny_run")
    result = run_snakemake("all", workdir=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return workdir
