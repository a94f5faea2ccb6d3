"""Training on several GPUs as one SLURM job: two tasks started by the job's own srun equal the
local two-rank run, and with device: cuda each rank gets a GPU of its own."""

from __future__ import annotations

import os
import re

import pytest
from conftest import ROOT
from slurm_support import (
    TEST_PROFILE,
    as_typed,
    assert_same_training,
    one_encoder_project,
    submitted_jobs,
)

pytestmark = pytest.mark.slurm


@pytest.mark.slow
def test_a_two_task_training_job_equals_the_local_two_rank_run(slurm_cluster, tmp_path):
    """training.gpus: 2 as users set it: one SLURM job with two tasks (one per GPU; the test
    cluster's GPUs are fake, so the ranks compute on the CPU with gloo) started by the job's own
    srun, against the same two ranks started by torchrun on this machine."""
    target = "results/convnext_tiny/metrics.json"
    two_ranks = {"epochs": 2, "gpus": 2, "threads": 1}
    local = one_encoder_project(tmp_path / "local", two_ranks)
    proc = as_typed(local, f"snakemake --cores 2 {target}")
    assert proc.returncode == 0, proc.output[-6000:]
    cluster = one_encoder_project(tmp_path / "cluster", two_ranks)
    proc = as_typed(
        cluster, f"snakemake --executor slurm {target}", {"SNAKEMAKE_PROFILE": str(TEST_PROFILE)}
    )
    assert proc.returncode == 0, proc.output[-8000:]
    (train,) = [fields for rule, _, fields in submitted_jobs(proc.output) if rule == "train"]
    assert train["JobState"] == "COMPLETED", train["JobState"]
    assert train["NumTasks"] == "2" and "gres/gpu=2" in train["TRES"], train
    log = (cluster / "results/logs/train/convnext_tiny.log").read_text()
    assert "starting 2 ranks: srun --ntasks=2" in log and "rank 0 of 2" in log, log
    assert "rank 1 of 2" in (cluster / "results/logs/train/convnext_tiny.log.rank1").read_text()
    local_log = (local / "results/logs/train/convnext_tiny.log").read_text()
    assert "torch.distributed.run --standalone --nproc-per-node=2" in local_log, local_log

    assert_same_training(local, cluster, target)


@pytest.mark.slow
def test_a_multi_gpu_training_job_gives_each_rank_its_own_gpu(slurm_cluster, tmp_path):
    """training.device: cuda, training.gpus: 2 through `snakemake --executor slurm`: the job's
    resources and the launcher's inner srun agree (before: "srun: fatal: --gpus-per-task is
    mutually exclusive with --ntasks-per-gpu and SLURM_NTASKS_PER_GPU"), and each rank sees one
    GPU of its own. The ranks are tests/slurm_rank_report.py (the launch is under test; the
    cluster's GPUs are fake gres)."""
    project = one_encoder_project(tmp_path / "cluster", {"gpus": 2, "threads": 1})
    config_file = project / "config" / "config.yaml"
    import yaml

    config = yaml.safe_load(config_file.read_text())
    config["training"]["device"] = "cuda"
    config_file.write_text(yaml.safe_dump(config))
    env = {
        "SNAKEMAKE_PROFILE": str(TEST_PROFILE),
        "HDS_RANK_WORKER": "slurm_rank_report",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = as_typed(project, "snakemake --executor slurm results/convnext_tiny/model_best.pt", env)
    log_file = project / "results/logs/train/convnext_tiny.log"
    log = log_file.read_text() if log_file.exists() else ""
    assert "srun: fatal" not in log, log[-3000:]
    assert proc.returncode == 0, proc.output[-6000:] + log[-3000:]
    (train,) = [fields for rule, _, fields in submitted_jobs(proc.output) if rule == "train"]
    assert train["NumTasks"] == "2" and "gres/gpu=2" in train["TRES"], train
    assert "--gpus-per-task=1" in log, log
    reports = log  # srun gathers every task's output into the launcher's, the rule's log
    devices = dict(re.findall(r"rank (\d) of 2 .*?CUDA_VISIBLE_DEVICES=(\S+)", reports))
    assert set(devices) == {"0", "1"}, reports
    assert all("," not in d and d != "None" for d in devices.values()), devices  # one GPU each
    print("ranks and their GPUs:", devices)
