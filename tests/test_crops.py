"""The crops training view (prepare.view: crops): where crops come from, padding, determinism,
grouping by artwork, the evaluation modes and the bootstrap over scans, on files made here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _checkpoints import save_random_checkpoint
from PIL import Image

from heritage_damage_seg.classes import IGNORE_INDEX, NUM_CLASSES
from heritage_damage_seg.data import decode
from heritage_damage_seg.data.cache import load_cache
from heritage_damage_seg.data.cache_writer import source_group
from heritage_damage_seg.data.folder import build_cache
from heritage_damage_seg.data.geometry import CropView, crop_offsets
from heritage_damage_seg.data.split import grouped_split
from heritage_damage_seg.evaluation.bootstrap import bootstrap_models, per_unit
from heritage_damage_seg.evaluation.compare import compare
from heritage_damage_seg.evaluation.evaluate import evaluate
from heritage_damage_seg.model.scan_view import ModelView
from heritage_damage_seg.model.sliding import SlidingSettings
from heritage_damage_seg.report import samples

SIZE = 64
STRIPE = 40  # native rows per mask stripe


def stripe_class(native_row: np.ndarray) -> np.ndarray:
    return (native_row // STRIPE) % 15 + 1


def write_scan(root, stem, width, height, seed=0):
    """A noisy image and a mask of horizontal stripes whose class follows the native row."""
    (root / "images").mkdir(exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
        root / "images" / f"{stem}.png"
    )
    mask = np.repeat(stripe_class(np.arange(height))[:, None], width, axis=1).astype(np.uint8)
    Image.fromarray(mask).save(root / "annotations" / f"{stem}.png")


def build(root, out, view, workers=1, **kwargs):
    return build_cache(
        root / "images",
        root / "annotations",
        root / out,
        size=SIZE,
        crops=view,
        workers=workers,
        **kwargs,
    )


def test_crops_are_cut_from_the_downscaled_scan_at_their_recorded_position(tmp_path):
    write_scan(tmp_path, "big", 400, 300)
    view = CropView(scale=0.5, per_image=5, seed=3)
    index = build(tmp_path, "cache", view)
    cache = load_cache(tmp_path / "cache")
    assert (
        cache.view == "crops"
        and cache.images.shape == (5, SIZE, SIZE, 3)
        and cache.masks.shape == (5, SIZE, SIZE)
    )
    assert index["id"].tolist() == [f"big__crop{k}" for k in range(5)]
    assert (index["scan"] == "big").all() and (
        index[["height", "width"]].values == [300, 400]
    ).all()
    assert (index[["scaled_width", "scaled_height"]].values == [200, 150]).all()
    assert (index["crop_scale"] == 0.5).all()
    assert (
        index["crop_x"].between(0, 200 - SIZE).all()
        and index["crop_y"].between(0, 150 - SIZE).all()
    )
    assert (
        len(set(zip(index["crop_x"], index["crop_y"]))) > 1
    )  # random positions, not one fixed window
    # The same pixels as the scan decoded at half size, at the recorded offset…
    scaled_image, _ = decode.scaled_image(tmp_path / "images" / "big.png", 200, 150, "big")
    scaled_mask, _ = decode.scaled_mask(tmp_path / "annotations" / "big.png", 200, 150, "big")
    for k, row in enumerate(index.itertuples()):
        y, x = row.crop_y, row.crop_x
        assert np.array_equal(cache.images[k], scaled_image[y : y + SIZE, x : x + SIZE])
        assert np.array_equal(cache.masks[k], scaled_mask[y : y + SIZE, x : x + SIZE])
        # …and, independently of the decoder, the stripe classes of the native rows they show
        # (nearest neighbour: scaled row r shows native row ≈ 2r; rows next to a stripe edge
        # skipped).
        native_rows = 2 * (y + np.arange(SIZE))
        away_from_edges = np.abs((native_rows + 1) % STRIPE - STRIPE / 2) < STRIPE / 2 - 2
        assert np.array_equal(
            cache.masks[k][away_from_edges, 0], stripe_class(native_rows[away_from_edges])
        )
        assert (cache.masks[k] == cache.masks[k][:, :1]).all()  # stripes are horizontal


def test_sides_shorter_than_the_crop_are_padded_with_ignore(tmp_path):
    write_scan(tmp_path, "small", 100, 60)  # at 0.5: 50×30, smaller than 64 on both sides
    index = build(tmp_path, "cache", CropView(scale=0.5, per_image=2, seed=0))
    cache = load_cache(tmp_path / "cache")
    assert (index[["crop_x", "crop_y"]].values == 0).all()
    for k in range(2):
        assert (cache.masks[k][30:] == IGNORE_INDEX).all() and (
            cache.masks[k][:, 50:] == IGNORE_INDEX
        ).all()
        assert (cache.images[k][30:] == 0).all() and (cache.images[k][:, 50:] == 0).all()
        assert (cache.masks[k][:30, :50] != IGNORE_INDEX).all()


def test_crops_are_seeded_and_the_same_with_any_worker_count(tmp_path):
    for i in range(5):
        write_scan(tmp_path, f"s{i}", 180 + 30 * i, 150, seed=i)
    view = CropView(scale=0.75, per_image=3, seed=7)
    one = build(tmp_path, "one", view, workers=1)
    two = build(tmp_path, "two", view, workers=2)
    a, b = load_cache(tmp_path / "one"), load_cache(tmp_path / "two")
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert one.drop(columns=["image_path", "mask_path"]).equals(
        two.drop(columns=["image_path", "mask_path"])
    )
    other = build(tmp_path, "other", CropView(scale=0.75, per_image=3, seed=8))
    assert one[["crop_x", "crop_y"]].values.tolist() != other[["crop_x", "crop_y"]].values.tolist()
    # A scan's positions depend on its id and the seed, not on the rest of the dataset.
    s3 = one[one["scan"] == "s3"]
    width, height = int(s3["scaled_width"].iloc[0]), int(s3["scaled_height"].iloc[0])
    assert crop_offsets("s3", width, height, SIZE, view) == list(zip(s3["crop_x"], s3["crop_y"]))


def test_crops_keep_the_artworks_group_and_the_split_keeps_them_together(tmp_path):
    stems = ["a", "a_aug1", "a_aug2", "b", "b_aug1", "c", "d", "e"]
    for i, stem in enumerate(stems):
        write_scan(tmp_path, stem, 160, 140, seed=i)
    index = build(tmp_path, "cache", CropView(scale=0.5, per_image=4, seed=1))
    assert len(index) == 4 * len(stems)
    # `__crop<k>` never reads as an augmented copy: the group is the scan's, `_augN` stripped.
    groups = dict(zip(index["id"], index["group"]))
    assert groups["a_aug1__crop3"] == groups["a__crop0"] == "a" and groups["b_aug1__crop0"] == "b"
    assert source_group("a_aug1__crop3") != "a_aug1"  # the suffix hides `_augN` from the id rule…
    assert (index["group"] == index["scan"].map(source_group)).all()  # …so groups come from scans
    for seed in range(5):
        split = grouped_split(
            index["id"].tolist(), index["group"].tolist(), val_fraction=0.25, seed=seed
        )
        side = {sample_id: "val" for sample_id in split["val"]} | {
            sample_id: "train" for sample_id in split["train"]
        }
        by_scan = index.assign(side=index["id"].map(side)).groupby("scan")["side"].nunique()
        by_group = index.assign(side=index["id"].map(side)).groupby("group")["side"].nunique()
        assert (by_scan == 1).all() and (by_group == 1).all()


def test_the_bootstrap_resamples_scans_not_crops():
    rng = np.random.default_rng(0)
    n_scans, per = 6, 4
    ids = [f"s{i}__crop{k}" for i in range(n_scans) for k in range(per)]
    scans = [f"s{i}" for i in range(n_scans) for _ in range(per)]
    confusion = rng.integers(0, 50, (len(ids), NUM_CLASSES, NUM_CLASSES))
    names, summed = per_unit(ids, scans, confusion)
    assert names == [f"s{i}" for i in range(n_scans)]
    assert np.array_equal(summed[2], confusion[8:12].sum(axis=0))
    # Whole scans (resize view) pass through, sorted.
    assert per_unit(["b", "a"], ["b", "a"], confusion[:2])[0] == ["a", "b"]
    with pytest.raises(ValueError, match="differ in length"):
        per_unit(ids, scans[:-1], confusion)


def test_compare_sums_crops_per_scan_before_resampling(tmp_path):
    rng = np.random.default_rng(1)
    n_scans, per = 5, 8
    ids = np.array([f"s{i}__crop{k}" for i in range(n_scans) for k in range(per)])
    scans = np.array([f"s{i}" for i in range(n_scans) for _ in range(per)])
    metrics, histories, per_image = {}, {}, {}
    for name in ("m1", "m2"):
        # Crops of a scan err alike: a scan-level matrix, repeated with a little noise per crop.
        per_scan_level = rng.integers(0, 30, (n_scans, NUM_CLASSES, NUM_CLASSES))
        confusion = np.repeat(per_scan_level, per, axis=0) + rng.integers(
            0, 3, (len(ids), NUM_CLASSES, NUM_CLASSES)
        )
        np.savez_compressed(tmp_path / f"{name}.npz", ids=ids, scans=scans, confusion=confusion)
        cm = confusion.sum(axis=0)
        metrics[name] = tmp_path / f"{name}.json"
        metrics[name].write_text(
            json.dumps(
                {
                    "smp_encoder": name,
                    "family": "x",
                    "mIoU": 0.5,
                    "damage_mIoU": 0.4,
                    "pixel_accuracy": 0.9,
                    "trivial_baseline": {"mIoU": 0.1},
                    "per_class": {},
                    "parameters": 1,
                    "checkpoint_epoch": 1,
                    "inference_ms_per_image": 1.0,
                    "device": "cpu",
                    "confusion_matrix": cm.tolist(),
                }
            )
        )
        histories[name] = tmp_path / f"{name}.csv"
        histories[name].write_text("epoch,train_imgs_per_s,epoch_seconds\n1,10,1\n")
        per_image[name] = (ids, scans, confusion)
    result = compare(
        metrics, histories, {n: tmp_path / f"{n}.npz" for n in metrics}, n_resamples=200, seed=3
    )
    assert result["bootstrap"]["n_images"] == n_scans and result["bootstrap"]["unit"] == "scan"
    expected = bootstrap_models(
        {n: per_unit(*per_image[n]) for n in per_image}, n_resamples=200, seed=3
    )
    model = next(m for m in result["models"] if m["encoder"] == "m1")
    assert model["mIoU_ci_low"] == expected["models"]["m1"]["mIoU"]["low"]
    # Treating the 40 crops as independent images would give a too narrow interval.
    as_crops = bootstrap_models(
        {n: (per_image[n][0], per_image[n][2]) for n in per_image}, n_resamples=200, seed=3
    )
    assert as_crops["n_images"] == n_scans * per

    def width(models):
        return models["m1"]["mIoU"]["high"] - models["m1"]["mIoU"]["low"]

    assert width(as_crops["models"]) < 0.7 * width(expected["models"])


def test_evaluation_scores_the_crops_in_cache_mode_and_each_scan_once_natively(tmp_path):
    checkpoint = save_random_checkpoint(
        tmp_path / "model.pt", scan_view=ModelView("crops", SIZE, 0.5).record()
    )
    sizes = {"a": (200, 150), "b": (90, 170), "c": (100, 60)}
    for i, (stem, (w, h)) in enumerate(sizes.items()):
        write_scan(tmp_path, stem, w, h, seed=i)
    view = CropView(scale=0.5, per_image=3, seed=0)
    index = build(tmp_path, "cache", view)
    (tmp_path / "split.json").write_text(json.dumps({"train": [], "val": index["id"].tolist()}))
    results = {}
    for mode in ("cache", "native"):
        out = tmp_path / mode
        results[mode] = evaluate(
            checkpoint,
            cache_dir=tmp_path / "cache",
            split_file=tmp_path / "split.json",
            metrics_file=out / "metrics.json",
            per_image_confusion_file=out / "cm.npz",
            predictions_dir=out / "predictions",
            batch_size=4,
            device_preference="cpu",
            mode=mode,
            sliding=SlidingSettings(batch_size=4),
        )
    cached, native = results["cache"], results["native"]
    assert cached["view"] == native["view"] == "crops" and cached["crop_scale"] == 0.5
    assert (
        cached["n_images"] == 9
        and native["n_images"] == 3
        and cached["n_scans"] == native["n_scans"] == 3
    )
    cache = load_cache(tmp_path / "cache")
    assert cached["num_pixels"] == int((cache.masks != IGNORE_INDEX).sum())
    assert cached["resolution"] == "64x64 crops at 0.5 x native"
    # Native: every scan once, whole, predicted at the crops' scale and scored at its own size.
    assert native["num_pixels"] == sum(w * h for w, h in sizes.values())  # the stripes hold no 255
    assert native["resolution"] == "native" and native["scan_view"]["view"] == "crops"
    for stem, (w, h) in sizes.items():
        assert np.asarray(Image.open(tmp_path / f"native/predictions/{stem}.png")).shape == (h, w)
    with np.load(tmp_path / "cache/cm.npz") as data:
        assert data["scans"].tolist() == index["scan"].tolist() and len(data["ids"]) == 9
    with np.load(tmp_path / "native/cm.npz") as data:
        assert data["ids"].tolist() == data["scans"].tolist() == ["a", "b", "c"]
    # Plots take cache rows: a scan's native prediction is brought to the crops' scale and cut at
    # each crop's position.
    ids = index["id"].tolist()
    _, masks, from_native = samples.load_samples(
        ids, tmp_path / "cache", tmp_path / "native/predictions"
    )
    _, _, from_cache = samples.load_samples(ids, tmp_path / "cache", tmp_path / "cache/predictions")
    assert from_native.shape == from_cache.shape == masks.shape == (9, SIZE, SIZE)
    assert np.array_equal(from_native == IGNORE_INDEX, masks == IGNORE_INDEX)  # padding lines up
    row = index.iloc[1]
    whole = Image.open(tmp_path / f"native/predictions/{row.scan}.png")
    scaled = np.asarray(
        whole.resize((int(row.scaled_width), int(row.scaled_height)), Image.Resampling.NEAREST)
    )
    x, y = row.crop_x, row.crop_y
    assert np.array_equal(from_native[1], scaled[y : y + SIZE, x : x + SIZE])


@pytest.mark.slow
def test_the_workflow_trains_and_evaluates_on_crops(tmp_path):
    """Config alone switches the view; one encoder through metrics, the native comparison and plots."""
    import pandas as pd
    from conftest import snakemake

    config = tmp_path / "crops.yaml"
    config.write_text("prepare: {view: crops, crop_scale: 0.75, crops_per_image: 3, seed: 1}\n")
    targets = [
        "results/convnext_tiny/metrics.json",
        "results/convnext_tiny/evaluation_modes.csv",
        "results/convnext_tiny/plots/prediction_grid.png",
    ]
    result = snakemake(*targets, workdir=tmp_path / "run", configs=(config,), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    run = tmp_path / "run" / "results"
    index = pd.read_csv(run / "cache/index.csv", dtype=str, keep_default_na=False)
    assert len(index) == 3 * index["scan"].nunique() == 3 * 16  # tiny.yaml: 8 artworks × 2 views
    assert index["id"].str.fullmatch(r".+__crop[0-2]").all()
    split = json.loads((run / "split.json").read_text())
    scans_of = index.set_index("id")["scan"]
    sides = {side: set(scans_of.loc[split[side]]) for side in ("train", "val", "test")}
    assert not sides["test"] & (sides["train"] | sides["val"]) and not sides["val"] & sides["train"]
    metrics = json.loads((run / "convnext_tiny/metrics.json").read_text())
    assert (
        metrics["scored_split"] == "test"
    )  # every crop of every test scan, each scan once natively
    assert (
        metrics["view"] == "crops"
        and metrics["n_images"] == 3 * len(sides["test"]) == 3 * metrics["n_scans"]
    )
    native = json.loads((run / "convnext_tiny/evaluation_native/metrics.json").read_text())
    assert native["n_images"] == len(sides["test"]) and native["resolution"] == "native"
    assert (run / "convnext_tiny/plots/prediction_grid.png").stat().st_size > 0
    import torch

    trained = torch.load(
        run / "convnext_tiny/model_best.pt", map_location="cpu", weights_only=False
    )
    assert (
        trained["scan_view"]["view"] == "crops" and trained["scan_view"]["input_scale"] == 0.75
    )  # predict applies it
