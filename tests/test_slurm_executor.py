"""`snakemake --executor slurm all` as typed, on the live test cluster, in a fresh copy of the
project: every job's resources, the timed jobs alone, outputs equal to the local run's."""

from __future__ import annotations

import pytest
from slurm_support import (
    LOO_CONFIG,
    TEST_CLUSTER_CONFIG,
    TEST_PROFILE,
    as_typed,
    assert_no_overlap,
    check_every_job,
    check_outputs_equal_the_local_run,
    fresh_project,
    interval,
    submitted_jobs,
)

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def executor_run(slurm_cluster, tmp_path_factory):
    """`snakemake --executor slurm all`: no site profile; the test cluster's settings through
    $SNAKEMAKE_PROFILE; gpu_jobs left at its default (1)."""
    project = fresh_project(
        tmp_path_factory.mktemp("executor") / "project", TEST_CLUSTER_CONFIG, LOO_CONFIG
    )
    proc = as_typed(
        project, "snakemake --executor slurm all", {"SNAKEMAKE_PROFILE": str(TEST_PROFILE)}
    )
    assert proc.returncode == 0, proc.output[-8000:]
    print(f"snakemake --executor slurm all: {proc.seconds:.0f} s")
    return project, proc


@pytest.mark.slow
def test_executor_slurm_all_as_typed(executor_run, tiny_run):
    project, proc = executor_run
    jobs = submitted_jobs(proc.output)
    check_every_job(jobs, gpu_partition=None)
    check_outputs_equal_the_local_run(project, tiny_run)
    # The default: the timed jobs never overlap, nor do the fold trainings (gpu_jobs: 1).
    assert_no_overlap([interval(f) for rule, _, f in jobs if rule in {"train", "evaluate"}])
    folds = [interval(f) for rule, _, f in jobs if rule == "loo_train"]
    assert len(folds) == 4, folds
    assert_no_overlap(folds)
    assert (project / "results/loo_content/summary.json").is_file()
