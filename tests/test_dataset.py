"""The prepared cache and the errors a user's dataset can raise, on files made here."""

import numpy as np
import pytest
from PIL import Image

from heritage_damage_seg.classes import IGNORE_INDEX, PALETTE_RGB
from heritage_damage_seg.data import decode
from heritage_damage_seg.data.cache import load_cache
from heritage_damage_seg.data.folder import build_cache, discover
from heritage_damage_seg.data.sources import DatasetError


def write_pair(root, stem, size=(40, 30), mask_value=1, image_size=None):
    (root / "images").mkdir(exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    w, h = image_size or size
    Image.fromarray(np.full((h, w, 3), 120, np.uint8)).save(root / "images" / f"{stem}.png")
    mask = np.zeros(size[::-1], np.uint8)
    mask[: size[1] // 2] = mask_value
    mask[-2:] = IGNORE_INDEX
    Image.fromarray(mask).save(root / "annotations" / f"{stem}.png")


def test_cache_resizes_with_nearest_labels_and_keeps_255(tmp_path):
    for stem in ("a", "a_aug1", "b"):
        write_pair(tmp_path, stem, size=(200, 100), mask_value=9)
    index = build_cache(tmp_path / "images", tmp_path / "annotations", tmp_path / "cache", size=64)
    cache = load_cache(tmp_path / "cache")
    assert cache.images.shape == (3, 64, 64, 3) and cache.images.dtype == np.uint8
    assert cache.masks.shape == (3, 64, 64)
    assert set(np.unique(cache.masks)) == {0, 9, IGNORE_INDEX}  # nearest: no blended label values
    assert index["group"].tolist() == ["a", "a", "b"]
    assert index[["height", "width"]].values.tolist() == [[100, 200]] * 3
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_cache_is_the_same_with_several_workers(tmp_path):
    for i in range(6):
        write_pair(tmp_path, f"s{i}", size=(50 + 10 * i, 40), mask_value=i + 1)
    build_cache(tmp_path / "images", tmp_path / "annotations", tmp_path / "one", size=64, workers=1)
    build_cache(tmp_path / "images", tmp_path / "annotations", tmp_path / "two", size=64, workers=2)
    one, two = load_cache(tmp_path / "one"), load_cache(tmp_path / "two")
    assert np.array_equal(one.images, two.images) and np.array_equal(one.masks, two.masks)


def test_unknown_mask_value_names_file_and_values(tmp_path):
    write_pair(tmp_path, "a", mask_value=16)
    with pytest.raises(DatasetError, match=r"a\.png: mask values \[16\]"):
        decode.full_mask(
            tmp_path / "annotations" / "a.png", str(tmp_path / "annotations" / "a.png")
        )


def test_rgb_mask_through_the_palette(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[0, 0] = PALETTE_RGB[9]
    rgb[1, 1] = (0x5A, 0x00, 0x07)
    Image.fromarray(rgb).save(tmp_path / "m.png")
    mask = decode.full_mask(tmp_path / "m.png", str(tmp_path / "m.png"))
    assert mask[0, 0] == 9 and mask[1, 1] == IGNORE_INDEX and mask[2, 2] == 0
    rgb[3, 3] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "bad.png")
    with pytest.raises(DatasetError, match="#010203"):
        decode.full_mask(tmp_path / "bad.png", str(tmp_path / "bad.png"))


def test_image_and_mask_of_different_sizes(tmp_path):
    write_pair(tmp_path, "a", size=(40, 30), image_size=(41, 30))
    with pytest.raises(DatasetError, match="41×30 but its mask .* 40×30"):
        build_cache(tmp_path / "images", tmp_path / "annotations", tmp_path / "cache", size=64)
    assert not (tmp_path / "cache" / "images.npy").exists()


def test_unpaired_files_are_listed(tmp_path):
    write_pair(tmp_path, "a")
    write_pair(tmp_path, "b")
    (tmp_path / "annotations" / "b.png").unlink()
    with pytest.raises(DatasetError, match=r"1 image\(s\) without a mask .*\['b'\]"):
        discover(tmp_path / "images", tmp_path / "annotations")


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist: set dataset.path"):
        discover(tmp_path / "nope", tmp_path / "annotations")
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        discover(tmp_path / "images", tmp_path / "annotations")


def test_truncated_png_is_reported(tmp_path):
    write_pair(tmp_path, "a")
    path = tmp_path / "annotations" / "a.png"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        decode.full_mask(path, str(path))
