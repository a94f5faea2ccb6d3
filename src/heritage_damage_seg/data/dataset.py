"""Reading a dataset (image / index-mask folders or ARTeFACT's parquet shards) into the prepared
cache the training reads.

A folder dataset is a folder of RGB images and a folder of single-channel index masks with the
same file stem, plus an optional metadata CSV (id, group, material, content, type); a parquet
dataset is ARTeFACT as published (see :mod:`heritage_damage_seg.data.parquet`). Both give the same
cache: every image and mask resized once to the training resolution as uint8 arrays
(``images.npy``: N×S×S×3, ``masks.npy``: N×S×S, in id order) and an ``index.csv``; every later
stage reads only the cache, memory-mapped, so nothing is decoded twice. Scans of any size are
decoded with bounded memory (:mod:`heritage_damage_seg.data.decode`). For native-resolution work
(``evaluation.mode: native``) the index points at each sample's *working copy*: the original file,
or, for scans whose longest side exceeds ``working_max_side``, files with an EXIF orientation or
several pages, and every parquet row, a copy in ``working/`` (downscaled to that side where
larger; a PNG already in the chosen orientation for a tagged image).

Every image mode is read as the same 8-bit sRGB pixels by every reader, and an EXIF-oriented
image is lined up with its mask by one rule, ``prepare.exif_orientation``
(:func:`heritage_damage_seg.data.decode.resolve_orientation`; README "Image formats and EXIF
orientation").

Two training *views* of the scans (``prepare.view``):

* ``resize`` (the seed's): one cache row per scan, the whole scan stretched to S×S. Cheap, but a
  10,000 px scan squeezed to 384 px loses its thin damage (cracks, hair, scratches are a few
  pixels wide at native resolution and vanish).
* ``crops`` (the dataset card's recipe): each scan is downscaled by ``crop_scale`` and
  ``crops_per_image`` S×S crops are cut at seeded random positions (see :class:`CropView`), so
  thin damage keeps a visible width. Rows are ``<scan id>__crop<k>`` and keep the scan's group,
  so the split still keeps every crop of an artwork on one side.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from heritage_damage_seg.classes import IGNORE_INDEX
from heritage_damage_seg.data import decode, parquet
from heritage_damage_seg.data.decode import VALID_MASK_VALUES, DatasetError  # noqa: F401 (re-exported)
from heritage_damage_seg.data.sources import find_shards
from heritage_damage_seg.io import atomic_path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
AUGMENTED_COPY = re.compile(r"_aug\d+$")
INDEX_COLUMNS = (
    "id",
    "group",
    "material",
    "content",
    "type",
    "height",
    "width",
    "image_path",
    "mask_path",
)
# Only in a crops-view index: the scan a row was cut from, the scale and size of the downscaled scan
# it was cut from, and the crop's top-left corner in it (the rest of the crop is padding).
CROP_COLUMNS = ("scan", "crop_scale", "scaled_width", "scaled_height", "crop_x", "crop_y")
# `abc_aug3__crop2`: the `_augN` rule of source_group is anchored at the end, so it never sees a
# crop id (groups are taken from the scan's metadata before the crops are named).
CROP_SEPARATOR = "__crop"
VIEWS = ("resize", "crops")
DEFAULT_WORKING_MAX_SIDE = 8192


@dataclass(frozen=True)
class CropView:
    """The ``crops`` training view: ``per_image`` crops of the scan downscaled by ``scale``.

    The scale is relative to the *native* scan, so every scan is seen at the same physical
    resolution whatever its size (a whole-image resize gives each scan its own scale). Crop
    positions are drawn from a generator seeded by ``seed`` and the scan id alone, so they do not
    depend on the worker count, the order of the shards or on which other scans the dataset holds.
    """

    scale: float
    per_image: int
    seed: int = 42

    def __post_init__(self) -> None:
        if not 0.0 < self.scale <= 1.0:
            raise ValueError(f"prepare.crop_scale must be in (0, 1], got {self.scale}")
        if self.per_image < 1:
            raise ValueError(f"prepare.crops_per_image must be at least 1, got {self.per_image}")
        if self.seed < 0:
            raise ValueError(f"prepare.seed must be non-negative, got {self.seed}")


def crop_id(scan_id: str, k: int) -> str:
    return f"{scan_id}{CROP_SEPARATOR}{k}"


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) of a ``width``×``height`` scan downscaled by ``scale`` (at least 1 px)."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def crop_offsets(
    scan_id: str, scaled_width: int, scaled_height: int, size: int, view: CropView
) -> list[tuple[int, int]]:
    """The (x, y) top-left corners of the scan's crops in the downscaled scan.

    Uniform over the positions where a ``size``×``size`` crop fits; 0 on a side shorter than the
    crop (that side is padded). Seeded by the view's seed and a hash of the id (Python's ``hash``
    of a str changes between interpreters).
    """
    digest = int.from_bytes(hashlib.sha256(scan_id.encode()).digest()[:8], "little")
    rng = np.random.default_rng([view.seed, digest])
    xs = rng.integers(0, max(0, scaled_width - size) + 1, size=view.per_image)
    ys = rng.integers(0, max(0, scaled_height - size) + 1, size=view.per_image)
    return [(int(x), int(y)) for x, y in zip(xs, ys)]


def cut_crop(array: np.ndarray, x: int, y: int, size: int, fill: int) -> np.ndarray:
    """``array[y:y+size, x:x+size]`` placed top-left on a ``size``×``size`` canvas of ``fill``:
    image padding is black (0), mask padding Background (255), which the loss and metrics ignore."""
    piece = array[y : y + size, x : x + size]
    if piece.shape[:2] == (size, size):
        return np.ascontiguousarray(piece)
    canvas = np.full((size, size, *array.shape[2:]), fill, dtype=array.dtype)
    canvas[: piece.shape[0], : piece.shape[1]] = piece
    return canvas


@dataclass(frozen=True)
class Sample:
    id: str
    image: Path
    mask: Path


def source_group(sample_id: str) -> str:
    """The artwork a view belongs to: ``abc_aug3`` (an offline-augmented copy) → ``abc``."""
    return AUGMENTED_COPY.sub("", sample_id)


def image_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` (by suffix, hidden files skipped), sorted by name."""
    return [
        path
        for path in sorted(folder.iterdir())
        if path.is_file()
        and path.suffix.lower() in IMAGE_SUFFIXES
        and not path.name.startswith(".")
    ]


