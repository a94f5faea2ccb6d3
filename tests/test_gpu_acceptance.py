"""The acceptance command for a lent GPU (bench/gpu-acceptance.sh): its refusal without a GPU, the
wheels it carries, and its driver run end to end on the CPU at a small size."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch
from conftest import ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: nothing to refuse")
def test_without_a_gpu_the_command_refuses_in_one_line():
    result = subprocess.run(
        ["bash", "bench/gpu-acceptance.sh"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU visible" in lines[0] and torch.__version__ in lines[0]


@pytest.mark.slow
def test_the_wheels_for_the_gpu_machine_are_the_locks_pins_and_fit_the_carry(tmp_path):
    """scripts/gpu_wheels.sh (needs PyPI, as setup.sh does): one wheel per package, at
    requirements.lock's version, for Python 3.12, small enough to travel."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    for name in ("scripts/gpu_wheels.sh", "requirements.lock"):
        (project / name).write_text((ROOT / name).read_text())
    result = subprocess.run(
        ["bash", "scripts/gpu_wheels.sh"], cwd=project, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    wheels = sorted((project / ".whl").glob("*.whl"))
    lock = (ROOT / "requirements.lock").read_text()
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        assert re.search(
            rf"^{name.replace('_', '[-_]')}=={re.escape(version)} ", lock, re.M | re.I
        ), wheel.name
        assert "cp311" not in wheel.name  # built for the GPU machine's Python 3.12, not this one
    assert len(wheels) == 10 and sum(w.stat().st_size for w in wheels) < 56 * 2**20
    assert "gpu wheels: 10 wheels" in result.stdout


@pytest.mark.slow
def test_the_acceptance_driver_runs_its_steps_on_the_cpu(tmp_path):
    """The same steps as on the GPU (data, train, SIGTERM then resume, evaluate and predict on
    two devices) with ``--device cpu`` at 64 px: CPU against CPU agrees on every pixel."""
    out = tmp_path / "out"
    command = [
        sys.executable, "bench/gpu_acceptance.py", "--device", "cpu", "--size", "64",
        "--epochs", "2", "--artworks", "10", "--batch", "4", "--encoders", "convnext_tiny",
        "--compare-scans", "2", "--threads", "2", "--out", str(out), "--work", str(tmp_path / "work"),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((out / "acceptance.json").read_text())
    assert [row["precision"] for row in results["training"]] == ["fp32"]
    resume = results["resume"]
    assert resume["signal_exit_status"] in (143, 0) and resume["resume_exit_status"] == 0
    if resume["signal_exit_status"] == 143:  # the signal landed before training ended
        assert resume["resumed"] and resume["equal_epochs"]
        assert resume["max_loss_rel_diff"] < 1e-4 and resume["other_columns_equal"]
    compare = results["compare"]
    assert compare["evaluate_agreement"] == 1.0 and compare["predict_agreement"] == 1.0
    summary = (out / "summary.md").read_text()
    assert "| convnext_tiny | fp32 |" in summary and "verdict:" in summary
