"""How much of a scan each class covers: pixels, shares of the scored surface and, where the scan's
resolution is known (:mod:`heritage_damage_seg.inference.resolution`), cm² per class; the row of
``damage_areas.csv`` for every predicted scan (and the figures the overlay's legend quotes)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from heritage_damage_seg.classes import DAMAGE_CLASSES, NUM_CLASSES, slug
from heritage_damage_seg.inference.products import PRODUCT_COLUMNS
from heritage_damage_seg.inference.resolution import Resolution
from heritage_damage_seg.io import atomic_path

# Physical areas: empty cells where the scan's resolution is unknown (resolution_source says
# why), never a guess.
PHYSICAL_COLUMNS = ["dpi_x", "dpi_y", "resolution_source", "scored_cm2", "damaged_cm2"] + [
    f"{slug(c)}_cm2" for c in range(NUM_CLASSES)
]
AREA_COLUMNS = (
    ["image", "status", "width", "height", "scored_pixels", "damaged_pixels", "damaged_pct"]
    + [f"{slug(c)}_px" for c in range(NUM_CLASSES)]
    + [f"{slug(c)}_pct" for c in range(NUM_CLASSES)]
    + PHYSICAL_COLUMNS
    + PRODUCT_COLUMNS
    + ["seconds"]
)
MM2_PER_CM2 = 100.0


def class_counts(mask: np.ndarray, rows_per_chunk: int = 256) -> np.ndarray:
    """Pixels per value 0–255 of a uint8 mask; in chunks of rows, since ``bincount`` widens its
    input to int64 (8 bytes a pixel: 2 GB for a 244 MP scan at once)."""
    counts = np.zeros(256, dtype=np.int64)
    for top in range(0, mask.shape[0], rows_per_chunk):
        counts += np.bincount(mask[top : top + rows_per_chunk].reshape(-1), minlength=256)
    return counts


def damage_areas(mask: np.ndarray, resolution: Resolution | None = None) -> dict[str, Any]:
    """Pixels and % per class over the scored pixels (everything but 255); with a known
    ``resolution``, also cm² (scored surface, damage, each class), else those are None."""
    counts = class_counts(mask)
    scored = int(counts[:NUM_CLASSES].sum())
    damaged = int(counts[list(DAMAGE_CLASSES)].sum())
    row: dict[str, Any] = {
        "scored_pixels": scored,
        "damaged_pixels": damaged,
        "damaged_pct": 100.0 * damaged / scored if scored else 0.0,
    }
    for c in range(NUM_CLASSES):
        row[f"{slug(c)}_px"] = int(counts[c])
    for c in range(NUM_CLASSES):
        row[f"{slug(c)}_pct"] = 100.0 * int(counts[c]) / scored if scored else 0.0
    return row | physical_areas(row, resolution or Resolution(None, None, "unknown: not given"))


def physical_areas(row: dict[str, Any], resolution: Resolution) -> dict[str, Any]:
    """The cm² columns of an areas row (:data:`PHYSICAL_COLUMNS`) from its pixel counts."""
    mm2 = resolution.mm2_per_pixel

    def cm2(pixels: int) -> float | None:
        return None if mm2 is None else pixels * mm2 / MM2_PER_CM2

    return {
        **resolution.record(),
        "scored_cm2": cm2(row["scored_pixels"]),
        "damaged_cm2": cm2(row["damaged_pixels"]),
        **{f"{slug(c)}_cm2": cm2(row[f"{slug(c)}_px"]) for c in range(NUM_CLASSES)},
    }


def write_areas(path: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``damage_areas.csv``; returns its rows as written (floats with 4 decimals)."""
    csv_rows = [
        {k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows
    ]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=AREA_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_rows)
    return csv_rows
