"""Which scans the sample figures show, and their images, masks and predictions.

Sample choice depends only on the ids of the scored split (test; validation only under
``split.test_fraction: 0``), the masks and a seed, never on a model, so the same images appear in
every encoder's figures."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from heritage_damage_seg.classes import (
    CLASS_NAMES,
    DAMAGE_CLASSES,
    IGNORE_INDEX,
    NUM_CLASSES,
)
from heritage_damage_seg.data.cache import load_cache
from heritage_damage_seg.data.geometry import cut_crop

# ---------------------------------------------------------------------------------------------
# Sample choice


def choose_samples(scored_ids: Sequence[str], n: int, seed: int) -> list[str]:
    """``n`` ids of the scored split (all if fewer), seeded, in sorted order; independent of any model."""
    ids = sorted(str(i) for i in scored_ids)
    if n >= len(ids):
        return ids
    rng = np.random.default_rng(seed)
    return sorted(ids[i] for i in rng.choice(len(ids), size=n, replace=False))


def validation_support(masks: np.ndarray) -> np.ndarray:
    """Ground-truth pixel count per class over a stack of validation masks (255 not counted)."""
    flat = masks.reshape(-1)
    return np.bincount(flat[flat != IGNORE_INDEX], minlength=NUM_CLASSES)[:NUM_CLASSES]


def focus_classes(
    masks: np.ndarray, configured: Sequence[int | str] | None, n: int = 6
) -> list[int]:
    """The classes for the TP/FP/FN views: the configured ones (ids or names), else the ``n`` damage
    classes with most validation pixels (ties and absent classes filled in by id)."""
    if configured:
        chosen = []
        for item in configured:
            if isinstance(item, str) and not item.isdigit():
                lookup = {name.lower(): i for i, name in enumerate(CLASS_NAMES)}
                if item.lower() not in lookup:
                    raise ValueError(
                        f"unknown class {item!r}; expected one of {', '.join(CLASS_NAMES)}"
                    )
                chosen.append(lookup[item.lower()])
            else:
                class_id = int(item)
                if not 0 <= class_id < NUM_CLASSES:
                    raise ValueError(f"class id {class_id} is outside 0–{NUM_CLASSES - 1}")
                chosen.append(class_id)
        return chosen
    support = validation_support(masks)
    ranked = sorted(DAMAGE_CLASSES, key=lambda c: (-int(support[c]), c))
    return ranked[:n]


def class_samples(
    masks: np.ndarray, ids: Sequence[str], class_id: int, n: int, seed: int
) -> list[str]:
    """Up to ``n`` scored (test) ids whose ground truth contains ``class_id`` (seeded); if none does,
    a seeded sample of all ids (the view then shows only false positives)."""
    present = [i for i, mask in zip(ids, masks) if (mask == class_id).any()]
    return choose_samples(present or list(ids), n, seed + class_id)


# ---------------------------------------------------------------------------------------------
# Inputs


def load_samples(
    ids: Sequence[str],
    cache_dir: str | os.PathLike[str],
    predictions_dir: str | os.PathLike[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, ground-truth masks and predicted masks of ``ids`` (cache resolution), in that order.

    The samples are cache rows. Where the evaluation predicted whole scans instead (native mode),
    each row's prediction is brought to the row by nearest neighbour, as the cached mask was:
    resized to the cache size (resize view), or resized to the scale the crops were cut at and cut
    at the crop's position (crops view).
    """
    cache = load_cache(cache_dir)
    index, images, masks, size = cache.index, cache.images, cache.masks, cache.size
    position = {sample_id: i for i, sample_id in enumerate(index["id"])}
    rows = [position[str(sample_id)] for sample_id in ids]
    predictions = (
        np.stack([_row_prediction(index.iloc[row], Path(predictions_dir), size) for row in rows])
        if ids
        else np.zeros((0, *masks.shape[1:]), dtype=np.uint8)
    )
    return np.asarray(images[rows]), np.asarray(masks[rows]), predictions


def _row_prediction(row: pd.Series, predictions_dir: Any, size: int) -> np.ndarray:
    """The predicted mask of one cache row at the cache's ``size`` (see :func:`load_samples`)."""
    own = predictions_dir / f"{row['id']}.png"
    if own.is_file():
        with Image.open(own) as image:
            if image.size == (size, size):
                return np.asarray(image)
            return np.asarray(image.resize((size, size), Image.Resampling.NEAREST))
    scan = predictions_dir / f"{row['scan']}.png" if "scan" in row.index else None
    if scan is not None and scan.is_file():
        with Image.open(scan) as image:
            scaled = (int(row["scaled_width"]), int(row["scaled_height"]))
            whole = np.asarray(
                image if image.size == scaled else image.resize(scaled, Image.Resampling.NEAREST)
            )
        return cut_crop(whole, int(row["crop_x"]), int(row["crop_y"]), size, IGNORE_INDEX)
    raise FileNotFoundError(
        f"no prediction for {row['id']} in {predictions_dir}: rerun the evaluation"
    )
