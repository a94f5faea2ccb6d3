"""Reading an image / index-mask dataset and building the prepared cache the training reads.

A dataset on disk is a folder of RGB images and a folder of single-channel index masks with the
same file stem (ARTeFACT's export layout), plus an optional ``metadata.csv`` (id, group, material,
content). The prepared cache holds every image and mask resized once to the training resolution
as uint8 arrays (``images.npy``: N×S×S×3, ``masks.npy``: N×S×S) and an ``index.csv``; every later
stage reads only the cache, memory-mapped, so nothing is decoded twice.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from heritage_damage_seg.classes import IGNORE_INDEX, NUM_CLASSES, PALETTE_RGB, IGNORE_RGB
from heritage_damage_seg.io import atomic_path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
VALID_MASK_VALUES = frozenset(range(NUM_CLASSES)) | {IGNORE_INDEX}
AUGMENTED_COPY = re.compile(r"_aug\d+$")
# ARTeFACT's largest scans are ~244 MP; PIL refuses anything above 179 MP by default.
Image.MAX_IMAGE_PIXELS = 250_000_000


class DatasetError(ValueError):
    """A problem with the user's data: the message names the file and what to do about it."""


@dataclass(frozen=True)
class Sample:
    id: str
    image: Path
    mask: Path


def source_group(sample_id: str) -> str:
    """The artwork a view belongs to: ``abc_aug3`` (an offline-augmented copy) → ``abc``."""
    return AUGMENTED_COPY.sub("", sample_id)


def _by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            files.setdefault(path.stem, path)
    return files


def discover(images_dir: str | os.PathLike[str], masks_dir: str | os.PathLike[str]) -> list[Sample]:
    """Pairs every image with the mask of the same stem; refuses unpaired files and empty folders."""
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder, what in ((images_dir, "images"), (masks_dir, "masks")):
        if not folder.is_dir():
            raise DatasetError(
                f"dataset {what} folder {folder} does not exist: set dataset.path (and "
                f"dataset.{what}_dir) in your config to the folder holding the {what}"
            )
    images, masks = _by_stem(images_dir), _by_stem(masks_dir)
    if not images:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {images_dir}")
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask or no_image:
        problems = []
        if no_mask:
            problems.append(f"{len(no_mask)} image(s) without a mask in {masks_dir}, e.g. {no_mask[:3]}")
        if no_image:
            problems.append(f"{len(no_image)} mask(s) without an image in {images_dir}, e.g. {no_image[:3]}")
        raise DatasetError("; ".join(problems) + ": add the missing files or remove the strays")
    return [Sample(stem, images[stem], masks[stem]) for stem in sorted(images)]


def _rgb_mask_to_index(rgb: np.ndarray, path: Path) -> np.ndarray:
    lut = {colour: i for i, colour in enumerate(PALETTE_RGB)} | {IGNORE_RGB: IGNORE_INDEX}
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    index = np.full(packed.shape, -1, dtype=np.int32)
    for (r, g, b), class_id in lut.items():
        index[packed == ((r << 16) | (g << 8) | b)] = class_id
    if (index < 0).any():
        unknown = np.unique(packed[index < 0])[:5]
        colours = ", ".join(f"#{int(c):06X}" for c in unknown)
        raise DatasetError(
            f"{path}: RGB mask has colours outside the ARTeFACT palette ({colours}): export the "
            "annotation as a single-channel index PNG, or fix those pixels"
        )
    return index.astype(np.uint8)


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """An index mask as HxW uint8 with values in 0–15 or 255; anything else is an error."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.mode in ("RGB", "RGBA"):
                return _rgb_mask_to_index(np.asarray(im.convert("RGB")), path)
            if im.mode not in ("L", "P", "I", "I;16"):
                raise DatasetError(f"{path}: mask mode {im.mode} is not an index mask (expected L or P)")
            mask = np.asarray(im)
    except DatasetError:
        raise
    except (OSError, SyntaxError) as err:
        raise DatasetError(f"{path}: cannot read mask ({err}): the file is corrupt or truncated") from err
    values = np.unique(mask)
    bad = sorted(int(v) for v in values if int(v) not in VALID_MASK_VALUES)
    if bad:
        raise DatasetError(
            f"{path}: mask values {bad[:10]} are not ARTeFACT class ids (0–15, 255 = background): "
            "remap them in the annotation"
        )
    return mask.astype(np.uint8)


def read_image(path: str | os.PathLike[str], target_size: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """An RGB image and its stored (width, height); JPEGs are decoded at a reduced scale near
    ``target_size`` when given, which is far cheaper than decoding a huge scan in full."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            stored_size = im.size
            if target_size is not None:
                im.draft("RGB", (target_size, target_size))
            return im.convert("RGB"), stored_size
    except (OSError, SyntaxError) as err:
        raise DatasetError(f"{path}: cannot read image ({err}): the file is corrupt or truncated") from err


