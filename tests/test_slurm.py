"""End-to-end tests of profiles/slurm against a real one-node SLURM cluster.

The session fixture runs scripts/slurm/start-cluster.sh (root; installs the
Debian packages if missing and starts munged/slurmctld/slurmd). Nothing here is
mocked: jobs are submitted with sbatch by snakemake-executor-plugin-slurm and
run by slurmd. A cluster startup failure is a test failure, not a skip.

Run:  pytest -m slurm tests/test_slurm.py
"""

from __future__ import annotations

import json
import re
from datetime import datetime
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
START = REPO / "scripts" / "slurm" / "start-cluster.sh"
STOP = REPO / "scripts" / "slurm" / "stop-cluster.sh"
PROFILE = REPO / "profiles" / "slurm"
MIN_WF = REPO / "tests" / "slurm_min"
ENCODERS = ["enc_a", "enc_b", "enc_c"]
SNAKEMAKE_TIMEOUT_S = 170


def assert_no_overlap(intervals):
    """Fail if any two (start, end) intervals overlap (touching ends is fine)."""
    ordered = sorted(intervals)
    for (s1, e1), (s2, e2) in zip(ordered, ordered[1:]):
        assert e1 <= s2, (
            f"intervals overlap: [{s1:.3f}, {e1:.3f}] and [{s2:.3f}, {e2:.3f}] "
            f"(overlap {e1 - s2:.3f}s); all: {ordered}"
        )


def has_overlap(intervals) -> bool:
    try:
        assert_no_overlap(intervals)
    except AssertionError:
        return True
    return False


def test_assert_no_overlap_helper():
    assert_no_overlap([(0, 1), (1, 2), (3, 4)])
    assert_no_overlap([(3, 4), (0, 1)])
    with pytest.raises(AssertionError):
        assert_no_overlap([(0, 2), (1, 3)])
    with pytest.raises(AssertionError):
        assert_no_overlap([(0, 10), (11, 12), (2, 3)])


@pytest.fixture(scope="session")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.fail("tests marked slurm must run as root (start-cluster.sh starts daemons)")
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(START)], capture_output=True, text=True, timeout=600
    )
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        pytest.fail(
            f"start-cluster.sh failed (rc={proc.returncode}) after {elapsed:.1f}s\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    started_here = "already up" not in proc.stdout
    yield {"startup_s": elapsed, "started_here": started_here}
    if started_here and not os.environ.get("HDS_SLURM_KEEP"):
        subprocess.run(["bash", str(STOP)], capture_output=True, text=True)


@pytest.fixture
def workdir(tmp_path):
    wd = tmp_path / "wf"
    shutil.copytree(MIN_WF, wd)
    return wd


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "snakemake",
        "--profile", str(PROFILE),
        "--nolock",
        *args,
    ]
    env = dict(os.environ)
    # a stray SLURM_JOB_ID (e.g. pytest itself inside a SLURM job) confuses the plugin
    for key in [k for k in env if k.startswith("SLURM_")]:
        del env[key]
    proc = subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True,
        timeout=SNAKEMAKE_TIMEOUT_S, env=env,
    )
    proc.output = proc.stdout + proc.stderr  # snakemake logs to stderr
    return proc


def read_records(workdir: Path):
    recs = {}
    for enc in ENCODERS:
        with open(workdir / "results" / "train" / f"{enc}.json") as fh:
            recs[enc] = json.load(fh)
    return recs


def scontrol_job(job_id: str) -> dict:
    out = subprocess.run(
        ["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True
    )
    assert out.returncode == 0, f"scontrol show job {job_id}: {out.stderr}"
    fields = {}
    for tok in out.stdout.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            fields[k] = v
    return fields


def test_start_cluster_is_idempotent(slurm_cluster):
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "already up" in proc.stdout
    assert elapsed < 10, f"second start took {elapsed:.1f}s"
    sinfo = subprocess.run(["sinfo", "-h", "-N", "-o", "%t %G"], capture_output=True, text=True)
    assert sinfo.stdout.split()[0] in {"idle", "mix", "alloc"}, sinfo.stdout
    assert "gpu:1" in sinfo.stdout


def test_train_jobs_run_on_slurm_one_at_a_time(slurm_cluster, workdir):
    proc = run_snakemake(workdir, "all")
    assert proc.returncode == 0, proc.output[-6000:]

    recs = read_records(workdir)
    job_ids = {enc: rec["slurm_job_id"] for enc, rec in recs.items()}
    assert all(job_ids.values()), f"train job without SLURM_JOB_ID: {job_ids}"
    assert len(set(job_ids.values())) == 3, job_ids
    # the one fake GPU was allocated to each job
    assert all(rec["cuda_visible_devices"] == "0" for rec in recs.values()), recs

    # SLURM knows these jobs (MinJobAge=300 keeps finished jobs in squeue)
    sq = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i %k %T"], capture_output=True, text=True
    )
    listed = {line.split()[0]: line for line in sq.stdout.splitlines() if line.strip()}
    for enc, jid in job_ids.items():
        assert jid in listed, f"job {jid} not in squeue -t all:\n{sq.stdout}"
        assert f"rule_train_wildcards_{enc}" in listed[jid]
        assert "COMPLETED" in listed[jid]
        job = scontrol_job(jid)
        assert job.get("TresPerJob") == "gres:gpu:1", job  # from set-resources gpu: 1
        # the plugin's SLURM log, kept (slurm-keep-successful-logs) next to rule logs
        slurm_log = workdir / "results" / "logs" / "slurm" / "rule_train" / enc / f"{jid}.log"
        assert slurm_log.is_file(), f"missing {slurm_log}"
        assert job.get("StdOut") == str(slurm_log)
        assert (workdir / "results" / "logs" / "train" / f"{enc}.log").is_file()
        assert f"SLURM jobid {jid}" in proc.output

    assert_no_overlap([(r["start"], r["end"]) for r in recs.values()])
    assert (workdir / "results" / "summary.json").is_file()


