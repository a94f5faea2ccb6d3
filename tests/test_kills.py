"""Real processes killed with real signals: training resumes to the same result, and a job killed
at any point leaves no declared output half-written.

Small on purpose (8 images at 64 px, ConvNeXt-Tiny only, batch 2): the point is the signals."""

import base64
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, snakemake_command
from PIL import Image

from heritage_damage_seg.training.history import TIMING_COLUMNS

SMALL = """
synthetic: {n_artworks: 4, views_per_artwork: 2, min_side: 64, max_side: 96}
training: {epochs: 3, retries: 2}
encoders: {convnext_tiny: {batch_size: 2}}
"""
TARGET = "results/convnext_tiny/metrics.json"
# Timing and placement, not results: allowed to differ between an interrupted and a clean run.
TIMING_METRICS = ("inference_ms_per_image", "device")
TIMING_HISTORY = TIMING_COLUMNS

pytestmark = pytest.mark.slow


def command(workdir: Path, *args: str) -> list[str]:
    small = workdir / "small.yaml"
    small.write_text(SMALL)
    return snakemake_command("--rerun-incomplete", *args, workdir=workdir, configs=(small,))


def run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command(workdir, *args), cwd=ROOT, capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def start(workdir: Path, *args: str) -> subprocess.Popen:
    log = open(workdir / "snakemake.out", "a")
    return subprocess.Popen(
        command(workdir, *args),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def session_processes(sid: int) -> dict[int, str]:
    """pid → command line of every live process in session ``sid`` (Snakemake and its jobs)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z" and int(fields[3]) == sid:
                found[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
        except (OSError, ValueError):
            continue
    return found


def job_pid(proc: subprocess.Popen, script: str, timeout: float = 300) -> int | None:
    """The pid of the Snakemake job running workflow/scripts/<script>, once it runs (None: the
    workflow ended first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid, cmdline in session_processes(proc.pid).items():
            if f".{script} " in cmdline + " " and ".snakemake/scripts/" in cmdline:
                return pid
        if proc.poll() is not None:
            return None
        time.sleep(0.05)
    raise TimeoutError(f"{script} did not start")


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL to Snakemake and all its jobs at once (a node failure, an OOM kill, scancel -9)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while session_processes(proc.pid) and time.monotonic() < deadline:
        for pid in session_processes(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    assert not session_processes(proc.pid)


def wait_for_history_rows(
    path: Path, rows: int, proc: subprocess.Popen, timeout: float = 600
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(pd.read_csv(path)) >= rows:
            return
        assert proc.poll() is None, "the run ended before the epoch was written"
        time.sleep(0.1)
    raise TimeoutError(path)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict]:
    """An uninterrupted run; the interrupted ones reuse its upstream files and compare with it."""
    workdir = tmp_path_factory.mktemp("resume")
    run(workdir, TARGET)
    out = workdir / "results/convnext_tiny"
    return workdir, {
        "metrics": json.loads((out / "metrics.json").read_text()),
        "history": pd.read_csv(out / "history.csv"),
        "best": torch.load(out / "model_best.pt", weights_only=False)["model_state_dict"],
    }


def assert_same_result(workdir: Path, expected: dict) -> None:
    out = workdir / "results/convnext_tiny"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in TIMING_METRICS:
        metrics.pop(key), expected["metrics"].get(key)
    assert metrics == {k: v for k, v in expected["metrics"].items() if k not in TIMING_METRICS}
    history = pd.read_csv(out / "history.csv")
    # Exactly equal on the CPU: same floats in the CSV, bit-identical weights.
    pd.testing.assert_frame_equal(
        history.drop(columns=list(TIMING_HISTORY)),
        expected["history"].drop(columns=list(TIMING_HISTORY)),
        check_exact=True,
    )
    best = torch.load(out / "model_best.pt", weights_only=False)["model_state_dict"]
    assert best.keys() == expected["best"].keys()
    assert all(torch.equal(best[k], expected["best"][k]) for k in best)


def fresh_encoder_dir(workdir: Path) -> None:
    import shutil

    shutil.rmtree(workdir / "results/convnext_tiny", ignore_errors=True)
    for log in ("convnext_tiny.log", "convnext_tiny.log.attempts"):
        (workdir / "results/logs/train" / log).unlink(missing_ok=True)


def signal_training_in_epoch_2_and_finish(reference, signum: int) -> str:
    """Sends ``signum`` to the training job early in epoch 2, lets Snakemake's retry finish, checks
    the result equals the uninterrupted run's and returns the training log."""
    workdir, expected = reference
    fresh_encoder_dir(workdir)
    proc = start(workdir, TARGET)
    wait_for_history_rows(workdir / "results/convnext_tiny/history.csv", 1, proc)
    time.sleep(0.1)  # into step 1 of epoch 2 (an epoch takes >1 s here)
    os.kill(job_pid(proc, "train.py"), signum)
    assert proc.wait(timeout=900) == 0, (workdir / "snakemake.out").read_text()[-4000:]
    assert_same_result(workdir, expected)
    return (workdir / "results/logs/train/convnext_tiny.log").read_text()


def test_sigkill_of_training_after_an_epoch_then_retry_gives_the_uninterrupted_result(reference):
    """SIGKILL (an OOM kill, a node lost under the job): no chance to save, so the rerun that
    Snakemake's retries start resumes from the last epoch boundary."""
    log = signal_training_in_epoch_2_and_finish(reference, signal.SIGKILL)
    assert "epoch 1/3" in log.split("resumed at epoch")[0], "the first attempt's log was kept"
    assert "resumed at epoch 1 from" in log, log


def test_sigterm_mid_epoch_saves_the_step_and_snakemake_retries_to_the_same_result(reference):
    log = signal_training_in_epoch_2_and_finish(reference, signal.SIGTERM)
    assert "SIGTERM received: saved the position at epoch 2 step" in log, log
    assert "resumed at epoch 2 step" in log


# stage → (its script, a target that ends with it, how long after its start a kill may land in s)
STAGES = {
    "synthetic_dataset": ("synthetic_dataset.py", "resources/synthetic/metadata.csv", 8.0),
    "prepare_cache": ("prepare_cache.py", "results/cache/index.csv", 8.0),
    "split": ("split.py", "results/split.json", 5.0),
    "class_weights": ("class_weights.py", "results/class_weights.json", 5.0),
    "train": ("train.py", "results/convnext_tiny/history.csv", 60.0),
    "evaluate": ("evaluate.py", TARGET, 15.0),
}
KILLS_PER_STAGE = 3


def check_no_partial_output(workdir: Path) -> int:
    """Every declared output (and the resumable checkpoint) that exists loads whole; returns how
    many files were checked."""
    checked = 0

    def load_png(path: Path) -> None:
        nonlocal checked
        with Image.open(path) as im:
            im.load()
        checked += 1

    synthetic = workdir / "resources/synthetic"
    for folder in ("images", "annotations"):
        for png in (
            sorted((synthetic / folder).glob("*.png")) if (synthetic / folder).is_dir() else []
        ):
            load_png(png)
    if (synthetic / "metadata.csv").exists():
        meta = pd.read_csv(synthetic / "metadata.csv")
        assert len(meta) and all(
            (synthetic / f / f"{i}.png").is_file()
            for i in meta["id"]
            for f in ("images", "annotations")
        )
    cache = workdir / "results/cache"
    arrays = {
        name: np.load(cache / name)
        for name in ("images.npy", "masks.npy")
        if (cache / name).exists()
    }
    checked += len(arrays)
    if (cache / "index.csv").exists():  # written last: the arrays it describes are complete
        index = pd.read_csv(cache / "index.csv")
        assert len(arrays) == 2 and len(arrays["images.npy"]) == len(arrays["masks.npy"]) == len(
            index
        )
        checked += 1
    for name in (
        "results/split.json",
        "results/class_weights.json",
        "results/convnext_tiny/metrics.json",
    ):
        if (workdir / name).exists():
            json.loads((workdir / name).read_text())
            checked += 1
    out = workdir / "results/convnext_tiny"
    for name in ("model_best.pt", "model_last.pt"):
        if (out / name).exists():
            torch.load(out / name, weights_only=False)
            checked += 1
    if (out / "history.csv").exists():
        assert len(pd.read_csv(out / "history.csv")) >= 1
        checked += 1
    if (out / "per_image_confusion.npz").exists():
        np.load(out / "per_image_confusion.npz")["confusion"]
        checked += 1
    for png in (
        sorted((out / "predictions").glob("*.png")) if (out / "predictions").is_dir() else []
    ):
        load_png(png)
    if (out / "metrics.json").exists():
        n_images = json.loads((out / "metrics.json").read_text())["n_images"]
        assert len(list((out / "predictions").glob("*.png"))) == n_images
    return checked


def finished(workdir: Path, target: str) -> bool:
    """``target`` exists and Snakemake has not marked it incomplete (a job still writing it)."""
    marks = workdir / ".snakemake/incomplete"
    incomplete = set()
    for mark in marks.iterdir() if marks.is_dir() else []:
        try:
            incomplete.add(base64.urlsafe_b64decode(mark.name).decode())
        except ValueError:  # not a marker (e.g. "migration_underway")
            continue
    return (workdir / target).exists() and target not in incomplete


def test_random_sigkills_in_every_stage_leave_no_partial_output(tmp_path):
    """Snakemake and its job SIGKILLed together at seeded random moments of each stage; after
    every kill each output present loads whole, and at the end a rerun completes."""
    rng = random.Random(8)
    kills = []
    for stage, (script, target, window) in STAGES.items():
        for _ in range(KILLS_PER_STAGE):
            if finished(tmp_path, target):
                break  # the kill came after the job had finished and was recorded: stage done
            proc = start(tmp_path, TARGET)
            pid = job_pid(proc, script)
            assert pid is not None, f"{stage} never ran"
            delay = rng.uniform(0, window)
            started = time.monotonic()
            # At the drawn moment, or as soon as the job ends (Snakemake then checks and records
            # its outputs): the stage is then still the one being killed.
            while time.monotonic() - started < delay and pid in session_processes(proc.pid):
                time.sleep(0.02)
            kill_session(proc)
            kills.append(
                (stage, round(time.monotonic() - started, 2), check_no_partial_output(tmp_path))
            )
            run(tmp_path, "--unlock")  # the lock a killed Snakemake leaves (its message says so)
        run(tmp_path, target)
    run(tmp_path, TARGET)
    assert check_no_partial_output(tmp_path) > 0
    leftovers = [
        p
        for p in tmp_path.rglob("*")
        if p.name.endswith((".tmp", ".old")) and ".snakemake" not in p.parts
    ]
    assert not leftovers
    print(f"{len(kills)} kills (stage, seconds after the job started, files checked): {kills}")
    assert {stage for stage, *_ in kills} == set(STAGES)
