"""The Snakemake workflow end to end on the tiny config: real rules, real code, real files."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, snakemake, snakemake_command
from PIL import Image

from heritage_damage_seg.classes import NUM_CLASSES
from heritage_damage_seg.metrics import summarise

ENCODERS = ("convnext_tiny", "segformer_b3", "maxvit_tiny")


@pytest.mark.slow
def test_every_stage_wrote_its_files(tiny_run):
    meta = pd.read_csv(tiny_run / "resources/synthetic/metadata.csv")
    assert (
        len(meta) == 16 and len(list((tiny_run / "resources/synthetic/images").glob("*.png"))) == 16
    )
    images = np.load(tiny_run / "results/cache/images.npy", mmap_mode="r")
    masks = np.load(tiny_run / "results/cache/masks.npy", mmap_mode="r")
    assert (
        images.shape == (16, 64, 64, 3) and images.dtype == np.uint8 and masks.shape == (16, 64, 64)
    )

    split = json.loads((tiny_run / "results/split.json").read_text())
    group = dict(zip(meta["id"], meta["group"]))
    sides = {side: {group[i] for i in split[side]} for side in ("train", "val", "test")}
    assert (
        not sides["train"] & sides["val"]
        and not sides["train"] & sides["test"]
        and not sides["val"] & sides["test"]
    )
    assert split["n_val"] > 0 and split["n_train"] > 0 and split["n_test"] > 0

    weights = json.loads((tiny_run / "results/class_weights.json").read_text())
    assert weights["method"] == "inverse_sqrt_log_scaled" and len(weights["weights"]) == NUM_CLASSES

    for encoder in ENCODERS:
        out = tiny_run / "results" / encoder
        history = pd.read_csv(out / "history.csv")
        assert history["epoch"].tolist() == [1]
        assert np.isfinite(history["train_loss"]).all() and (history["train_imgs_per_s"] > 0).all()
        checkpoint = torch.load(out / "model_best.pt", weights_only=False)
        assert checkpoint["encoder"] == encoder and checkpoint["image_size"] == 64
        assert (out / "model_last.pt").is_file()
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["encoder"] == encoder and metrics["n_images"] == split["n_test"]
        assert metrics["scored_split"] == "test" and metrics["selected_on"] == "val"
        assert 0.0 <= metrics["mIoU"] <= 1.0 and metrics["inference_ms_per_image"] > 0
        assert metrics["trivial_baseline"]["damage_mIoU"] == 0.0
        for stage in ("train", "evaluate"):
            assert (tiny_run / f"results/logs/{stage}/{encoder}.log").stat().st_size > 0
            assert (tiny_run / f"results/benchmarks/{stage}/{encoder}.tsv").is_file()

    comparison = json.loads((tiny_run / "results/model_comparison.json").read_text())
    assert sorted(m["encoder"] for m in comparison["models"]) == sorted(ENCODERS)
    mious = [m["mIoU"] for m in comparison["models"]]
    assert mious == sorted(mious, reverse=True) and comparison["scored_split"] == "test"
    # predict's best encoder is chosen on validation, not on the test ranking.
    by_val = max(comparison["models"], key=lambda m: m["val_mIoU"])
    assert comparison["best_encoder"] == by_val["encoder"]
    for model in comparison["models"]:
        history = pd.read_csv(tiny_run / "results" / model["encoder"] / "history.csv")
        assert model["val_mIoU"] == pytest.approx(history["val_mIoU"].max())


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ENCODERS)
def test_metrics_can_be_recomputed_from_the_saved_predictions(tiny_run, encoder):
    """Anyone can check our figures: the prediction PNGs + the cached masks give metrics.json."""
    out = tiny_run / "results" / encoder
    index = pd.read_csv(tiny_run / "results/cache/index.csv", dtype={"id": str})
    masks = np.load(tiny_run / "results/cache/masks.npy")
    split = json.loads((tiny_run / "results/split.json").read_text())
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    position = {sample_id: i for i, sample_id in enumerate(index["id"])}
    for sample_id in split["test"]:
        prediction = np.asarray(Image.open(out / "predictions" / f"{sample_id}.png"))
        truth = masks[position[sample_id]]
        keep = truth != 255
        np.add.at(cm, (truth[keep], prediction[keep]), 1)
    metrics = json.loads((out / "metrics.json").read_text())
    assert cm.tolist() == metrics["confusion_matrix"]
    assert summarise(cm)["mIoU"] == pytest.approx(metrics["mIoU"])
    per_image = np.load(out / "per_image_confusion.npz")
    assert per_image["confusion"].sum(axis=0).tolist() == metrics["confusion_matrix"]


@pytest.mark.slow
def test_a_finished_run_has_nothing_left_to_do(tiny_run):
    result = snakemake("-n", "all", workdir=tiny_run)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_single_model_target_resolves_on_its_own(tmp_path):
    result = snakemake("-n", "results/segformer_b3/metrics.json", workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = result.stdout + result.stderr
    assert "train" in jobs and "convnext_tiny" not in jobs and "maxvit_tiny" not in jobs


@pytest.mark.parametrize(
    "override, named",
    [
        ("trainig:\n  epochs: 2\n", "trainig"),
        ("training:\n  epochs: two\n", "two"),
        ("training:\n  base_learning_rate: -0.1\n", "-0.1"),
        ("encoders:\n  resnet50: {batch_size: 4}\n", "resnet50"),
        ("split:\n  val_fraction: 1.0\n", "val_fraction"),
        ("encoders:\n  convnext_tiny: {batch_size: 0}\n", "batch_size"),
    ],
)
def test_a_bad_config_fails_naming_the_key(tmp_path, override, named):
    bad = tmp_path / "bad.yaml"
    bad.write_text(override)
    result = snakemake("-n", "all", workdir=tmp_path, timeout=120, configs=(bad,))
    assert result.returncode != 0
    assert named in result.stdout + result.stderr


def test_snakemake_lint_is_clean():
    result = subprocess.run(
        snakemake_command("--lint", cores=None, tiny=False),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_compare_modes_puts_both_evaluations_into_all(tmp_path):
    layer = tmp_path / "modes.yaml"
    layer.write_text("evaluation: {compare_modes: true}\n")
    result = snakemake("-n", "all", workdir=tmp_path, configs=(layer,))
    assert result.returncode == 0, result.stderr
    jobs = result.stdout + result.stderr
    assert "evaluate_other_mode" in jobs and "evaluation_modes" in jobs
    plain = snakemake("-n", "all", workdir=tmp_path)
    assert "evaluation_modes" not in plain.stdout + plain.stderr
