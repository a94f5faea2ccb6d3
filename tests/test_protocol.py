"""The selection/reporting protocol through the real code path: training chooses its best epoch on
``val`` and never feeds a ``test`` row to the model; evaluation scores ``test`` and says so."""

from pathlib import Path

import numpy as np
import pytest
import torch

from heritage_damage_seg.data import class_weights
from heritage_damage_seg.data.cache import load_cache
from heritage_damage_seg.data.folder import build_cache
from heritage_damage_seg.data.split import SELECTED_ON_SCORED_NOTE, grouped_split
from heritage_damage_seg.data.synthetic import generate_dataset
from heritage_damage_seg.evaluation.evaluate import evaluate
from heritage_damage_seg.io import read_json, write_json
from heritage_damage_seg.training import train as train_module
from heritage_damage_seg.training.settings import TrainSettings
from heritage_damage_seg.training.train import train


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("protocol")
    generate_dataset(
        root / "data",
        n_artworks=6,
        views_per_artwork=2,
        seed=2,
        min_side=64,
        max_side=96,
        background_fraction=0.3,
    )
    index = build_cache(root / "data/images", root / "data/annotations", root / "cache", size=64)
    ids, groups = index["id"].tolist(), index["group"].tolist()
    write_json(
        root / "split3.json",
        grouped_split(ids, groups, val_fraction=0.2, test_fraction=0.3, seed=0),
    )
    write_json(root / "split2.json", grouped_split(ids, groups, val_fraction=0.3, seed=0))
    masks = np.load(root / "cache/masks.npy")
    split = read_json(root / "split3.json")
    train_rows = np.flatnonzero(index["id"].isin(set(split["train"])).to_numpy())
    write_json(
        root / "weights.json",
        class_weights.compute(class_weights.pixel_counts(masks[train_rows]), "uniform"),
    )
    return {"root": root, "cache_dir": root / "cache", "class_weights_file": root / "weights.json"}


def _train(data, split_file: Path, out: Path) -> Path:
    settings = TrainSettings(
        encoder="convnext_tiny", epochs=2, batch_size=2, learning_rate=1e-3, seed=1
    )
    train(
        settings,
        cache_dir=data["cache_dir"],
        split_file=split_file,
        class_weights_file=data["class_weights_file"],
        best_checkpoint=out / "best.pt",
        last_checkpoint=out / "last.pt",
        history_file=out / "history.csv",
    )
    return out / "best.pt"


@pytest.fixture(scope="module")
def trained(data) -> dict:
    """One training on the three-way split, with every split the training code builds and every
    split its validation scores recorded (wrappers that call through to the real code)."""
    built: list[np.ndarray] = []
    validated: list[np.ndarray] = []
    original_split, original_validation = (
        train_module.ResidentSplit,
        train_module.validation_confusion,
    )

    class RecordingSplit(original_split):
        def __init__(self, images, masks, positions, device, resident=None):
            built.append(np.asarray(positions).copy())
            super().__init__(images, masks, positions, device, resident)

    def recording_validation(model, split, *args, **kwargs):
        validated.append(np.asarray(split.positions).copy())
        return original_validation(model, split, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "ResidentSplit", RecordingSplit)
        patch.setattr(train_module, "validation_confusion", recording_validation)
        out = data["root"] / "trained"
        out.mkdir()
        checkpoint = _train(data, data["root"] / "split3.json", out)
    return {"checkpoint": checkpoint, "built": built, "validated": validated}


def test_training_never_evaluates_or_trains_on_test(data, trained):
    cache = load_cache(data["cache_dir"])
    split = read_json(data["root"] / "split3.json")
    positions = {
        side: set(cache.positions(split[side]).tolist()) for side in ("train", "val", "test")
    }
    assert positions["test"], "the split has a test side"
    assert len(trained["validated"]) == 2, "one validation per epoch"
    for seen in trained["validated"]:
        assert set(seen.tolist()) == positions["val"]
    built = trained["built"]
    assert built and all(not set(p.tolist()) & positions["test"] for p in built)
    assert {frozenset(p.tolist()) for p in built} == {
        frozenset(positions["train"]),
        frozenset(positions["val"]),
    }
    assert torch.load(trained["checkpoint"], weights_only=False)["selected_on"] == "val"


def _evaluate(checkpoint: Path, split_file: Path, data, out: Path) -> dict:
    return evaluate(
        checkpoint,
        cache_dir=data["cache_dir"],
        split_file=split_file,
        metrics_file=out / "metrics.json",
        per_image_confusion_file=out / "pic.npz",
        predictions_dir=out / "pred",
        batch_size=4,
        mixed_precision=False,
        device_preference="cpu",
    )


def test_evaluation_scores_test_and_records_the_protocol(data, trained, tmp_path):
    split_file = data["root"] / "split3.json"
    metrics = _evaluate(trained["checkpoint"], split_file, data, tmp_path)
    split = read_json(split_file)
    assert metrics["scored_split"] == "test" and metrics["selected_on"] == "val"
    assert read_json(tmp_path / "metrics.json")["scored_split"] == "test"
    with np.load(tmp_path / "pic.npz") as stored:
        assert sorted(stored["ids"].tolist()) == sorted(split["test"])
        assert set(stored["groups"].tolist()) == set(split["test_groups"])
    assert sorted(p.stem for p in (tmp_path / "pred").glob("*.png")) == sorted(split["test"])


def test_the_seeds_two_way_protocol_says_it_scores_what_it_selected_on(data, trained, tmp_path):
    split_file = data["root"] / "split2.json"
    metrics = _evaluate(trained["checkpoint"], split_file, data, tmp_path)
    assert metrics["scored_split"] == "val" and metrics["selected_on"] == "val"
    assert metrics["protocol_note"] == SELECTED_ON_SCORED_NOTE
    with np.load(tmp_path / "pic.npz") as stored:
        assert sorted(stored["ids"].tolist()) == sorted(read_json(split_file)["val"])
