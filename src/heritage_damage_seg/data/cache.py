"""The prepared cache as every later stage reads it: ``images.npy`` (N×S×S×3 uint8),
``masks.npy`` (N×S×S) and ``index.csv``, memory-mapped, so nothing is decoded twice. The writer
(:mod:`heritage_damage_seg.data.cache_writer`) is the only module that makes one; readers (train,
evaluate, plots, the split rules) import this module alone.

``index.csv`` holds one row per cache row: the dataset's metadata (id, group, material, content,
type), the native scan's size, and the *working copy* native-resolution work reads (the original
file, or a copy in ``working/`` where the original cannot serve as it is); a crops-view index adds
where each crop was cut (:data:`heritage_damage_seg.data.geometry.CROP_COLUMNS`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from heritage_damage_seg.data.sources import DatasetError

# What every dataset format says of a sample (empty where it does not say it; group defaults to
# the source artwork id), then what the writer measured.
METADATA_COLUMNS = ("id", "group", "material", "content", "type")
INDEX_COLUMNS = (*METADATA_COLUMNS, "height", "width", "image_path", "mask_path")


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
