"""The prototype's ImageNet start, fetched once: the offline failure names the file to put in place,
and a locally saved encoder state dict feeds training and is recorded by its SHA-256."""

import numpy as np
import pytest
import torch
from conftest import snakemake

from heritage_damage_seg.data import class_weights
from heritage_damage_seg.data.folder import build_cache
from heritage_damage_seg.data.split import grouped_split
from heritage_damage_seg.data.synthetic import generate_dataset
from heritage_damage_seg.io import write_json
from heritage_damage_seg.model.models import build_model
from heritage_damage_seg.model.weights import (
    WeightsUnavailable,
    fetch_imagenet,
    fetched_path,
    sha256,
)
from heritage_damage_seg.training.settings import TrainSettings
from heritage_damage_seg.training.train import train


def test_an_unreachable_hub_fails_at_once_naming_the_file_and_the_alternative(
    tmp_path, monkeypatch
):
    # A closed local port: the connection is refused at once, as on a node without network.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    target = tmp_path / "resources/weights/convnext_tiny.imagenet.pth"
    with pytest.raises(WeightsUnavailable) as error:
        fetch_imagenet("convnext_tiny", target, image_size=64)
    message = str(error.value)
    assert str(target) in message and "encoders.convnext_tiny.weights: <path>" in message
    assert not target.exists()


def test_the_encoder_weights_rule_fails_offline_with_that_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    layer = tmp_path / "imagenet.yaml"
    layer.write_text("encoders: {convnext_tiny: {batch_size: 4, weights: imagenet}}\n")
    run = tmp_path / "run"
    result = snakemake(fetched_path("convnext_tiny"), workdir=run, configs=(layer,), timeout=300)
    assert result.returncode != 0
    log = (run / "results/logs/encoder_weights/convnext_tiny.log").read_text()
    assert "resources/weights/convnext_tiny.imagenet.pth" in log and "weights: <path>" in log
    # Training reads the fetched file, never the hub: the train job waits for it.
    dry = snakemake(
        "-n", "results/convnext_tiny/model_best.pt", workdir=run, configs=(layer,), timeout=300
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert (
        "rule encoder_weights" in dry.stdout
        and "resources/weights/convnext_tiny.imagenet.pth" in dry.stdout
    )


def test_a_local_encoder_state_dict_feeds_training_and_is_recorded(tmp_path, caplog):
    caplog.set_level("INFO")
    generate_dataset(
        tmp_path / "data",
        n_artworks=4,
        views_per_artwork=2,
        seed=1,
        min_side=64,
        max_side=96,
        background_fraction=0.3,
    )
    index = build_cache(
        tmp_path / "data/images", tmp_path / "data/annotations", tmp_path / "cache", size=64
    )
    split = grouped_split(index["id"].tolist(), index["group"].tolist(), val_fraction=0.25, seed=0)
    write_json(tmp_path / "split.json", split)
    masks = np.load(tmp_path / "cache/masks.npy")
    train_rows = np.flatnonzero(index["id"].isin(set(split["train"])).to_numpy())
    write_json(
        tmp_path / "weights.json",
        class_weights.compute(class_weights.pixel_counts(masks[train_rows]), "uniform"),
    )

    torch.manual_seed(1234)  # not the training seed: these weights can only come from the file
    saved = build_model("convnext_tiny", image_size=64).encoder.state_dict()
    weights_file = tmp_path / "encoder.pth"
    torch.save(saved, weights_file)
    # A learning rate of 1e-12 leaves the start visible in the trained checkpoint.
    settings = TrainSettings(
        encoder="convnext_tiny",
        epochs=1,
        batch_size=2,
        learning_rate=1e-12,
        seed=3,
        encoder_weights=str(weights_file),
    )
    train(
        settings,
        cache_dir=tmp_path / "cache",
        split_file=tmp_path / "split.json",
        class_weights_file=tmp_path / "weights.json",
        best_checkpoint=tmp_path / "best.pt",
        last_checkpoint=tmp_path / "last.pt",
        history_file=tmp_path / "history.csv",
    )
    checkpoint = torch.load(tmp_path / "best.pt", weights_only=False)
    assert checkpoint["encoder_weights"] == {
        "source": "local file",
        "file": str(weights_file),
        "sha256": sha256(weights_file),
    }
    trained = {
        k[len("encoder.") :]: v
        for k, v in checkpoint["model_state_dict"].items()
        if k.startswith("encoder.")
    }
    floats = [k for k, v in saved.items() if v.is_floating_point()]
    assert floats and all(torch.allclose(trained[k], saved[k], atol=1e-6) for k in floats)
    assert f"from {weights_file}" in caplog.text