@pytest.fixture(scope="module")
def unserialized_run(slurm_cluster, tmp_path_factory):
    """One snakemake run for tests b and c (saves ~45 s of status-check waits).

    Targets: `all` with serialization removed -- the global slot raised to 3
    and no GPU request (the node has one GPU, which would serialize the jobs by
    itself). A command-line --set-resources replaces the profile's
    set-resources, so train falls back to default-resources with 1 CPU and
    small memory. Plus `boom_all`, whose job exits 1 on the cluster; -k lets
    the train jobs finish anyway.
    """
    wd = tmp_path_factory.mktemp("unserialized") / "wf"
    shutil.copytree(MIN_WF, wd)
    proc = run_snakemake(
        wd, "all", "boom_all", "--keep-going",
        "--resources", "gpu_slot=3",
        "--set-resources", "train:gpu=0", "train:mem_mb=500", "train:cpus_per_task=1",
    )
    return wd, proc


def test_without_serialization_jobs_overlap(unserialized_run):
    workdir, proc = unserialized_run
    recs = read_records(workdir)
    assert all(r["slurm_job_id"] for r in recs.values()), recs
    intervals = [(r["start"], r["end"]) for r in recs.values()]
    assert has_overlap(intervals), f"expected overlapping jobs, got {sorted(intervals)}"
    with pytest.raises(AssertionError):
        assert_no_overlap(intervals)


def test_failing_cluster_job_fails_the_run(unserialized_run):
    workdir, proc = unserialized_run
    assert proc.returncode != 0, proc.output[-6000:]
    assert "Error in rule boom" in proc.output, proc.output[-6000:]
    assert not (workdir / "results" / "boom" / "enc_a.txt").exists()
    # the failed job's SLURM log is kept and named in the output
    logs = list((workdir / "results" / "logs" / "slurm" / "rule_boom").rglob("*.log"))
    assert logs, "no SLURM log for the failed job"
    assert str(logs[0]) in proc.output, proc.output[-6000:]


# --- The real pipeline on the cluster ----------------------------------------------------------

PIPELINE_ENCODERS = ("convnext_tiny", "segformer_b3", "maxvit_tiny")
SNAKEMAKE_TIMESTAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$", re.MULTILINE)


def job_interval(slurm_log: Path) -> tuple[float, float]:
    """First and last timestamp Snakemake printed inside the SLURM job (job start, job end)."""
    stamps = [
        datetime.strptime(" ".join(s.split()), "%a %b %d %H:%M:%S %Y").timestamp()
        for s in SNAKEMAKE_TIMESTAMP.findall(slurm_log.read_text())
    ]
    assert len(stamps) >= 2, f"no start/end timestamps in {slurm_log}"
    return min(stamps), max(stamps)


@pytest.fixture(scope="module")
def tiny_slurm_run(slurm_cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_slurm")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", str(PROFILE), "--configfile", str(REPO / "tests" / "tiny.yaml"),
         "--directory", str(workdir), "all"],
        cwd=REPO, capture_output=True, text=True, timeout=1500, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-8000:]
    return workdir, proc.stdout + proc.stderr


@pytest.mark.slow
def test_pipeline_runs_through_sbatch_and_matches_the_local_run(tiny_slurm_run, tiny_run):
    workdir, output = tiny_slurm_run
    for rule in ("train", "evaluate"):
        for encoder in PIPELINE_ENCODERS:
            logs = list((workdir / "results/logs/slurm" / f"rule_{rule}" / encoder).glob("*.log"))
            assert len(logs) == 1, f"expected one SLURM log for {rule} {encoder}, got {logs}"
            assert f"SLURM jobid {logs[0].stem}" in output
            assert (workdir / "results/logs" / rule / f"{encoder}.log").stat().st_size > 0
    # Light rules ran locally, not as SLURM jobs.
    assert not (workdir / "results/logs/slurm/rule_split").exists()

    for name in ("results/split.json", "results/class_weights.json", "results/cache/index.csv"):
        local = (tiny_run / name).read_text().replace(str(tiny_run), "")
        remote = (workdir / name).read_text().replace(str(workdir), "")
        assert local == remote, name
    for encoder in PIPELINE_ENCODERS:
        local = json.loads((tiny_run / f"results/{encoder}/metrics.json").read_text())
        remote = json.loads((workdir / f"results/{encoder}/metrics.json").read_text())
        assert remote["confusion_matrix"] == local["confusion_matrix"], encoder
        assert remote["mIoU"] == local["mIoU"] and remote["per_class"] == local["per_class"]


@pytest.mark.slow
def test_pipeline_training_jobs_never_overlap(tiny_slurm_run):
    workdir, _ = tiny_slurm_run
    intervals = []
    for encoder in PIPELINE_ENCODERS:
        (log,) = (workdir / "results/logs/slurm/rule_train" / encoder).glob("*.log")
        intervals.append(job_interval(log))
    assert_no_overlap(intervals)
