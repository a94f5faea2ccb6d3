"""evaluation.mode: cache (the training-size cache) vs native (each scan whole, predicted as
`predict` does, scored against its mask at native resolution)."""

import json

import numpy as np
import pytest
from _checkpoints import save_random_checkpoint
from PIL import Image

from heritage_damage_seg.classes import IGNORE_INDEX, NUM_CLASSES
from heritage_damage_seg.data.folder import build_cache
from heritage_damage_seg.evaluation.evaluate import evaluate, mode_difference
from heritage_damage_seg.model.sliding import SlidingSettings
from heritage_damage_seg.report import samples


def make_dataset(root, sizes):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            root / "images" / f"s{i}.png"
        )
        mask = rng.integers(0, NUM_CLASSES, (h, w), dtype=np.uint8)
        mask[:3] = IGNORE_INDEX
        Image.fromarray(mask).save(root / "masks" / f"s{i}.png")
    build_cache(root / "images", root / "masks", root / "cache", size=64)
    ids = [f"s{i}" for i in range(len(sizes))]
    (root / "split.json").write_text(json.dumps({"train": [], "val": ids}))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_random_checkpoint(tmp_path_factory.mktemp("model") / "model_best.pt")


def run(root, checkpoint, mode):
    out = root / mode
    return evaluate(
        checkpoint,
        cache_dir=root / "cache",
        split_file=root / "split.json",
        metrics_file=out / "metrics.json",
        per_image_confusion_file=out / "cm.npz",
        predictions_dir=out / "predictions",
        batch_size=2,
        device_preference="cpu",
        mode=mode,
        sliding=SlidingSettings(batch_size=2),
    )


def test_at_the_training_size_both_modes_score_the_same_pixels(tmp_path, checkpoint):
    """Scans already at the training size: the model sees the same input in both modes and the
    logits need no resizing, so the two confusion matrices are identical."""
    make_dataset(tmp_path, [(64, 64), (64, 64), (64, 64)])
    cache, native = run(tmp_path, checkpoint, "cache"), run(tmp_path, checkpoint, "native")
    assert cache["evaluation_mode"] == "cache" and native["evaluation_mode"] == "native"
    assert (
        native["scan_view"]["view"] == "resize" and native["sliding"] is None
    )  # no sliding window
    assert cache["confusion_matrix"] == native["confusion_matrix"]
    saved = json.loads((tmp_path / "native/metrics.json").read_text())
    assert saved["resolution"] == "native" and saved["scored_resolution"]["at_native"] is True
    assert cache["scored_resolution"]["at_native"] is False and cache["resolution"].startswith(
        "64x64"
    )


def test_native_scores_the_original_masks_at_native_resolution(tmp_path, checkpoint):
    sizes = [(100, 130), (70, 64)]
    make_dataset(tmp_path, sizes)
    cache, native = run(tmp_path, checkpoint, "cache"), run(tmp_path, checkpoint, "native")
    assert native["num_pixels"] == sum((h - 3) * w for h, w in sizes)  # all but the 255 rows
    assert cache["num_pixels"] < native["num_pixels"]
    for i, (h, w) in enumerate(sizes):
        assert np.asarray(Image.open(tmp_path / f"native/predictions/s{i}.png")).shape == (h, w)
        assert np.asarray(Image.open(tmp_path / f"cache/predictions/s{i}.png")).shape == (64, 64)
    # The sample plots take cache rows: native predictions come back at the cache size (nearest).
    _, masks, predictions = samples.load_samples(
        ["s0", "s1"], tmp_path / "cache", tmp_path / "native/predictions"
    )
    assert predictions.shape == masks.shape == (2, 64, 64)
    rows = {r["class"]: r for r in mode_difference(cache, native)}
    assert rows["Cracks"]["thin"] and not rows["Clean"]["thin"]
    assert rows["mIoU"]["difference_pp"] == pytest.approx(100 * (native["mIoU"] - cache["mIoU"]))
    with pytest.raises(ValueError, match="expected metrics of mode 'cache'"):
        mode_difference(native, native)


def test_a_working_copy_below_native_size_is_not_called_native(tmp_path, checkpoint):
    """A scan above prepare.working_max_side is scored on its downscaled working copy; metrics.json
    says so instead of "native"."""
    rng = np.random.default_rng(1)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i, (h, w) in enumerate([(90, 200), (60, 80)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            tmp_path / "images" / f"s{i}.png"
        )
        Image.fromarray(rng.integers(0, NUM_CLASSES, (h, w), dtype=np.uint8)).save(
            tmp_path / "masks" / f"s{i}.png"
        )
    build_cache(
        tmp_path / "images", tmp_path / "masks", tmp_path / "cache", size=64, working_max_side=100
    )
    (tmp_path / "split.json").write_text(json.dumps({"train": [], "val": ["s0", "s1"]}))
    native = run(tmp_path, checkpoint, "native")
    assert native["scored_resolution"] == {
        "description": "native, except 1 of 2 scans above prepare.working_max_side scored on working copies "
        "down to 0.5 x native",
        "at_native": False,
        "scans_downscaled": 1,
        "smallest_fraction_of_native": 0.5,
    }
    assert native["num_pixels"] == 100 * 45 + 80 * 60
