"""evaluation.mode: resize (the cache) vs sliding (the original files at native resolution)."""

import json

import numpy as np
import pytest
from PIL import Image

from _checkpoints import save_random_checkpoint
from heritage_damage_seg import plots
from heritage_damage_seg.classes import IGNORE_INDEX, NUM_CLASSES
from heritage_damage_seg.dataset import build_cache
from heritage_damage_seg.evaluate import evaluate, mode_difference
from heritage_damage_seg.sliding import SlidingSettings


def make_dataset(root, sizes):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"s{i}.png")
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
        checkpoint, cache_dir=root / "cache", split_file=root / "split.json", metrics_file=out / "metrics.json",
        per_image_confusion_file=out / "cm.npz", predictions_dir=out / "predictions", batch_size=2,
        device_preference="cpu", mode=mode, sliding=SlidingSettings(batch_size=2),
    )  # fmt: skip


def test_at_the_training_size_both_modes_agree(tmp_path, checkpoint):
    make_dataset(tmp_path, [(64, 64), (64, 64), (64, 64)])
    resize, sliding = run(tmp_path, checkpoint, "resize"), run(tmp_path, checkpoint, "sliding")
    assert resize["evaluation_mode"] == "resize" and sliding["evaluation_mode"] == "sliding"
    assert sliding["sliding"]["overlap"] == 0.25 and resize["sliding"] is None
    assert np.abs(np.array(resize["confusion_matrix"]) - np.array(sliding["confusion_matrix"])).sum() <= 2
    saved = json.loads((tmp_path / "sliding/metrics.json").read_text())
    assert saved["evaluation_mode"] == "sliding" and saved["resolution"] == "native"


def test_sliding_scores_the_original_masks_at_native_resolution(tmp_path, checkpoint):
    sizes = [(100, 130), (70, 64)]
    make_dataset(tmp_path, sizes)
    resize, sliding = run(tmp_path, checkpoint, "resize"), run(tmp_path, checkpoint, "sliding")
    assert sliding["num_pixels"] == sum((h - 3) * w for h, w in sizes)  # all but the 255 rows
    assert resize["num_pixels"] < sliding["num_pixels"]
    for i, (h, w) in enumerate(sizes):
        assert np.asarray(Image.open(tmp_path / f"sliding/predictions/s{i}.png")).shape == (h, w)
        assert np.asarray(Image.open(tmp_path / f"resize/predictions/s{i}.png")).shape == (64, 64)
    # The sample plots take cache rows: native predictions come back at the cache size (nearest).
    _, masks, predictions = plots.load_samples(["s0", "s1"], tmp_path / "cache", tmp_path / "sliding/predictions")
    assert predictions.shape == masks.shape == (2, 64, 64)
    rows = {r["class"]: r for r in mode_difference(resize, sliding)}
    assert rows["Cracks"]["thin"] and not rows["Clean"]["thin"]
    assert rows["mIoU"]["difference_pp"] == pytest.approx(100 * (sliding["mIoU"] - resize["mIoU"]))
    with pytest.raises(ValueError, match="expected metrics of mode 'resize'"):
        mode_difference(sliding, sliding)
