"""What the SLURM tests share (tests/test_slurm*.py): the test cluster's scripts and settings,
fresh copies of the project, the exact commands users type, and what SLURM says about the jobs
they submitted. The cluster itself is the ``slurm_cluster`` fixture of tests/conftest.py."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from conftest import ROOT

PROFILE = ROOT / "profiles" / "slurm"
# The test cluster's settings (tests/slurm_test_profile): a status check 5 s after submission.
TEST_PROFILE = ROOT / "tests" / "slurm_test_profile"
TEST_CLUSTER_ARGS = ("--slurm-init-seconds-before-status-checks", "5")
# The test cluster's GPUs (scripts/slurm/start-cluster.sh: N_GPUS).
FAKE_GPUS = 6


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


def scontrol_job(job_id: str) -> dict:
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True)
    assert out.returncode == 0, f"scontrol show job {job_id}: {out.stderr}"
    fields = {}
    for tok in out.stdout.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            fields[k] = v
    return fields


# The two runs as typed train one encoder: each SLURM job costs ~45 s of start-up (two Snakemakes
# and torch), and what they check (every job's resources, serialisation, parallel folds, outputs
# equal the local run) does not depend on how many encoders there are.
PIPELINE_ENCODERS = ("convnext_tiny",)
GPU_RULES = {"train", "evaluate", "evaluate_other_mode", "predict", "loo_train", "loo_evaluate"}
CPU_RULES = {"synthetic_dataset", "prepare_cache"}
# The test cluster's GPUs are fake (char devices): a GPU job must run on the CPU on purpose, or
# heritage_damage_seg.device.pick_device fails it (SLURM gave a GPU that torch cannot see).
TEST_CLUSTER_CONFIG = {"training": {"device": "cpu"}}
# One leave-one-out family of 4 folds, one encoder: the fold trainings are the independent work.
LOO_CONFIG = {"split": {"leave_one_out": ["content"], "leave_one_out_encoders": ["convnext_tiny"]}}
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "results",
    "resources",
    ".snakemake",
    "__pycache__",
    ".pytest_cache",
    "*.egg-info",
    "report.html",
    "report.zip",
    ".whl",
    ".gl",
)


def merged(base: dict, *layers: dict) -> dict:
    out = dict(base)
    for layer in layers:
        for key, value in layer.items():
            out[key] = (
                merged(out[key], value)
                if isinstance(value, dict) and isinstance(out.get(key), dict)
                else value
            )
    return out


def fresh_project(
    dest: Path, *config_layers: dict, encoders: tuple[str, ...] = PIPELINE_ENCODERS
) -> Path:
    """A copy of the project whose config/config.yaml is the default config with the layers on
    top, training only ``encoders``."""
    import yaml

    shutil.copytree(ROOT, dest, ignore=COPY_IGNORE)
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    tiny = yaml.safe_load((ROOT / "tests" / "tiny.yaml").read_text())
    config = merged(base, tiny, *config_layers)
    config["encoders"] = {name: config["encoders"][name] for name in encoders}
    (dest / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return dest


def as_typed(project: Path, command: str, env_extra: dict | None = None, timeout: int = 1500):
    """``command`` run by bash in ``project``, with this venv's snakemake first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLURM_") and k != "SNAKEMAKE_PROFILE"
    }
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.update(env_extra or {})
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    proc.output = proc.stdout + proc.stderr
    proc.seconds = time.monotonic() - t0
    return proc


def submitted_jobs(output: str) -> list[tuple[str, str, dict]]:
    """(rule, SLURM job id, scontrol show job fields) of every job the run submitted."""
    jobs = []
    for job_id, log in SUBMITTED.findall(output):
        rule = next(part[len("rule_") :] for part in Path(log).parts if part.startswith("rule_"))
        jobs.append((rule, job_id, scontrol_job(job_id)))
    return jobs


def interval(fields: dict) -> tuple[float, float]:
    start, end = (
        datetime.strptime(fields[k], "%Y-%m-%dT%H:%M:%S").timestamp()
        for k in ("StartTime", "EndTime")
    )
    return start, end


def check_every_job(jobs, gpu_partition: str | None) -> None:
    rules = {rule for rule, _, _ in jobs}
    assert CPU_RULES <= rules and {"train", "evaluate", "loo_train", "loo_evaluate"} <= rules, rules
    for rule, job_id, fields in jobs:
        assert fields.get("JobState") == "COMPLETED", (rule, job_id, fields.get("JobState"))
        tres = fields.get("TRES", "")
        if rule in GPU_RULES:
            assert "gres/gpu=1" in tres, (rule, job_id, tres)
            assert fields.get("TresPerJob") == "gres:gpu:1", (
                rule,
                job_id,
                fields.get("TresPerJob"),
            )
            assert fields.get("TimeLimit") not in (None, "UNLIMITED"), (
                rule,
                fields.get("TimeLimit"),
            )
            if gpu_partition:
                assert fields.get("Partition") == gpu_partition, (rule, fields.get("Partition"))
        else:
            assert rule in CPU_RULES, f"unexpected SLURM job of rule {rule}"
            assert "gpu" not in tres, (rule, job_id, tres)
            assert fields.get("Partition") == "cpu", (
                rule,
                fields.get("Partition"),
            )  # the site's default


def check_outputs_equal_the_local_run(project: Path, local: Path) -> None:
    for name in ("results/split.json", "results/class_weights.json", "results/cache/index.csv"):
        assert (local / name).read_text().replace(str(local), "") == (
            project / name
        ).read_text().replace(str(project), ""), name
    for encoder in PIPELINE_ENCODERS:
        want = json.loads((local / f"results/{encoder}/metrics.json").read_text())
        got = json.loads((project / f"results/{encoder}/metrics.json").read_text())
        assert got["confusion_matrix"] == want["confusion_matrix"], encoder
        assert got["mIoU"] == want["mIoU"] and got["per_class"] == want["per_class"], encoder


def overlapping(intervals) -> bool:
    return has_overlap(intervals)


TIME_LIMIT_MINUTES = 2  # sbatch -t 2: the smallest limit that leaves room for a resumed attempt


def one_encoder_project(dest: Path, training: dict) -> Path:
    """The tiny config with one encoder (convnext_tiny, 4 epochs) and the given training keys."""
    import yaml

    project = fresh_project(dest, TEST_CLUSTER_CONFIG, {"training": {"epochs": 4, **training}})
    config_file = project / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["encoders"] = {"convnext_tiny": {"batch_size": 4, "weights": None}}
    config_file.write_text(yaml.safe_dump(config))
    return project


def assert_same_training(local: Path, cluster: Path, target: str) -> None:
    """The cluster run's metrics and history (timings aside) equal the local run's."""
    want = json.loads((local / target).read_text())
    got = json.loads((cluster / target).read_text())
    assert got["confusion_matrix"] == want["confusion_matrix"]
    assert got["mIoU"] == want["mIoU"] and got["per_class"] == want["per_class"]
    columns = ("epoch", "train_loss", "val_mIoU", "lr")
    with (
        open(local / "results/convnext_tiny/history.csv") as a,
        open(cluster / "results/convnext_tiny/history.csv") as b,
    ):
        assert [[r[c] for c in columns] for r in csv.DictReader(a)] == [
            [r[c] for c in columns] for r in csv.DictReader(b)
        ]
