"""Shared fixtures: one run of the whole workflow on the tiny config, reused by every test that
inspects its outputs (training three encoders is the slow part of the suite)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "tiny.yaml"


def snakemake(
    *args: str,
    workdir: Path | None = None,
    timeout: int = 1500,
    cores: int = 2,
    configs: tuple[Path, ...] = (),
) -> subprocess.CompletedProcess:
    """``snakemake --configfile tests/tiny.yaml [configs…]`` from the project root, in ``workdir``.

    Extra config files go through ``configs``: ``--configfile`` takes several values, so a later
    ``--configfile x all`` would swallow the target and replace the tiny config.
    """
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--configfile",
        str(TINY),
        *map(str, configs),
        "--cores",
        str(cores),
    ]
    if workdir is not None:
        command += ["--directory", str(workdir)]
    return subprocess.run(
        [*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The working directory of a finished local ``snakemake all`` on the tiny config.

    HDS_TINY_RUN=<folder> reuses (and brings up to date) the run in that folder instead of a new
    one.
    """
    reuse = os.environ.get("HDS_TINY_RUN")
    workdir = Path(reuse) if reuse else tmp_path_factory.mktemp("tiny_run")
    result = snakemake("all", workdir=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return workdir
