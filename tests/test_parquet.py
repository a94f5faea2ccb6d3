"""ARTeFACT as published (parquet shards) and as folders give the same cache; huge scans are
prepared in bounded memory; bad labels are named. Fixtures are made here in the card's schema."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from heritage_damage_seg.classes import IGNORE_INDEX, colour_lut
from heritage_damage_seg.data import parquet
from heritage_damage_seg.data.cache import load_cache
from heritage_damage_seg.data.folder import build_cache
from heritage_damage_seg.data.geometry import CropView
from heritage_damage_seg.data.sources import DatasetError, dataset_format

IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("image", IMAGE_STRUCT),
        ("annotation", IMAGE_STRUCT),
        ("annotation_rgb", IMAGE_STRUCT),
        ("material", pa.string()),
        ("content", pa.string()),
        ("type", pa.string()),
        ("damage_description", pa.string()),
        ("llava_description", pa.string()),
        ("verified_description", pa.string()),
    ]
)
# id, (width, height), image format, material, content: mixed sizes and formats, an offline
# augmented copy of "canvas_01", one row whose index annotation is missing (colour rendering only).
ROWS = [
    ("canvas_01", (300, 200), "PNG", "Canvas", "Artistic depiction"),
    ("canvas_01_aug3", (200, 300), "PNG", "Canvas", "Artistic depiction"),
    ("film_07", (96, 120), "JPEG", "Film emulsion", "Photographic depiction"),
    ("glass_02", (150, 150), "PNG", "Glass", "Geometric patterns"),
    ("paper_11", (410, 123), "PNG", "Paper", "Line art"),
]
RGB_ONLY = "glass_02"


def encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def make_sample(seed: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w, h = size
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 : h // 2, w // 5 : w // 2] = rng.integers(1, 16)
    mask[h // 2 :, w // 2 :] = rng.integers(1, 16)
    mask[:, : w // 10] = IGNORE_INDEX  # Background: the mount around the artwork
    return image, mask


def write_dataset(root, *, bad_value: int | None = None) -> None:
    """The same five samples as two parquet shards (row groups of two rows) and as folders."""
    (root / "folder" / "images").mkdir(parents=True)
    (root / "folder" / "annotations").mkdir(parents=True)
    (root / "hub" / "data").mkdir(parents=True)
    records, metadata = [], []
    for n, (sample_id, size, fmt, material, content) in enumerate(ROWS):
        image, mask = make_sample(n, size)
        if bad_value is not None and sample_id == "paper_11":
            mask[5, 5] = bad_value
        image_bytes = encode(image, fmt)
        rgb_bytes = encode(colour_lut()[mask], "PNG")
        index_bytes = None if sample_id == RGB_ONLY else encode(mask, "PNG")
        suffix = ".jpg" if fmt == "JPEG" else ".png"
        (root / "folder" / "images" / f"{sample_id}{suffix}").write_bytes(image_bytes)
        (root / "folder" / "annotations" / f"{sample_id}.png").write_bytes(index_bytes or rgb_bytes)
        records.append(
            {
                "id": sample_id,
                "image": {"bytes": image_bytes, "path": f"{sample_id}{suffix}"},
                "annotation": None if index_bytes is None else {"bytes": index_bytes, "path": None},
                "annotation_rgb": {"bytes": rgb_bytes, "path": None},
                "material": material,
                "content": content,
                "type": "Photo" if fmt == "JPEG" else "Scan",
                "damage_description": "cracks across the upper half",
                "llava_description": "",
                "verified_description": "",
            }
        )
        metadata.append(
            {
                "id": sample_id,
                "material": material,
                "content": content,
                "type": "Photo" if fmt == "JPEG" else "Scan",
            }
        )
    # Shards in a shuffled row order: the cache must not depend on it.
    order = [3, 0, 4, 1, 2]
    shards = [order[:3], order[3:]]
    for k, rows in enumerate(shards):
        table = pa.Table.from_pylist([records[i] for i in rows], schema=SCHEMA)
        pq.write_table(
            table, root / "hub" / "data" / f"train-{k:05d}-of-00002.parquet", row_group_size=2
        )
    pd.DataFrame(metadata).to_csv(root / "folder" / "metadata.csv", index=False)


@pytest.fixture()
def dataset(tmp_path):
    write_dataset(tmp_path)
    return tmp_path


def test_parquet_and_folders_give_the_same_cache(dataset):
    from_folder = build_cache(
        dataset / "folder" / "images",
        dataset / "folder" / "annotations",
        dataset / "cache_folder",
        size=64,
        metadata=dataset / "folder" / "metadata.csv",
    )
    from_parquet = parquet.build_cache(
        dataset / "hub", dataset / "cache_parquet", size=64, workers=2
    )
    folder, hub = load_cache(dataset / "cache_folder"), load_cache(dataset / "cache_parquet")
    assert np.array_equal(folder.images, hub.images)
    assert np.array_equal(folder.masks, hub.masks)
    same = ["id", "group", "material", "content", "type", "height", "width"]
    pd.testing.assert_frame_equal(from_folder[same], from_parquet[same])
    assert from_parquet["id"].tolist() == sorted(r[0] for r in ROWS)
    assert from_parquet.set_index("id").loc["canvas_01_aug3", "group"] == "canvas_01"
    assert from_parquet.set_index("id").loc["paper_11", ["height", "width"]].tolist() == [123, 410]
    # Background stays 255 (never clipped into Lightleak) on both paths, RGB-only row included.
    glass = from_parquet["id"].tolist().index(RGB_ONLY)
    assert IGNORE_INDEX in hub.masks[glass]
    assert set(np.unique(hub.masks)) <= {*range(16), IGNORE_INDEX}


def test_parquet_and_folders_give_the_same_crops(dataset):
    view = CropView(scale=0.5, per_image=3, seed=5)
    from_folder = build_cache(
        dataset / "folder" / "images",
        dataset / "folder" / "annotations",
        dataset / "cache_folder",
        size=64,
        metadata=dataset / "folder" / "metadata.csv",
        crops=view,
    )
    from_parquet = parquet.build_cache(
        dataset / "hub", dataset / "cache_parquet", size=64, workers=2, crops=view
    )
    folder, hub = load_cache(dataset / "cache_folder"), load_cache(dataset / "cache_parquet")
    assert hub.view == folder.view == "crops" and len(hub.index) == 3 * len(ROWS)
    assert np.array_equal(folder.images, hub.images)
    assert np.array_equal(folder.masks, hub.masks)
    same = [
        "id",
        "scan",
        "group",
        "material",
        "content",
        "type",
        "height",
        "width",
        "crop_scale",
        "scaled_width",
        "scaled_height",
        "crop_x",
        "crop_y",
    ]
    pd.testing.assert_frame_equal(from_folder[same], from_parquet[same])
    rows = from_parquet.set_index("id")
    assert rows.loc["canvas_01_aug3__crop2", ["scan", "group"]].tolist() == [
        "canvas_01_aug3",
        "canvas_01",
    ]
    assert rows.loc["paper_11__crop0", ["scaled_width", "scaled_height"]].tolist() == [205, 62]
    assert set(np.unique(hub.masks)) <= {*range(16), IGNORE_INDEX}


def test_parquet_rows_get_working_copies_equal_to_the_originals(dataset):
    index = parquet.build_cache(dataset / "hub", dataset / "cache", size=64)
    for row in index.itertuples():
        original_image = next((dataset / "folder" / "images").glob(f"{row.id}.*"))
        assert open(row.image_path, "rb").read() == original_image.read_bytes()
        working_mask = np.asarray(
            Image.open(row.mask_path).convert("RGB")
            if row.id == RGB_ONLY
            else Image.open(row.mask_path)
        )
        _, mask = make_sample(
            [r[0] for r in ROWS].index(row.id), next(r[1] for r in ROWS if r[0] == row.id)
        )
        expected = colour_lut()[mask] if row.id == RGB_ONLY else mask
        assert np.array_equal(working_mask, expected)


def test_scans_larger_than_the_working_size_get_a_downscaled_copy(dataset):
    index = build_cache(
        dataset / "folder" / "images",
        dataset / "folder" / "annotations",
        dataset / "cache",
        size=64,
        working_max_side=160,
    )
    rows = index.set_index("id")
    small = rows.loc["film_07"]  # 96×120: used where it is
    assert small["image_path"] == str(dataset / "folder" / "images" / "film_07.jpg")
    big = rows.loc["paper_11"]  # 410×123 → 160×48
    with Image.open(big["image_path"]) as image, Image.open(big["mask_path"]) as mask:
        assert image.size == mask.size == (160, 48)
        assert set(np.unique(np.asarray(mask))) <= {0, *range(1, 16), IGNORE_INDEX}
    assert big["width"] == 410  # the index keeps the original size


def test_a_mask_holding_17_is_an_error_naming_the_row_and_the_value(tmp_path):
    write_dataset(tmp_path, bad_value=17)
    with pytest.raises(
        DatasetError,
        match=r"train-0000\d-of-00002\.parquet row group \d row \d \(id paper_11\).*\[17\]",
    ):
        parquet.build_cache(tmp_path / "hub", tmp_path / "cache_parquet", size=64)
    with pytest.raises(DatasetError, match=r"annotations/paper_11\.png.*\[17\]"):
        build_cache(
            tmp_path / "folder" / "images",
            tmp_path / "folder" / "annotations",
            tmp_path / "cache",
            size=64,
        )
    assert not (tmp_path / "cache" / "index.csv").exists()


def test_parquet_without_the_card_columns_names_what_is_missing(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "pixels": [b"x"]}), tmp_path / "odd.parquet")
    with pytest.raises(
        DatasetError, match=r"odd\.parquet.*lacks column\(s\) \['image', 'annotation'\]"
    ):
        parquet.build_cache(tmp_path / "odd.parquet", tmp_path / "cache", size=64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no .parquet files"):
        parquet.build_cache(tmp_path / "empty", tmp_path / "cache", size=64)


def test_format_auto_detects_shards(dataset):
    assert dataset_format(dataset / "hub", "images") == "parquet"
    assert (
        dataset_format(dataset / "hub" / "data" / "train-00000-of-00002.parquet", "images")
        == "parquet"
    )
    assert dataset_format(dataset / "folder", "images") == "folder"


# A 244 MP scan (16,000 × 15,250, ARTeFACT's largest is 243.7 MP) prepared in a fresh interpreter
# that reports its own peak RSS. Decoded whole, the image alone is ~976 MB in PIL (4 B/px) and the
# mask another 244 MB; streamed through libvips the peak stays near the interpreter's baseline.
HUGE_PEAK_RSS_BOUND_MB = 400
HUGE_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import pyvips
    from heritage_damage_seg.data.folder import build_cache
    root = sys.argv[1]
    index = build_cache(root + "/images", root + "/annotations", root + "/cache", size=384)
    row = index.iloc[0]
    # VmHWM: this process's own peak. ru_maxrss is not: Linux carries the high-water mark of the
    # process that forked it across exec, so it would report pytest's own size.
    try:
        hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
        peak_mb = int(hwm[0].split()[1]) / 1024
    except (OSError, IndexError):
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak_mb, "height": int(row.height), "width": int(row.width),
                      "image_path": row.image_path, "mask_path": row.mask_path}))
    """
)