def _by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in image_files(folder):
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
            problems.append(
                f"{len(no_mask)} image(s) without a mask in {masks_dir}, e.g. {no_mask[:3]}"
            )
        if no_image:
            problems.append(
                f"{len(no_image)} mask(s) without an image in {images_dir}, e.g. {no_image[:3]}"
            )
        raise DatasetError("; ".join(problems) + ": add the missing files or remove the strays")
    return [Sample(stem, images[stem], masks[stem]) for stem in sorted(images)]


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """An index mask as HxW uint8 with values in 0–15 or 255; anything else is an error."""
    return decode.full_mask(path, str(path))


def read_image(
    path: str | os.PathLike[str], target_size: int | None = None, *, orientation: str = "apply"
) -> tuple[Image.Image, tuple[int, int]]:
    """An 8-bit RGB image and its full-size (width, height), both in ``orientation`` (``apply``:
    the EXIF orientation as viewers show it, what ``predict`` wants of a new scan; a working copy
    carries no tag, so it reads the same either way). Every mode is converted as
    :func:`heritage_damage_seg.data.decode.rgb_image` does (16-bit by its high byte, CMYK through
    its
    profile, alpha dropped). With ``target_size`` the image is read reduced by the largest power of
    two (up to 8) that keeps both sides at least ``target_size``, far cheaper for a huge JPEG."""
    name = str(path)
    if target_size is None:
        pixels, head = decode.rgb_image(path, name, orientation=orientation)
    else:
        head = decode.header(path, name, orientation=orientation)
        shrink = 1
        while shrink < 8 and min(head.width, head.height) // (2 * shrink) >= target_size:
            shrink *= 2
        pixels, _ = decode.scaled_image(
            path, -(-head.width // shrink), -(-head.height // shrink), name, orientation=orientation
        )
    return Image.fromarray(pixels, mode="RGB"), (head.width, head.height)


@dataclass(frozen=True)
class CropPlacement:
    """Where a crops-view row comes from (the :data:`CROP_COLUMNS` of the index)."""

    scan: str
    scale: float
    scaled_width: int
    scaled_height: int
    x: int
    y: int


@dataclass(frozen=True)
class PreparedSample:
    position: int  # row in the cache
    image: np.ndarray  # S×S×3
    mask: np.ndarray  # S×S
    height: int  # of the original scan
    width: int
    image_path: str  # the working copy (see module docstring)
    mask_path: str
    crop: CropPlacement | None = None  # crops view only


def _checked_same_size(image_head: decode.Header, mask_head: decode.Header, name: str) -> None:
    if (image_head.width, image_head.height) != (mask_head.width, mask_head.height):
        tag = ""
        if image_head.orientation != 1:
            stored, displayed = image_head.stored_size, image_head.displayed_size
            tag = (
                f" ({stored[0]}×{stored[1]} as stored, {displayed[0]}×{displayed[1]} as displayed: EXIF orientation "
                f"{image_head.orientation}, see prepare.exif_orientation)"
            )
        raise DatasetError(
            f"{name}: the image is {image_head.width}×{image_head.height}{tag} but its mask is "
            f"{mask_head.width}×{mask_head.height}: image and mask must have the same size"
        )


def _orientation(image: decode.Source, mask: decode.Source, setting: str, name: str) -> str:
    """How this scan is read so that it lines up with its mask (:func:`decode.resolve_orientation`)."""
    image_head = decode.header(image, f"{name} image", orientation="ignore")
    if image_head.orientation == 1:
        return "ignore"
    return decode.resolve_orientation(
        image_head, decode.header(mask, f"{name} mask", orientation="ignore"), setting, name
    )


def _working_copy(
    image: decode.Source,
    mask: decode.Source,
    working: tuple[Path, Path] | None,
    working_max_side: int,
    name: str,
    orientation: str,
) -> tuple[str, str]:
    if working is not None:
        image_path, mask_path = decode.write_working_copy(
            image, mask, *working, working_max_side, name, orientation=orientation
        )
    else:
        image_path, mask_path = Path(os.fspath(image)), Path(os.fspath(mask))  # type: ignore[arg-type]
    return str(image_path), str(mask_path)


def prepare_pair(
    position: int,
    image: decode.Source,
    mask: decode.Source,
    *,
    size: int,
    name: str,
    working: tuple[Path, Path] | None,
    working_max_side: int,
    exif_orientation: str = "auto",
) -> PreparedSample:
    """One sample checked and resized to ``size``×``size`` (image: area-averaged; mask: nearest).

    ``working``: where to write a working copy (paths without suffix), always for parquet rows; for
    files, None and a copy is written to ``work_dir`` only when the file cannot serve as it is
    (:func:`decode.needs_working_copy`). ``exif_orientation``: prepare.exif_orientation, the rule
    that lines an EXIF-oriented image up with its mask (:func:`decode.resolve_orientation`).
    """
    orientation = _orientation(image, mask, exif_orientation, name)
    small_mask, mask_head = decode.scaled_mask(mask, size, size, f"{name} mask")
    small_image, image_head = decode.scaled_image(
        image, size, size, f"{name} image", orientation=orientation
    )
    _checked_same_size(image_head, mask_head, name)
    image_path, mask_path = _working_copy(image, mask, working, working_max_side, name, orientation)
    return PreparedSample(
        position,
        small_image,
        small_mask,
        image_head.height,
        image_head.width,
        image_path,
        mask_path,
    )


def prepare_crops(
    position: int,
    image: decode.Source,
    mask: decode.Source,
    *,
    scan_id: str,
    view: CropView,
    size: int,
    name: str,
    working: tuple[Path, Path] | None,
    working_max_side: int,
    exif_orientation: str = "auto",
) -> list[PreparedSample]:
    """The ``view.per_image`` crops of one scan, in cache rows ``position``, ``position + 1``, …

    The scan is decoded once at ``view.scale`` of its native size (libvips: the native scan is
    never whole in memory; the mask by nearest neighbour, every pixel checked), and the crops are
    cut from that at :func:`crop_offsets`; sides shorter than ``size`` are padded
    (:func:`cut_crop`).
    """
    orientation = _orientation(image, mask, exif_orientation, name)
    head = decode.header(image, f"{name} image", orientation=orientation)
    width, height = scaled_size(head.width, head.height, view.scale)
    scaled_mask, mask_head = decode.scaled_mask(mask, width, height, f"{name} mask")
    _checked_same_size(head, mask_head, name)
    scaled_image, _ = decode.scaled_image(
        image, width, height, f"{name} image", orientation=orientation
    )
    image_path, mask_path = _working_copy(image, mask, working, working_max_side, name, orientation)
    return [
        PreparedSample(
            position + k,
            cut_crop(scaled_image, x, y, size, 0),
            cut_crop(scaled_mask, x, y, size, IGNORE_INDEX),
            head.height,
            head.width,
            image_path,
            mask_path,
            CropPlacement(scan_id, view.scale, width, height, x, y),
        )
        for k, (x, y) in enumerate(crop_offsets(scan_id, width, height, size, view))
    ]


def _prepare(
    scan_position: int,
    scan_id: str,
    image: decode.Source,
    mask: decode.Source,
    *,
    size: int,
    crops: CropView | None,
    name: str,
    working: tuple[Path, Path] | None,
    working_max_side: int,
    exif_orientation: str = "auto",
) -> list[PreparedSample]:
    """The cache rows of one scan in the chosen view (see module docstring)."""
    if crops is None:
        return [
            prepare_pair(
                scan_position,
                image,
                mask,
                size=size,
                name=name,
                working=working,
                working_max_side=working_max_side,
                exif_orientation=exif_orientation,
            )
        ]
    return prepare_crops(
        scan_position * crops.per_image,
        image,
        mask,
        scan_id=scan_id,
        view=crops,
        size=size,
        name=name,
        working=working,
        working_max_side=working_max_side,
        exif_orientation=exif_orientation,
    )


def _working_paths(work_dir: Path, sample_id: str) -> tuple[Path, Path]:
    return work_dir / "images" / sample_id, work_dir / "masks" / sample_id


@dataclass(frozen=True)
class _FileJob:
    position: int  # of the scan, in id order
    sample: Sample
    size: int
    work_dir: Path
    working_max_side: int
    crops: CropView | None = None
    exif_orientation: str = "auto"

    def __call__(self) -> list[PreparedSample]:
        head = decode.header(self.sample.image, str(self.sample.image), orientation="ignore")
        copy = decode.needs_working_copy(head, self.working_max_side)
        working = _working_paths(self.work_dir, self.sample.id) if copy else None
        name = f"{self.sample.image} / {self.sample.mask}"
        return _prepare(
            self.position,
            self.sample.id,
            self.sample.image,
            self.sample.mask,
            size=self.size,
            crops=self.crops,
            name=name,
            working=working,
            working_max_side=self.working_max_side,
            exif_orientation=self.exif_orientation,
        )


@dataclass(frozen=True)
class _RowGroupJob:
    group: parquet.RowGroup
    positions: dict[
        str, int
    ]  # id → position of the scan in id order, for the ids of this row group
    size: int
    work_dir: Path
    working_max_side: int
    crops: CropView | None = None
    exif_orientation: str = "auto"

    def __call__(self) -> list[PreparedSample]:
        return [
            sample
            for sample_id, image, mask, where in parquet.row_group_samples(self.group)
            for sample in _prepare(
                self.positions[sample_id],
                sample_id,
                image,
                mask,
                size=self.size,
                crops=self.crops,
                name=where,
                working=_working_paths(self.work_dir, sample_id),
                working_max_side=self.working_max_side,
                exif_orientation=self.exif_orientation,
            )
        ]


def _run(job: Callable[[], list[PreparedSample]]) -> list[PreparedSample]:
    return job()


def read_metadata(path: str | os.PathLike[str] | None, ids: Sequence[str]) -> pd.DataFrame:
    """id/group/material/content/type for every sample; group defaults to the source artwork id."""
    frame = pd.DataFrame({"id": list(ids)})
    if path:
        path = Path(path)
        if not path.is_file():
            raise DatasetError(
                f"metadata file {path} does not exist: fix dataset.metadata or set it to null"
            )
        meta = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "id" not in meta.columns:
            raise DatasetError(
                f"{path}: metadata needs an 'id' column (found {list(meta.columns)})"
            )
        keep = [c for c in ("id", "group", "material", "content", "type") if c in meta.columns]
        frame = frame.merge(meta[keep], on="id", how="left")
    return _complete_metadata(frame)


def _complete_metadata(frame: pd.DataFrame) -> pd.DataFrame:
    if "group" not in frame.columns:
        frame["group"] = ""
    frame["group"] = frame["group"].fillna("").astype(str)
    no_group = frame["group"] == ""
    frame.loc[no_group, "group"] = frame.loc[no_group, "id"].map(source_group)
    for column in ("material", "content", "type"):
        if column not in frame.columns:
            frame[column] = ""
    return frame[["id", "group", "material", "content", "type"]].fillna("").reset_index(drop=True)


def _crop_rows(scans: pd.DataFrame, crops: CropView | None) -> pd.DataFrame:
    """One index row per cache row: the scans themselves, or each scan's crops in a row (the
    scan's group, material, content and type; ``scan`` names it)."""
    if crops is None:
        return scans
    rows = scans.loc[scans.index.repeat(crops.per_image)].reset_index(drop=True)
    rows.insert(1, "scan", rows["id"])
    rows["id"] = [
        crop_id(scan, k)
        for scan, k in zip(rows["scan"], np.tile(np.arange(crops.per_image), len(scans)))
    ]
    return rows


def _write_cache(
    out_dir: Path,
    index: pd.DataFrame,
    jobs: Iterable[Callable[[], list[PreparedSample]]],
    *,
    size: int,
    workers: int,
) -> pd.DataFrame:
    n = len(index)
    out_dir.mkdir(parents=True, exist_ok=True)
    heights, widths = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    image_paths, mask_paths = [""] * n, [""] * n
    placements: list[CropPlacement | None] = [None] * n
    done, start = 0, time.perf_counter()
    with (
        atomic_path(out_dir / "images.npy") as images_tmp,
        atomic_path(out_dir / "masks.npy") as masks_tmp,
    ):
        # open_memmap writes straight to disk: the dataset never has to fit in RAM.
        images = np.lib.format.open_memmap(
            images_tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3)
        )
        masks = np.lib.format.open_memmap(
            masks_tmp, mode="w+", dtype=np.uint8, shape=(n, size, size)
        )
        # Threads, not processes: libvips and PIL decode and resize with the GIL released, and a
        # forked copy of a process whose libvips thread pool runs can deadlock (spawned ones would
        # re-run a Snakemake script's top level).
        pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
        try:
            results = pool.map(_run, jobs) if pool else map(_run, jobs)
            for prepared in results:
                for sample in prepared:
                    i = sample.position
                    images[i], masks[i], heights[i], widths[i] = (
                        sample.image,
                        sample.mask,
                        sample.height,
                        sample.width,
                    )
                    image_paths[i], mask_paths[i] = sample.image_path, sample.mask_path
                    placements[i] = sample.crop
                    done += 1
                    _log_progress(done, n, start)
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
        if done != n:
            raise DatasetError(
                f"prepared {done} samples but the dataset lists {n}: the source changed while reading"
            )
        images.flush()
        masks.flush()
        del images, masks
    # The index last: its presence means the arrays it describes are complete.
    return _write_index(out_dir, index, (heights, widths, image_paths, mask_paths), placements)


