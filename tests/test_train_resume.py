"""Resuming training through the real code path (the package API): a checkpoint of another
configuration is not resumed, and a diverging run never replaces the best checkpoint."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from heritage_damage_seg.data import class_weights
from heritage_damage_seg.data.folder import build_cache
from heritage_damage_seg.data.split import grouped_split
from heritage_damage_seg.data.synthetic import generate_dataset
from heritage_damage_seg.io import write_json
from heritage_damage_seg.training import train as train_module
from heritage_damage_seg.training.settings import TrainSettings
from heritage_damage_seg.training.train import NonFiniteLossError, train


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train_inputs")
    generate_dataset(
        root / "data",
        n_artworks=4,
        views_per_artwork=2,
        seed=1,
        min_side=64,
        max_side=96,
        background_fraction=0.3,
    )
    index = build_cache(root / "data/images", root / "data/annotations", root / "cache", size=64)
    split = grouped_split(index["id"].tolist(), index["group"].tolist(), val_fraction=0.25, seed=0)
    write_json(root / "split.json", split)
    masks = np.load(root / "cache/masks.npy")
    train_rows = np.flatnonzero(index["id"].isin(set(split["train"])).to_numpy())
    write_json(
        root / "weights.json",
        class_weights.compute(class_weights.pixel_counts(masks[train_rows]), "uniform"),
    )
    return {
        "cache_dir": root / "cache",
        "split_file": root / "split.json",
        "class_weights_file": root / "weights.json",
    }


def run(inputs, out: Path, **overrides):
    settings = TrainSettings(
        **(
            {
                "encoder": "convnext_tiny",
                "epochs": 2,
                "batch_size": 2,
                "learning_rate": 1e-3,
                "seed": 3,
            }
            | overrides
        )
    )
    return train(
        settings,
        **inputs,
        best_checkpoint=out / "best.pt",
        last_checkpoint=out / "last.pt",
        history_file=out / "history.csv",
    )


def test_a_finished_checkpoint_restores_the_outputs_and_another_config_starts_afresh(
    inputs, tmp_path, caplog
):
    caplog.set_level("INFO")
    first = run(inputs, tmp_path)
    history = pd.read_csv(tmp_path / "history.csv")
    (tmp_path / "best.pt").unlink()  # what Snakemake does to a failed job's outputs
    (tmp_path / "history.csv").unlink()
    assert run(inputs, tmp_path) == first
    assert "resumed at epoch 2" in caplog.text
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "history.csv"), history)
    caplog.clear()
    run(inputs, tmp_path, learning_rate=2e-3, epochs=1)
    assert "not resuming" in caplog.text and "learning_rate 0.001 → 0.002" in caplog.text
    assert "resumed" not in caplog.text
    assert pd.read_csv(tmp_path / "history.csv")["epoch"].tolist() == [1]


def test_a_diverging_run_stops_without_touching_the_good_checkpoints(inputs, tmp_path):
    run(inputs, tmp_path, epochs=1)
    good = {name: (tmp_path / name).read_bytes() for name in ("best.pt", "last.pt", "history.csv")}
    # An infinite learning rate through the real code path: the first step makes the weights
    # inf/NaN.
    with pytest.raises(NonFiniteLossError, match="epoch 1: .*Lower the learning rate"):
        run(inputs, tmp_path, epochs=1, learning_rate=float("inf"))
    assert {name: (tmp_path / name).read_bytes() for name in good} == good
    checkpoint = torch.load(tmp_path / "best.pt", weights_only=False)
    assert all(
        torch.isfinite(v).all()
        for v in checkpoint["model_state_dict"].values()
        if v.is_floating_point()
    )


def test_validation_every_k_epochs_and_checkpoints_on_a_clock(inputs, tmp_path, monkeypatch):
    """validate_every=2 validates epochs 2 and 3 (the last always); checkpoint_minutes=60 writes
    model_last.pt and model_best.pt once, at the last epoch, instead of after every epoch."""
    saved = []
    original = train_module.save_checkpoint

    def recording_save(checkpoint, path):
        saved.append((Path(path).name, checkpoint["epoch"]))
        original(checkpoint, path)

    monkeypatch.setattr(train_module, "save_checkpoint", recording_save)
    result = run(inputs, tmp_path, epochs=3, validate_every=2, checkpoint_minutes=60)
    history = pd.read_csv(tmp_path / "history.csv")
    assert history["val_mIoU"].isna().tolist() == [True, False, False]
    assert (history["epoch_imgs_per_s"] <= history["train_imgs_per_s"]).all()
    assert [name for name, _ in saved] == ["best.pt", "last.pt"]
    assert result["best_epoch"] in (2, 3)
    assert dict(saved) == {"best.pt": result["best_epoch"], "last.pt": 3}
    best = torch.load(tmp_path / "best.pt", weights_only=False)
    assert best["epoch"] == result["best_epoch"]

    saved.clear()
    every_epoch = tmp_path / "every_epoch"
    every_epoch.mkdir()
    run(inputs, every_epoch, epochs=3, validate_every=1, checkpoint_minutes=0)
    assert [name for name, _ in saved if name == "last.pt"] == ["last.pt"] * 3
