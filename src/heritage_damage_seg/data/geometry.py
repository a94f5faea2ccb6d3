"""Where a training crop lies in its scan, decided from the scan's id and size alone (the
``crops`` view, ``prepare.view: crops``): each scan is downscaled by ``crop_scale`` and
``crops_per_image`` S×S crops are cut at seeded random positions, so thin damage keeps a visible
width. The cache writer cuts them, and the plots cut the same crops from a prediction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

# Only in a crops-view index: the scan a row was cut from, the scale and size of the downscaled scan
# it was cut from, and the crop's top-left corner in it (the rest of the crop is padding).
CROP_COLUMNS = ("scan", "crop_scale", "scaled_width", "scaled_height", "crop_x", "crop_y")
# `abc_aug3__crop2`: the `_augN` rule of source_group is anchored at the end, so it never sees a
# crop id (groups are taken from the scan's metadata before the crops are named).
CROP_SEPARATOR = "__crop"


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
class CropPlacement:
    """Where a crops-view row comes from (the :data:`CROP_COLUMNS` of the index)."""

    scan: str
    scale: float
    scaled_width: int
    scaled_height: int
    x: int
    y: int
