"""`snakemake --profile profiles/slurm all` as typed, on the live test cluster, with the site
profile as shipped plus the test site's settings: GPU rules in the GPU partition, fold trainings
two at once (gpu_jobs: 2) while the timed jobs run alone, outputs equal to the local run's."""

from __future__ import annotations

import pytest
from slurm_support import (
    GPU_RULES,
    LOO_CONFIG,
    TEST_CLUSTER_CONFIG,
    TEST_PROFILE,
    as_typed,
    check_every_job,
    check_outputs_equal_the_local_run,
    fresh_project,
    interval,
    overlapping,
    submitted_jobs,
)

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def profile_run(slurm_cluster, tmp_path_factory):
    """`snakemake --profile profiles/slurm all` with the site profile as shipped plus the test site's
    settings appended, and the parallel knob gpu_jobs: 2 in the copy's config."""
    project = fresh_project(
        tmp_path_factory.mktemp("profile") / "project",
        TEST_CLUSTER_CONFIG,
        LOO_CONFIG,
        {"gpu_jobs": 2},
    )
    site = project / "profiles" / "slurm" / "config.yaml"
    site.write_text(site.read_text() + "\n" + (TEST_PROFILE / "config.yaml").read_text())
    proc = as_typed(project, "snakemake --profile profiles/slurm all")
    assert proc.returncode == 0, proc.output[-8000:]
    print(f"snakemake --profile profiles/slurm all: {proc.seconds:.0f} s")
    return project, proc


@pytest.mark.slow
def test_profile_slurm_all_as_typed_runs_folds_two_at_once(profile_run, tiny_run):
    project, proc = profile_run
    jobs = submitted_jobs(proc.output)
    check_every_job(jobs, gpu_partition="gpu")
    check_outputs_equal_the_local_run(project, tiny_run)
    timed = [interval(f) for rule, _, f in jobs if rule in {"train", "evaluate"}]
    folds = [interval(f) for rule, _, f in jobs if rule == "loo_train"]
    assert len(folds) == 4, folds
    # gpu_jobs: 2 lets fold trainings overlap (each on its own GPU) ...
    assert overlapping(folds), sorted(folds)
    gpus = {f["JobId"]: f.get("TresPerJob") for rule, _, f in jobs if rule == "loo_train"}
    assert all(v == "gres:gpu:1" for v in gpus.values()), gpus
    # ... while the timed jobs still run alone: no GPU job overlaps any of them.
    others = [interval(f) for rule, _, f in jobs if rule in GPU_RULES]
    for t in timed:
        for o in others:
            if o != t:
                assert o[1] <= t[0] or o[0] >= t[1], (t, o)
    # SLURM logs: the site profile's logdir, kept for successful jobs.
    assert list((project / "results/logs/slurm/rule_train").rglob("*.log"))
