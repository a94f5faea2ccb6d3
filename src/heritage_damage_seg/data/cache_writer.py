"""Writing the prepared cache (see :mod:`heritage_damage_seg.data.cache`): the scans' cache rows
(:mod:`heritage_damage_seg.data.preparation`) written straight into memory-mapped arrays by a
thread pool, then ``index.csv`` last, so its presence means the arrays are complete. The dataset
formats (:mod:`heritage_damage_seg.data.sources`) hand it one job per file or row group."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from heritage_damage_seg.data.cache import INDEX_COLUMNS, METADATA_COLUMNS, load_cache
from heritage_damage_seg.data.geometry import CROP_COLUMNS, CropPlacement, CropView, crop_id
from heritage_damage_seg.data.preparation import PreparedSample
from heritage_damage_seg.data.sources import DatasetError
from heritage_damage_seg.io import atomic_path

log = logging.getLogger(__name__)

AUGMENTED_COPY = re.compile(r"_aug\d+$")
DEFAULT_WORKING_MAX_SIDE = 8192


def source_group(sample_id: str) -> str:
    """The artwork a view belongs to: ``abc_aug3`` (an offline-augmented copy) → ``abc``."""
    return AUGMENTED_COPY.sub("", sample_id)


def _run(job: Callable[[], list[PreparedSample]]) -> list[PreparedSample]:
    return job()


def complete_metadata(frame: pd.DataFrame) -> pd.DataFrame:
    if "group" not in frame.columns:
        frame["group"] = ""
    frame["group"] = frame["group"].fillna("").astype(str)
    no_group = frame["group"] == ""
    frame.loc[no_group, "group"] = frame.loc[no_group, "id"].map(source_group)
    for column in METADATA_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    return frame[list(METADATA_COLUMNS)].fillna("").reset_index(drop=True)


def crop_rows(scans: pd.DataFrame, crops: CropView | None) -> pd.DataFrame:
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


def write_cache(
    out_dir: Path,
    index: pd.DataFrame,
    jobs: Iterable[Callable[[], list[PreparedSample]]],
    *,
    size: int,
    workers: int,
) -> pd.DataFrame:
    n = len(index)
    heights, widths = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    image_paths, mask_paths = [""] * n, [""] * n
    placements: list[CropPlacement | None] = [None] * n
    done, start = 0, time.perf_counter()
    with _cache_arrays(out_dir, n, size) as (images, masks):
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
    # The index last: its presence means the arrays it describes are complete.
    return _write_index(out_dir, index, (heights, widths, image_paths, mask_paths), placements)


@contextmanager
def _cache_arrays(out_dir: Path, n: int, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The cache's ``images.npy`` (n × size × size × 3) and ``masks.npy`` (n × size × size), uint8,
    memory-mapped straight to disk (the dataset never has to fit in RAM): flushed and put in place
    when the block ends, removed when it raises."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (
        atomic_path(out_dir / "images.npy") as images_tmp,
        atomic_path(out_dir / "masks.npy") as masks_tmp,
    ):
        images = np.lib.format.open_memmap(
            images_tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3)
        )
        masks = np.lib.format.open_memmap(
            masks_tmp, mode="w+", dtype=np.uint8, shape=(n, size, size)
        )
        yield images, masks
        images.flush()
        masks.flush()


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


def working_dir(out_dir: Path) -> Path:
    work_dir = out_dir / "working"
    for sub in ("images", "masks"):
        (work_dir / sub).mkdir(parents=True, exist_ok=True)
    return work_dir


def combine_caches(
    parts: Sequence[tuple[str | os.PathLike[str], Sequence[str]]], out_dir: str | os.PathLike[str]
) -> pd.DataFrame:
    """One cache of the rows ``ids`` of each prepared cache of ``parts`` (``(cache folder, ids)``,
    in that order; the rows keep their index.csv entries, working copies included): a fine-tuning
    reads a corrections dataset and replay rows of the training dataset as one cache.

    The caches must agree on the size and the view (the crop scale too, in the crops view): a
    model sees every row the same way. A refusal names the cache folder that differs."""
    out_dir = Path(out_dir)
    caches = [(Path(folder), load_cache(folder), list(ids)) for folder, ids in parts]
    first_dir, first, _ = caches[0]
    for folder, cache, _ in caches[1:]:
        mine = (cache.size, cache.view, cache.input_scale)
        theirs = (first.size, first.view, first.input_scale)
        if mine != theirs:
            raise DatasetError(
                f"{folder / 'index.csv'} was prepared at {cache.size} px ({cache.view} view, scale "
                f"{cache.input_scale:g}), but {first_dir / 'index.csv'} at {first.size} px "
                f"({first.view} view, scale {first.input_scale:g}): prepare both with the trained "
                "model's prepare.image_size, prepare.view and prepare.crop_scale"
            )
        if list(cache.index.columns) != list(first.index.columns):
            raise DatasetError(
                f"{folder / 'index.csv'} has the columns {list(cache.index.columns)}, "
                f"{first_dir / 'index.csv'} {list(first.index.columns)}: rebuild both caches"
            )
    chosen = [(folder, cache, cache.positions(ids)) for folder, cache, ids in caches]
    index = pd.concat([cache.index.iloc[rows] for _, cache, rows in chosen], ignore_index=True)
    duplicated = sorted(set(index.loc[index["id"].duplicated(), "id"]))
    if duplicated:
        raise DatasetError(
            f"ids {duplicated[:5]} are in more than one of {[str(f) for f, _, _ in chosen]}: "
            "give the datasets distinct ids"
        )
    with _cache_arrays(out_dir, len(index), first.size) as (images, masks):
        start = 0
        for _, cache, rows in chosen:
            for row in rows:  # one row at a time: neither cache has to fit in RAM
                images[start], masks[start] = cache.images[row], cache.masks[row]
                start += 1
    with atomic_path(out_dir / "index.csv") as index_tmp:
        index.to_csv(index_tmp, index=False)
    return index
