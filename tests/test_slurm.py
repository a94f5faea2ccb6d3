"""The test cluster itself and Snakemake's SLURM executor on a minimal workflow
(tests/slurm_min), plus single sbatch jobs: a GPU that torch cannot see, and the launcher's inner
srun inside a job of the train rule's shape. The real pipeline on the cluster:
tests/test_slurm_*.py.

The cluster is the session fixture ``slurm_cluster`` (tests/conftest.py), which runs
scripts/slurm/start-cluster.sh (root; installs the Debian packages if missing and starts
munged/slurmctld/slurmd). Nothing here is mocked: jobs are submitted with sbatch by
snakemake-executor-plugin-slurm and run by slurmd. A cluster startup failure is a test failure,
not a skip.

Run:  pytest -m slurm tests/test_slurm*.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, snakemake_command
from slurm_support import (
    FAKE_GPUS,
    PROFILE,
    TEST_CLUSTER_ARGS,
    assert_no_overlap,
    has_overlap,
    scontrol_job,
)

pytestmark = pytest.mark.slurm

START = ROOT / "scripts" / "slurm" / "start-cluster.sh"
MIN_WF = ROOT / "tests" / "slurm_min"
ENCODERS = ["enc_a", "enc_b", "enc_c"]
SNAKEMAKE_TIMEOUT_S = 170


def test_assert_no_overlap_helper():
    assert_no_overlap([(0, 1), (1, 2), (3, 4)])
    assert_no_overlap([(3, 4), (0, 1)])
    with pytest.raises(AssertionError):
        assert_no_overlap([(0, 2), (1, 3)])
    with pytest.raises(AssertionError):
        assert_no_overlap([(0, 10), (11, 12), (2, 3)])


@pytest.fixture
def workdir(tmp_path):
    wd = tmp_path / "wf"
    shutil.copytree(MIN_WF, wd)
    return wd


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = snakemake_command(
        "--profile", str(PROFILE), "--nolock", *TEST_CLUSTER_ARGS, *args, cores=None, tiny=False
    )
    env = dict(os.environ)
    # a stray SLURM_JOB_ID (e.g. pytest itself inside a SLURM job) confuses the plugin
    for key in [k for k in env if k.startswith("SLURM_")]:
        del env[key]
    proc = subprocess.run(
        cmd,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=SNAKEMAKE_TIMEOUT_S,
        env=env,
    )
    proc.output = proc.stdout + proc.stderr  # snakemake logs to stderr
    return proc


def read_records(workdir: Path):
    recs = {}
    for enc in ENCODERS:
        with open(workdir / "results" / "train" / f"{enc}.json") as fh:
            recs[enc] = json.load(fh)
    return recs


def test_start_cluster_is_idempotent(slurm_cluster):
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "already up" in proc.stdout
    assert elapsed < 10, f"second start took {elapsed:.1f}s"
    sinfo = subprocess.run(["sinfo", "-h", "-N", "-o", "%t %G"], capture_output=True, text=True)
    assert sinfo.stdout.split()[0] in {"idle", "mix", "alloc"}, sinfo.stdout
    assert f"gpu:{FAKE_GPUS}" in sinfo.stdout


def test_train_jobs_run_on_slurm_one_at_a_time(slurm_cluster, workdir):
    proc = run_snakemake(workdir, "all")
    assert proc.returncode == 0, proc.output[-6000:]

    recs = read_records(workdir)
    job_ids = {enc: rec["slurm_job_id"] for enc, rec in recs.items()}
    assert all(job_ids.values()), f"train job without SLURM_JOB_ID: {job_ids}"
    assert len(set(job_ids.values())) == 3, job_ids
    # one of the fake GPUs was allocated to each job
    gpus = {str(i) for i in range(FAKE_GPUS)}
    assert all(rec["cuda_visible_devices"] in gpus for rec in recs.values()), recs

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
        assert job.get("TresPerJob") == "gres:gpu:1", job  # from the rule's resources: gpu=1
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
    """One snakemake run for the two tests below (saves ~45 s of status-check waits).

    Targets: `all` with serialization removed -- the global slot raised to 3
    and no GPU request (the GPUs are not what is under test here). A command-line --set-resources replaces the profile's
    set-resources, so train falls back to default-resources with 1 CPU and
    small memory. Plus `boom_all`, whose job exits 1 on the cluster; -k lets
    the train jobs finish anyway.
    """
    wd = tmp_path_factory.mktemp("unserialized") / "wf"
    shutil.copytree(MIN_WF, wd)
    proc = run_snakemake(
        wd,
        "all",
        "boom_all",
        "--keep-going",
        "--resources",
        "gpu_slot=3",
        "--set-resources",
        "train:gpu=0",
        "train:mem_mb=500",
        "train:cpus_per_task=1",
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


def run_in_slurm_job(tmp_path: Path, code: str, *sbatch_args: str) -> tuple[int, str]:
    """``python -c code`` as a SLURM job (sbatch --wait); its exit status and output."""
    out = tmp_path / "job.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\nexec {sys.executable} -c {shlex_quote(code)}\n")
    proc = subprocess.run(
        ["sbatch", "--wait", "-t", "2", "--mem", "1000", "-o", str(out), *sbatch_args, str(script)],
        capture_output=True,
        text=True,
        timeout=170,
        env=env,
    )
    return proc.returncode, out.read_text() if out.exists() else proc.stderr


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


PICK = "from heritage_damage_seg.device import pick_device; print('device', pick_device({!r}))"


def test_a_slurm_job_given_a_gpu_that_torch_cannot_see_fails_instead_of_using_the_cpu(
    slurm_cluster, tmp_path
):
    rc, out = run_in_slurm_job(tmp_path, PICK.format("auto"), "-p", "gpu", "--gpus=1")
    assert rc != 0, out
    assert "SLURM gave this job a GPU" in out and "training.device: cpu" in out, out
    # Asked for on purpose, the CPU is fine; so is `auto` in a job without a GPU.
    rc, out = run_in_slurm_job(tmp_path, PICK.format("cpu"), "-p", "gpu", "--gpus=1")
    assert rc == 0 and "device cpu" in out, out
    rc, out = run_in_slurm_job(tmp_path, PICK.format("auto"), "-p", "cpu")
    assert rc == 0 and "device cpu" in out, out


LAUNCH = """
import subprocess, sys
from pathlib import Path
from heritage_damage_seg.training.launch import rank_command
from heritage_damage_seg.training.settings import TrainSettings
settings = TrainSettings(encoder="convnext_tiny", epochs=1, batch_size=2, learning_rate=1e-3,
                         device="cuda", gpus=2, nodes=1)