def test_a_244_megapixel_scan_is_prepared_in_bounded_memory(tmp_path):
    import pyvips

    width, height = 16_000, 15_250
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    # Written by libvips in strips: the test itself never holds the scan either.
    x, y = pyvips.Image.xyz(width, height).bandsplit()
    image = (x % 251).bandjoin([y % 241, (x + y) % 239]).cast("uchar")
    image.pngsave(str(tmp_path / "images" / "huge_scan.png"), compression=1)
    mask = (
        (x < width // 8).ifthenelse(IGNORE_INDEX, (y < height // 2).ifthenelse(9, 0)).cast("uchar")
    )
    mask.pngsave(str(tmp_path / "annotations" / "huge_scan.png"), compression=1)
    run = subprocess.run(
        [sys.executable, "-c", HUGE_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(
        f"244 MP scan prepared with peak RSS {result['peak_mb']:.0f} MB (bound {HUGE_PEAK_RSS_BOUND_MB} MB)"
    )
    assert result["peak_mb"] < HUGE_PEAK_RSS_BOUND_MB
    assert (result["height"], result["width"]) == (height, width)
    cache = load_cache(tmp_path / "cache")
    assert set(np.unique(cache.masks[0])) == {0, 9, IGNORE_INDEX}
    left = cache.masks[0][:, : 384 // 8 - 1]
    assert (left == IGNORE_INDEX).all()
    with Image.open(result["image_path"]) as working:
        assert working.size == (8192, round(height * 8192 / width))


def test_the_workflow_reads_parquet_shards_through_config_alone(dataset, tmp_path):
    from conftest import snakemake

    config = tmp_path / "parquet.yaml"
    config.write_text(f"dataset:\n  path: {dataset / 'hub'}\n")
    result = snakemake("results/split.json", workdir=tmp_path / "run", configs=(config,))
    assert result.returncode == 0, result.stderr[-3000:]
    index = pd.read_csv(tmp_path / "run" / "results" / "cache" / "index.csv")
    assert index["id"].tolist() == sorted(r[0] for r in ROWS)
    split = json.loads((tmp_path / "run" / "results" / "split.json").read_text())
    train_groups, val_groups = set(split["train_groups"]), set(split["val_groups"])
    assert not train_groups & val_groups and "canvas_01_aug3" not in train_groups | val_groups


def test_a_truncated_image_in_a_shard_is_an_error_not_a_black_sample(tmp_path):
    image, mask = make_sample(0, (120, 90))
    data = encode(image, "PNG")
    record = {
        "id": "cut",
        "image": {"bytes": data[: len(data) // 2], "path": None},
        "annotation": {"bytes": encode(mask, "PNG"), "path": None},
        "annotation_rgb": None,
        "material": "Paper",
        "content": "Line art",
        "type": "Scan",
        "damage_description": "",
        "llava_description": "",
        "verified_description": "",
    }
    pq.write_table(pa.Table.from_pylist([record], schema=SCHEMA), tmp_path / "cut.parquet")
    with pytest.raises(
        DatasetError, match=r"cut\.parquet row group 0 row 0 \(id cut\) image.*corrupt or truncated"
    ):
        parquet.build_cache(tmp_path / "cut.parquet", tmp_path / "cache", size=64)
