"""Shared fixtures: one run of the whole workflow on the tiny config, reused by every test that
inspects its outputs (training three encoders is the slow part of the suite)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "tiny.yaml"


def snakemake_command(
    *args: str,
    workdir: Path | None = None,
    cores: int | None = 2,
    configs: tuple[Path, ...] = (),
    tiny: bool = True,
) -> list[str]:
    """The command line of every test's Snakemake run: ``python -m snakemake --configfile
    tests/tiny.yaml [configs…] --cores N [--directory workdir] args…``, run from the project root
    so that the workflow profile (profiles/default) applies as it does for users.

    Extra config files go through ``configs``: ``--configfile`` takes several values, so a later
    ``--configfile x all`` would swallow the target and replace the tiny config.
    """
    command = [sys.executable, "-m", "snakemake"]
    if tiny:
        command += ["--configfile", str(TINY), *map(str, configs)]
    if cores is not None:
        command += ["--cores", str(cores)]
    if workdir is not None:
        command += ["--directory", str(workdir)]
    return [*command, *args]


def snakemake(
    *args: str,
    workdir: Path | None = None,
    timeout: int = 1500,
    cores: int = 2,
    configs: tuple[Path, ...] = (),
) -> subprocess.CompletedProcess:
    """:func:`snakemake_command` run to completion, its output captured."""
    return subprocess.run(
        snakemake_command(*args, workdir=workdir, cores=cores, configs=configs),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The working directory of a finished local ``snakemake all`` on the tiny config.

    Built once per pytest run: under pytest-xdist the first worker that asks builds it in the
    run's shared temporary folder while the others wait on a file lock, then all read it.
    HDS_TINY_RUN=<folder> reuses (and brings up to date) the run in that folder instead of a new
    one.
    """
    reuse = os.environ.get("HDS_TINY_RUN")
    if reuse:
        workdir = Path(reuse)
    else:
        workdir = _shared_temp(tmp_path_factory) / "tiny_run"
    with FileLock(str(workdir) + ".lock"):
        done = workdir / ".tiny_run_finished"
        if not done.exists() or reuse:
            workdir.mkdir(parents=True, exist_ok=True)
            result = snakemake("all", workdir=workdir)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
            done.touch()
    return workdir


def _shared_temp(tmp_path_factory) -> Path:
    """The folder every pytest-xdist worker of this run shares (xdist's documented recipe: each
    worker's basetemp is a child of the controller's)."""
    shared = tmp_path_factory.getbasetemp()
    return shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared


SLURM_SCRIPTS = ROOT / "scripts" / "slurm"
# Written by the worker that brought the cluster up: the run's end stops it (pytest_sessionfinish).
SLURM_STARTED = "slurm_cluster_started_by_this_run"


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> dict:
    """The one-node SLURM test cluster (scripts/slurm/start-cluster.sh), up for every SLURM test
    file. Under pytest-xdist the files run on several workers at once: the first to ask starts it
    while the others wait on a file lock; the run's end stops it (pytest_sessionfinish)."""
    if os.geteuid() != 0:
        pytest.fail("tests marked slurm must run as root (start-cluster.sh starts daemons)")
    shared = _shared_temp(tmp_path_factory)
    with FileLock(str(shared / "slurm_cluster.lock")):
        t0 = time.monotonic()
        proc = subprocess.run(
            ["bash", str(SLURM_SCRIPTS / "start-cluster.sh")],
            capture_output=True,
            text=True,
            timeout=600,
        )
        elapsed = time.monotonic() - t0
        if proc.returncode != 0:
            pytest.fail(
                f"start-cluster.sh failed (rc={proc.returncode}) after {elapsed:.1f}s\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        started_here = "already up" not in proc.stdout
        if started_here:
            (shared / SLURM_STARTED).touch()
    return {"startup_s": elapsed, "started_here": started_here}


@pytest.hookimpl(tryfirst=True)  # before pytest's own removes a passed run's basetemp, the marker
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the cluster this run started, once every test is done: in pytest-xdist's controller
    after all workers have finished (a worker's end would stop it under the others' jobs), or at
    the end of a run without workers. HDS_SLURM_KEEP=1 leaves it running."""
    if hasattr(session.config, "workerinput"):
        return
    marker = session.config._tmp_path_factory.getbasetemp() / SLURM_STARTED
    if marker.exists() and not os.environ.get("HDS_SLURM_KEEP"):
        subprocess.run(
            ["bash", str(SLURM_SCRIPTS / "stop-cluster.sh")], capture_output=True, text=True
        )
        marker.unlink()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than cores. The SLURM tests spend most of their time waiting
    (job start-up, the SLURM plugin's status checks), and the spare worker keeps the cores busy
    meanwhile."""
    return (os.cpu_count() or 1) + 1


def _file_order(item: pytest.Item) -> int:
    """0 for a test of a file with SLURM tests, 1 for one with slow tests, 2 for the rest."""
    return 0 if item.get_closest_marker("slurm") else 1 if item.get_closest_marker("slow") else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with the longest tests first, each file's tests kept together and in order: pytest-xdist
    (``--dist loadfile``) hands out whole files in this order, so the SLURM tests, which mostly
    wait on the cluster, start at once beside the rest instead of at the end."""
    rank: dict[Path, int] = {}
    for item in items:
        rank[item.path] = min(rank.get(item.path, 2), _file_order(item))
    items.sort(key=lambda item: rank[item.path])


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, driven by chromedriver: one per test module, so that a module
    reads only its own pages' console log."""
    webdriver = pytest.importorskip("selenium.webdriver")
    service = pytest.importorskip("selenium.webdriver.chrome.service")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium and chromium-driver (see .ci/run)")
        pytest.skip(
            "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
    profile = tempfile.mkdtemp(prefix="test-browser-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update",
                 f"--user-data-dir={profile}", "--window-size=1400,1000", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=service.Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
