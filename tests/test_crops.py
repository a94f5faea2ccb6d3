"""The crops training view (prepare.view: crops): where crops come from, padding, determinism and
grouping by artwork, on files made here."""

from __future__ import annotations

import numpy as np
from PIL import Image

from heritage_damage_seg import decode
from heritage_damage_seg.classes import IGNORE_INDEX
from heritage_damage_seg.dataset import CropView, build_cache, crop_offsets, load_cache, source_group
from heritage_damage_seg.split import grouped_split

SIZE = 64
STRIPE = 40  # native rows per mask stripe


def stripe_class(native_row: np.ndarray) -> np.ndarray:
    return (native_row // STRIPE) % 15 + 1


def write_scan(root, stem, width, height, seed=0):
    """A noisy image and a mask of horizontal stripes whose class follows the native row."""
    (root / "images").mkdir(exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(root / "images" / f"{stem}.png")
    mask = np.repeat(stripe_class(np.arange(height))[:, None], width, axis=1).astype(np.uint8)
    Image.fromarray(mask).save(root / "annotations" / f"{stem}.png")


def build(root, out, view, workers=1, **kwargs):
    return build_cache(root / "images", root / "annotations", root / out, size=SIZE, crops=view, workers=workers,
                       **kwargs)


def test_crops_are_cut_from_the_downscaled_scan_at_their_recorded_position(tmp_path):
    write_scan(tmp_path, "big", 400, 300)
    view = CropView(scale=0.5, per_image=5, seed=3)
    index = build(tmp_path, "cache", view)
    cache = load_cache(tmp_path / "cache")
    assert cache.view == "crops" and cache.images.shape == (5, SIZE, SIZE, 3) and cache.masks.shape == (5, SIZE, SIZE)
    assert index["id"].tolist() == [f"big__crop{k}" for k in range(5)]
    assert (index["scan"] == "big").all() and (index[["height", "width"]].values == [300, 400]).all()
    assert (index[["scaled_width", "scaled_height"]].values == [200, 150]).all()
    assert (index["crop_scale"] == 0.5).all()
    assert index["crop_x"].between(0, 200 - SIZE).all() and index["crop_y"].between(0, 150 - SIZE).all()
    assert len(set(zip(index["crop_x"], index["crop_y"]))) > 1  # random positions, not one fixed window
    # The same pixels as the scan decoded at half size, at the recorded offset…
    scaled_image, _ = decode.scaled_image(tmp_path / "images" / "big.png", 200, 150, "big")
    scaled_mask, _ = decode.scaled_mask(tmp_path / "annotations" / "big.png", 200, 150, "big")
    for k, row in enumerate(index.itertuples()):
        y, x = row.crop_y, row.crop_x
        assert np.array_equal(cache.images[k], scaled_image[y : y + SIZE, x : x + SIZE])
        assert np.array_equal(cache.masks[k], scaled_mask[y : y + SIZE, x : x + SIZE])
        # …and, independently of the decoder, the stripe classes of the native rows they show
        # (nearest neighbour: scaled row r shows native row ≈ 2r; rows next to a stripe edge skipped).
        native_rows = 2 * (y + np.arange(SIZE))
        away_from_edges = np.abs((native_rows + 1) % STRIPE - STRIPE / 2) < STRIPE / 2 - 2
        assert np.array_equal(cache.masks[k][away_from_edges, 0], stripe_class(native_rows[away_from_edges]))
        assert (cache.masks[k] == cache.masks[k][:, :1]).all()  # stripes are horizontal


def test_sides_shorter_than_the_crop_are_padded_with_ignore(tmp_path):
    write_scan(tmp_path, "small", 100, 60)  # at 0.5: 50×30, smaller than 64 on both sides
    index = build(tmp_path, "cache", CropView(scale=0.5, per_image=2, seed=0))
    cache = load_cache(tmp_path / "cache")
    assert (index[["crop_x", "crop_y"]].values == 0).all()
    for k in range(2):
        assert (cache.masks[k][30:] == IGNORE_INDEX).all() and (cache.masks[k][:, 50:] == IGNORE_INDEX).all()
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
    assert one.drop(columns=["image_path", "mask_path"]).equals(two.drop(columns=["image_path", "mask_path"]))
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
        split = grouped_split(index["id"].tolist(), index["group"].tolist(), val_fraction=0.25, seed=seed)
        side = {sample_id: "val" for sample_id in split["val"]} | {sample_id: "train" for sample_id in split["train"]}
        by_scan = index.assign(side=index["id"].map(side)).groupby("scan")["side"].nunique()
        by_group = index.assign(side=index["id"].map(side)).groupby("group")["side"].nunique()
        assert (by_scan == 1).all() and (by_group == 1).all()
