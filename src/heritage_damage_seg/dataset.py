"""Reading a dataset (image / index-mask folders or ARTeFACT's parquet shards) into the prepared
cache the training reads.

A folder dataset is a folder of RGB images and a folder of single-channel index masks with the
same file stem, plus an optional metadata CSV (id, group, material, content, type); a parquet
dataset is ARTeFACT as published (see :mod:`heritage_damage_seg.parquet`). Both give the same
cache: every image and mask resized once to the training resolution as uint8 arrays
(``images.npy``: N×S×S×3, ``masks.npy``: N×S×S, in id order) and an ``index.csv``; every later
stage reads only the cache, memory-mapped, so nothing is decoded twice. Scans of any size are
decoded with bounded memory (:mod:`heritage_damage_seg.decode`). For native-resolution work
(sliding-window evaluation) the index points at each sample's *working copy*: the original file,
or, for scans whose longest side exceeds ``working_max_side`` and for every parquet row, a copy
in ``working/`` (downscaled to that side where larger).
"""

from __future__ import annotations

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

from heritage_damage_seg import decode, parquet
from heritage_damage_seg.decode import VALID_MASK_VALUES, DatasetError  # noqa: F401 (re-exported)
from heritage_damage_seg.io import atomic_path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
AUGMENTED_COPY = re.compile(r"_aug\d+$")
INDEX_COLUMNS = ("id", "group", "material", "content", "type", "height", "width", "image_path", "mask_path")
DEFAULT_WORKING_MAX_SIDE = 8192


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


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """An index mask as HxW uint8 with values in 0–15 or 255; anything else is an error."""
    return decode.full_mask(path, str(path))


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


@dataclass(frozen=True)
class PreparedSample:
    position: int  # row in the cache
    image: np.ndarray  # S×S×3
    mask: np.ndarray  # S×S
    height: int  # of the original scan
    width: int
    image_path: str  # the working copy (see module docstring)
    mask_path: str


def prepare_pair(
    position: int,
    image: decode.Source,
    mask: decode.Source,
    *,
    size: int,
    name: str,
    working: tuple[Path, Path] | None,
    working_max_side: int,
) -> PreparedSample:
    """One sample checked and resized to ``size``×``size`` (image: area-averaged; mask: nearest).

    ``working``: where to write a working copy (paths without suffix), always for parquet rows; for
    files, None and a copy is written to ``work_dir`` only when the scan exceeds ``working_max_side``.
    """
    small_mask, mask_head = decode.scaled_mask(mask, size, size, f"{name} mask")
    small_image, image_head = decode.scaled_image(image, size, size, f"{name} image")
    if (image_head.width, image_head.height) != (mask_head.width, mask_head.height):
        raise DatasetError(
            f"{name}: the image is {image_head.width}×{image_head.height} but its mask is "
            f"{mask_head.width}×{mask_head.height}: image and mask must have the same size"
        )
    if working is not None:
        image_path, mask_path = decode.write_working_copy(image, mask, *working, working_max_side, name)
    else:
        image_path, mask_path = Path(os.fspath(image)), Path(os.fspath(mask))  # type: ignore[arg-type]
    return PreparedSample(
        position, small_image, small_mask, image_head.height, image_head.width, str(image_path), str(mask_path)
    )


def _working_paths(work_dir: Path, sample_id: str) -> tuple[Path, Path]:
    return work_dir / "images" / sample_id, work_dir / "masks" / sample_id


@dataclass(frozen=True)
class _FileJob:
    position: int
    sample: Sample
    size: int
    work_dir: Path
    working_max_side: int

    def __call__(self) -> list[PreparedSample]:
        head = decode.header(self.sample.image, str(self.sample.image))
        oversized = max(head.width, head.height) > self.working_max_side
        working = _working_paths(self.work_dir, self.sample.id) if oversized else None
        name = f"{self.sample.image} / {self.sample.mask}"
        return [prepare_pair(self.position, self.sample.image, self.sample.mask, size=self.size, name=name,
                             working=working, working_max_side=self.working_max_side)]


@dataclass(frozen=True)
class _RowGroupJob:
    group: parquet.RowGroup
    positions: dict[str, int]  # id → cache row, for the ids of this row group
    size: int
    work_dir: Path
    working_max_side: int

    def __call__(self) -> list[PreparedSample]:
        return [
            prepare_pair(self.positions[sample_id], image, mask, size=self.size, name=where,
                         working=_working_paths(self.work_dir, sample_id), working_max_side=self.working_max_side)
            for sample_id, image, mask, where in parquet.row_group_samples(self.group)
        ]


def _run(job: Callable[[], list[PreparedSample]]) -> list[PreparedSample]:
    return job()


def read_metadata(path: str | os.PathLike[str] | None, ids: Sequence[str]) -> pd.DataFrame:
    """id/group/material/content/type for every sample; group defaults to the source artwork id."""
    frame = pd.DataFrame({"id": list(ids)})
    if path:
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"metadata file {path} does not exist: fix dataset.metadata or set it to null")
        meta = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "id" not in meta.columns:
            raise DatasetError(f"{path}: metadata needs an 'id' column (found {list(meta.columns)})")
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