def prepare_sample(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """One image and mask resized to ``size``×``size`` (area-averaged image, nearest mask)."""
    mask = read_mask(sample.mask)
    image, (stored_width, stored_height) = read_image(sample.image, target_size=size)
    height, width = mask.shape
    if (stored_height, stored_width) != (height, width):
        raise DatasetError(
            f"{sample.image} is {stored_width}×{stored_height} but its mask {sample.mask} is "
            f"{width}×{height}: image and mask must have the same size"
        )
    resized = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    resized_mask = Image.fromarray(mask).resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(resized, dtype=np.uint8), np.asarray(resized_mask, dtype=np.uint8), height, width


def _prepare_args(args: tuple[Sample, int]) -> tuple[np.ndarray, np.ndarray, int, int]:
    return prepare_sample(*args)


def read_metadata(path: str | os.PathLike[str] | None, ids: Sequence[str]) -> pd.DataFrame:
    """id/group/material/content for every sample; group defaults to the source artwork id."""
    frame = pd.DataFrame({"id": list(ids)})
    if path:
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"metadata file {path} does not exist: fix dataset.metadata or set it to null")
        meta = pd.read_csv(path, dtype=str)
        if "id" not in meta.columns:
            raise DatasetError(f"{path}: metadata needs an 'id' column (found {list(meta.columns)})")
        keep = [c for c in ("id", "group", "material", "content") if c in meta.columns]
        frame = frame.merge(meta[keep], on="id", how="left")
    if "group" not in frame.columns:
        frame["group"] = frame["id"].map(source_group)
    frame["group"] = frame["group"].fillna(frame["id"].map(source_group))
    for column in ("material", "content"):
        if column not in frame.columns:
            frame[column] = ""
    return frame[["id", "group", "material", "content"]].fillna("")


def build_cache(
    images_dir: str | os.PathLike[str],
    masks_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    size: int,
    metadata: str | os.PathLike[str] | None = None,
    workers: int = 1,
) -> pd.DataFrame:
    """Decodes, checks and resizes the whole dataset once into ``out_dir`` (see module docstring)."""
    samples = discover(images_dir, masks_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = read_metadata(metadata, [s.id for s in samples])
    n = len(samples)
    log.info("preparing %d samples at %d px with %d worker(s)", n, size, workers)
    heights, widths = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    with atomic_path(out_dir / "images.npy") as images_tmp, atomic_path(out_dir / "masks.npy") as masks_tmp:
        # open_memmap writes straight to disk: the dataset never has to fit in RAM.
        images = np.lib.format.open_memmap(images_tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        masks = np.lib.format.open_memmap(masks_tmp, mode="w+", dtype=np.uint8, shape=(n, size, size))
        jobs = [(s, size) for s in samples]
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = pool.map(_prepare_args, jobs, chunksize=8)
                for i, (image, mask, h, w) in enumerate(results):
                    images[i], masks[i], heights[i], widths[i] = image, mask, h, w
        else:
            for i, job in enumerate(jobs):
                images[i], masks[i], heights[i], widths[i] = _prepare_args(job)
        images.flush()
        masks.flush()
        del images, masks
    # The index last: its presence means the arrays it describes are complete.
    index["height"], index["width"] = heights, widths
    index["image_path"] = [str(s.image) for s in samples]
    index["mask_path"] = [str(s.mask) for s in samples]
    with atomic_path(out_dir / "index.csv") as index_tmp:
        index.to_csv(index_tmp, index=False)
    return index


@dataclass(frozen=True)
class PreparedCache:
    images: np.ndarray  # N×S×S×3 uint8 (memory-mapped)
    masks: np.ndarray  # N×S×S uint8
    index: pd.DataFrame

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def positions(self, ids: Sequence[str]) -> np.ndarray:
        lookup = {sample_id: i for i, sample_id in enumerate(self.index["id"])}
        missing = [i for i in ids if i not in lookup]
        if missing:
            raise DatasetError(f"ids {missing[:5]} are in the split but not in the cache: rebuild the split")
        return np.array([lookup[i] for i in ids], dtype=np.int64)


def load_cache(cache_dir: str | os.PathLike[str]) -> PreparedCache:
    cache_dir = Path(cache_dir)
    images = np.load(cache_dir / "images.npy", mmap_mode="r")
    masks = np.load(cache_dir / "masks.npy", mmap_mode="r")
    index = pd.read_csv(cache_dir / "index.csv", dtype={"id": str, "group": str}, keep_default_na=False)
    if not (len(images) == len(masks) == len(index)):
        raise DatasetError(f"{cache_dir}: images, masks and index disagree in length: delete the folder and rerun")
    return PreparedCache(images, masks, index)