def _log_progress(done: int, n: int, start: float) -> None:
    """Every tenth of the samples: how many, how fast, how long still."""
    if done % max(1, n // 10) == 0 or done == n:
        elapsed = time.perf_counter() - start
        log.info(
            "prepared %d/%d samples, %.1f samples/s, ETA %.0f s",
            done,
            n,
            done / elapsed,
            (n - done) * elapsed / done,
        )


def _write_index(
    out_dir: Path,
    index: pd.DataFrame,
    measured: tuple[np.ndarray, np.ndarray, list[str], list[str]],
    placements: list[CropPlacement | None],
) -> pd.DataFrame:
    """``index.csv``: the dataset's rows with each one's native size, working copies and (crops
    view) where it was cut."""
    index = index.copy()
    index["height"], index["width"], index["image_path"], index["mask_path"] = measured
    columns = list(INDEX_COLUMNS)
    if "scan" in index.columns:  # crops view: where each row was cut
        fields = [
            (p.scale, p.scaled_width, p.scaled_height, p.x, p.y)
            for p in placements
            if p is not None
        ]
        if len(fields) != len(index):
            raise DatasetError(
                "a crops-view cache row was prepared without its crop position: rerun"
            )
        for column, values in zip(CROP_COLUMNS[1:], zip(*fields)):
            index[column] = values
        columns += CROP_COLUMNS
    with atomic_path(out_dir / "index.csv") as index_tmp:
        index[columns].to_csv(index_tmp, index=False)
    return index[columns]


def build_cache(
    images_dir: str | os.PathLike[str],
    masks_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    size: int,
    metadata: str | os.PathLike[str] | None = None,
    workers: int = 1,
    working_max_side: int = DEFAULT_WORKING_MAX_SIDE,
    crops: CropView | None = None,
    exif_orientation: str = "auto",
) -> pd.DataFrame:
    """Decodes, checks and resizes (or crops, with ``crops``) a folder dataset once into
    ``out_dir`` (see module docstring; ``exif_orientation``: :func:`decode.resolve_orientation`)."""
    samples = discover(images_dir, masks_dir)
    out_dir = Path(out_dir)
    work_dir = _working_dir(out_dir)
    index = _crop_rows(read_metadata(metadata, [s.id for s in samples]), crops)
    log.info(
        "preparing %d samples from %s at %d px (%s) with %d worker(s)",
        len(samples),
        images_dir,
        size,
        _describe(crops),
        workers,
    )
    _checked_setting(exif_orientation)
    jobs = [
        _FileJob(i, sample, size, work_dir, working_max_side, crops, exif_orientation)
        for i, sample in enumerate(samples)
    ]
    return _write_cache(out_dir, index, jobs, size=size, workers=workers)


def _checked_setting(exif_orientation: str) -> None:
    if exif_orientation not in decode.EXIF_SETTINGS:
        raise ValueError(
            f"prepare.exif_orientation must be one of {decode.EXIF_SETTINGS}, got {exif_orientation!r}"
        )


def _describe(crops: CropView | None) -> str:
    if crops is None:
        return "whole scans resized"
    return f"{crops.per_image} crops per scan at {crops.scale:g} of native resolution, seed {crops.seed}"


def build_cache_from_parquet(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    size: int,
    workers: int = 1,
    working_max_side: int = DEFAULT_WORKING_MAX_SIDE,
    crops: CropView | None = None,
    exif_orientation: str = "auto",
) -> pd.DataFrame:
    """The same cache from ARTeFACT's parquet shards, one row group per job (see module docstring)."""
    _checked_setting(exif_orientation)
    shards = find_shards(path)
    rows = parquet.read_metadata(shards).sort_values("id", kind="stable").reset_index(drop=True)
    rows["position"] = np.arange(len(rows))
    out_dir = Path(out_dir)
    work_dir = _working_dir(out_dir)
    log.info(
        "preparing %d samples from %d parquet shard(s) at %d px (%s) with %d worker(s)",
        len(rows),
        len(shards),
        size,
        _describe(crops),
        workers,
    )
    jobs = [
        _RowGroupJob(
            parquet.RowGroup(Path(shard), int(number)),
            dict(zip(group["id"], group["position"])),
            size,
            work_dir,
            working_max_side,
            crops,
            exif_orientation,
        )
        for (shard, number), group in rows.groupby(["shard", "row_group"], sort=True)
    ]
    index = _crop_rows(_complete_metadata(rows.drop(columns=["position"])), crops)
    return _write_cache(out_dir, index, jobs, size=size, workers=workers)


def _working_dir(out_dir: Path) -> Path:
    work_dir = out_dir / "working"
    for sub in ("images", "masks"):
        (work_dir / sub).mkdir(parents=True, exist_ok=True)
    return work_dir


@dataclass(frozen=True)
class PreparedCache:
    images: np.ndarray  # N×S×S×3 uint8 (memory-mapped)
    masks: np.ndarray  # N×S×S uint8
    index: pd.DataFrame

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    @property
    def view(self) -> str:
        """``crops`` when the rows are crops of scans (the index has a ``scan`` column), else ``resize``."""
        return "crops" if "scan" in self.index.columns else "resize"

    @property
    def input_scale(self) -> float:
        """The scale of the native scans the crops were cut at (``crop_scale``); 1.0 in the resize
        view, which has no single scale (every scan is squeezed to ``size``², see
        :mod:`heritage_damage_seg.model.scan_view`)."""
        return float(self.index["crop_scale"].iloc[0]) if self.view == "crops" else 1.0

    def scans(self) -> pd.Series:
        """The scan each row shows: itself in the resize view, the scan it was cut from in the crops view."""
        return self.index["scan"] if self.view == "crops" else self.index["id"]

    def positions(self, ids: Sequence[str]) -> np.ndarray:
        lookup = {sample_id: i for i, sample_id in enumerate(self.index["id"])}
        missing = [i for i in ids if i not in lookup]
        if missing:
            raise DatasetError(
                f"ids {missing[:5]} are in the split but not in the cache: rebuild the split"
            )
        return np.array([lookup[i] for i in ids], dtype=np.int64)


# Columns of index.csv read as text whatever they look like (an id "0012" or a group "1" stay so).
INDEX_TEXT_COLUMNS = (
    "id",
    "group",
    "scan",
    "material",
    "content",
    "type",
    "image_path",
    "mask_path",
)


def read_index(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The cache's ``index.csv``: ids, groups, metadata and paths as text, sizes as numbers."""
    return pd.read_csv(
        path, dtype={column: str for column in INDEX_TEXT_COLUMNS}, keep_default_na=False
    )


def load_cache(cache_dir: str | os.PathLike[str]) -> PreparedCache:
    cache_dir = Path(cache_dir)
    images = np.load(cache_dir / "images.npy", mmap_mode="r")
    masks = np.load(cache_dir / "masks.npy", mmap_mode="r")
    index = read_index(cache_dir / "index.csv")
    if not (len(images) == len(masks) == len(index)):
        raise DatasetError(
            f"{cache_dir}: images, masks and index disagree in length: delete the folder and rerun"
        )
    return PreparedCache(images, masks, index)
