"""What `snakemake --executor slurm` and `--profile profiles/slurm` hand to each job, read from a dry
run (`snakemake -n` prints every job's resources): every documented edit takes effect. No cluster
needed; tests/test_slurm.py runs the same commands on the live one."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, snakemake_command

GPU_RULES = {
    "train",
    "evaluate",
    "evaluate_other_mode",
    "loo_train",
    "loo_evaluate",
}  # + predict (needs input)
CPU_RULES = {"synthetic_dataset", "prepare_cache", "export"}
TARGETS = (
    "results/convnext_tiny/metrics.json",
    "results/convnext_tiny/evaluation_native/metrics.json",
    "results/loo_content/Line_art/convnext_tiny/metrics.json",
    "results/loo_content/Geometric_patterns/convnext_tiny/metrics.json",
    "results/convnext_tiny/export/model_card.json",
)
JOB = re.compile(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", re.MULTILINE)


def dry_run(tmp_path: Path, *args: str, targets=TARGETS) -> dict[str, dict[str, str]]:
    """rule → its (last) job's resources in ``snakemake -n <args> <targets>`` from the project root."""
    # The targets before the options: --config and --set-resources take every value after them.
    command = snakemake_command("-n", *targets, *args, workdir=tmp_path / "wd", cores=None)
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = {}
    for rule, resources in JOB.findall(proc.stdout + proc.stderr):
        jobs[rule] = dict(item.split("=", 1) for item in resources.split(", "))
    return jobs


def site_profile(tmp_path: Path, edit) -> Path:
    """A copy of profiles/slurm with ``edit`` applied to its YAML."""
    profile = tmp_path / "site"
    shutil.copytree(ROOT / "profiles" / "slurm", profile)
    config = yaml.safe_load((profile / "config.yaml").read_text())
    edit(config)
    (profile / "config.yaml").write_text(yaml.safe_dump(config))
    return profile


def test_executor_slurm_alone_gives_every_gpu_job_a_gpu_and_cpu_jobs_none(tmp_path):
    jobs = dry_run(tmp_path, "--executor", "slurm")
    assert GPU_RULES | CPU_RULES <= set(jobs), set(jobs)
    for rule in GPU_RULES:
        assert jobs[rule]["gpu"] == "1", (rule, jobs[rule])
        assert jobs[rule]["slurm_extra"] == "--signal=TERM@120", (rule, jobs[rule])
        assert int(jobs[rule]["runtime"]) > 0 and int(jobs[rule]["mem_mb"]) == 2000, (
            rule,
            jobs[rule],
        )
        assert "slurm_partition" not in jobs[rule]
    for rule in CPU_RULES:
        assert "gpu" not in jobs[rule] and "slurm_partition" not in jobs[rule], (rule, jobs[rule])
        assert "mem_mb" in jobs[rule] and "runtime" in jobs[rule], (rule, jobs[rule])
    # Timed jobs take the whole pool; the folds and the other mode 1/gpu_jobs of it (default 1).
    assert {jobs[r]["gpu_slot"] for r in GPU_RULES} == {"100"}


def test_site_profile_sends_gpu_rules_to_the_gpu_partition_only(tmp_path):
    jobs = dry_run(tmp_path, "--profile", str(ROOT / "profiles" / "slurm"))
    for rule in GPU_RULES:
        assert jobs[rule]["slurm_partition"] == "gpu" and jobs[rule]["gpu"] == "1", (
            rule,
            jobs[rule],
        )
    for rule in CPU_RULES:
        assert "slurm_partition" not in jobs[rule] and "gpu" not in jobs[rule], (rule, jobs[rule])
    # Every GPU rule of the workflow is listed in the site profile (predict included).
    listed = set(yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())["set-resources"])
    assert listed == GPU_RULES | {"predict"}


def test_site_profile_sets_no_key_of_the_workflow_profile():
    """profiles/default is read on top of any --profile and wins key by key: a key in both would
    be silently ignored in profiles/slurm."""
    site = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    workflow = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    assert not set(site) & set(workflow)
    assert (
        "slurm-status-command" not in site and "slurm-init-seconds-before-status-checks" not in site
    )


@pytest.mark.parametrize(
    ("edit", "rule", "expected"),
    [
        (
            lambda c: c["set-resources"]["train"].update(slurm_partition="a100"),
            "train",
            {"slurm_partition": "a100"},
        ),
        (
            lambda c: c["set-resources"]["train"].update(gpu_model="a100"),
            "train",
            {"gpu_model": "a100", "gpu": "1"},
        ),
        (
            lambda c: c.update({"default-resources": ["slurm_account=my_project"]}),
            "prepare_cache",
            {"slurm_account": "my_project"},
        ),
        (
            lambda c: c.update({"default-resources": ["slurm_account=my_project"]}),
            "loo_train",
            {"slurm_account": "my_project"},
        ),
        (
            lambda c: c["set-resources"].update(prepare_cache={"slurm_partition": "cpu"}),
            "prepare_cache",
            {"slurm_partition": "cpu"},
        ),
    ],
    ids=["gpu-partition", "gpu-model", "account-cpu-job", "account-gpu-job", "cpu-partition"],
)
def test_documented_profile_edits_take_effect(tmp_path, edit, rule, expected):
    jobs = dry_run(tmp_path, "--profile", str(site_profile(tmp_path, edit)))
    assert {key: jobs[rule].get(key) for key in expected} == expected, jobs[rule]
    assert jobs["train"]["gpu"] == "1"  # the workflow's own request survives a site edit


def test_gpu_jobs_lets_independent_gpu_jobs_share_the_pool_but_not_the_timed_ones(tmp_path):
    jobs = dry_run(
        tmp_path, "--profile", str(ROOT / "profiles" / "slurm"), "--config", "gpu_jobs=4"
    )
    assert jobs["train"]["gpu_slot"] == jobs["evaluate"]["gpu_slot"] == "100"
    assert jobs["loo_train"]["gpu_slot"] == jobs["loo_evaluate"]["gpu_slot"] == "25"
    assert jobs["evaluate_other_mode"]["gpu_slot"] == "25"


def test_a_local_run_needs_no_slurm_setting(tmp_path):
    jobs = dry_run(tmp_path)  # profiles/default only: cores all, the gpu_slot pool
    assert jobs["train"]["gpu_slot"] == "100"