command = rank_command(settings, Path("job.json"), 1, "srun")
command = command[: command.index(sys.executable)] + ["bash", "-c", "echo rank $SLURM_PROCID gpu $CUDA_VISIBLE_DEVICES"]
sys.exit(subprocess.run(command).returncode)
"""


def test_the_inner_srun_agrees_with_the_jobs_resources(slurm_cluster, tmp_path):
    """The launcher's srun (one GPU per task) inside a job of training_resources' shape for 2 GPUs
    on one node (--gres=gpu:2 --ntasks=2, no --ntasks-per-gpu) gives each task its own GPU; inside a
    job submitted with --ntasks-per-gpu, which the plugin adds when tasks_per_gpu is not 0, srun
    refuses it."""
    rc, out = run_in_slurm_job(
        tmp_path,
        LAUNCH,
        "-p",
        "gpu",
        "--gres=gpu:2",
        "--nodes=1",
        "--ntasks=2",
        "--cpus-per-task=1",
    )
    assert rc == 0, out
    tasks = dict(re.findall(r"rank (\d) gpu (\S+)", out))
    assert set(tasks) == {"0", "1"}, out  # two tasks, each with one GPU of the job's two
    assert len(set(tasks.values())) == 2 and all(g.isdigit() for g in tasks.values()), out
    rc, out = run_in_slurm_job(
        tmp_path, LAUNCH, "-p", "gpu", "--gpus=2", "--ntasks-per-gpu=1", "--ntasks=2",
        "--cpus-per-task=1",
    )  # fmt: skip
    assert rc != 0 and "mutually exclusive with --ntasks-per-gpu" in out, out