def _write_cache(
    out_dir: Path, index: pd.DataFrame, jobs: Iterable[Callable[[], list[PreparedSample]]], *, size: int, workers: int
) -> pd.DataFrame:
    n = len(index)
    out_dir.mkdir(parents=True, exist_ok=True)
    heights, widths = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    image_paths, mask_paths = [""] * n, [""] * n
    done, start = 0, time.perf_counter()
    with atomic_path(out_dir / "images.npy") as images_tmp, atomic_path(out_dir / "masks.npy") as masks_tmp:
        # open_memmap writes straight to disk: the dataset never has to fit in RAM.
        images = np.lib.format.open_memmap(images_tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        masks = np.lib.format.open_memmap(masks_tmp, mode="w+", dtype=np.uint8, shape=(n, size, size))
        # Threads, not processes: libvips and PIL decode and resize with the GIL released, and a
        # forked copy of a process whose libvips thread pool runs can deadlock (spawned ones would
        # re-run a Snakemake script's top level).
        pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
        try:
            results = pool.map(_run, jobs) if pool else map(_run, jobs)
            for prepared in results:
                for sample in prepared:
                    i = sample.position
                    images[i], masks[i], heights[i], widths[i] = sample.image, sample.mask, sample.height, sample.width
                    image_paths[i], mask_paths[i] = sample.image_path, sample.mask_path
                    done += 1
                    if done % max(1, n // 10) == 0 or done == n:
                        elapsed = time.perf_counter() - start
                        log.info("prepared %d/%d samples, %.1f samples/s, ETA %.0f s", done, n, done / elapsed,
                                 (n - done) * elapsed / done)
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
        if done != n:
            raise DatasetError(f"prepared {done} samples but the dataset lists {n}: the source changed while reading")
        images.flush()
        masks.flush()
        del images, masks
    # The index last: its presence means the arrays it describes are complete.
    index = index.copy()
    index["height"], index["width"] = heights, widths
    index["image_path"], index["mask_path"] = image_paths, mask_paths
    with atomic_path(out_dir / "index.csv") as index_tmp:
        index[list(INDEX_COLUMNS)].to_csv(index_tmp, index=False)
    return index[list(INDEX_COLUMNS)]


def build_cache(
    images_dir: str | os.PathLike[str],
    masks_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    size: int,
    metadata: str | os.PathLike[str] | None = None,
    workers: int = 1,
    working_max_side: int = DEFAULT_WORKING_MAX_SIDE,
) -> pd.DataFrame:
    """Decodes, checks and resizes a folder dataset once into ``out_dir`` (see module docstring)."""
    samples = discover(images_dir, masks_dir)
    out_dir = Path(out_dir)
    work_dir = _working_dir(out_dir)
    index = read_metadata(metadata, [s.id for s in samples])
    log.info("preparing %d samples from %s at %d px with %d worker(s)", len(samples), images_dir, size, workers)
    jobs = [_FileJob(i, sample, size, work_dir, working_max_side) for i, sample in enumerate(samples)]
    return _write_cache(out_dir, index, jobs, size=size, workers=workers)


def build_cache_from_parquet(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    size: int,
    workers: int = 1,
    working_max_side: int = DEFAULT_WORKING_MAX_SIDE,
) -> pd.DataFrame:
    """The same cache from ARTeFACT's parquet shards, one row group per job (see module docstring)."""
    shards = parquet.find_shards(path)
    rows = parquet.read_metadata(shards).sort_values("id", kind="stable").reset_index(drop=True)
    rows["position"] = np.arange(len(rows))
    out_dir = Path(out_dir)
    work_dir = _working_dir(out_dir)
    log.info("preparing %d samples from %d parquet shard(s) at %d px with %d worker(s)", len(rows), len(shards),
             size, workers)
    jobs = [
        _RowGroupJob(parquet.RowGroup(Path(shard), int(number)), dict(zip(group["id"], group["position"])), size,
                     work_dir, working_max_side)
        for (shard, number), group in rows.groupby(["shard", "row_group"], sort=True)
    ]
    return _write_cache(out_dir, _complete_metadata(rows.drop(columns=["position"])), jobs, size=size, workers=workers)


def _working_dir(out_dir: Path) -> Path:
    work_dir = out_dir / "working"
    for sub in ("images", "masks"):
        (work_dir / sub).mkdir(parents=True, exist_ok=True)
    return work_dir


def dataset_format(path: str | os.PathLike[str], images_dir: str, chosen: str = "auto") -> str:
    """``folder`` or ``parquet``; ``auto``: parquet when ``path`` is a .parquet file, or a folder
    without ``images_dir`` that holds .parquet files (as the dataset hub downloads them)."""
    if chosen != "auto":
        return chosen
    path = Path(path)
    if path.is_file() and path.suffix == ".parquet":
        return "parquet"
    if path.is_dir() and not (path / images_dir).is_dir() and next(path.rglob("*.parquet"), None) is not None:
        return "parquet"
    return "folder"


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
