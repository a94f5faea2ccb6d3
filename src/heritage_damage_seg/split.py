"""Seeded train/validation split over artworks, never over files.

Every view of one artwork (the original scan and its offline-augmented ``_augN`` copies) shares
a group, and a group lies wholly on one side: the seed's split permuted files, so copies of a
validation artwork were trained on and its validation figures leaked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class SplitError(ValueError):
    pass


def grouped_split(
    ids: Sequence[str], groups: Sequence[str], *, val_fraction: float, seed: int
) -> dict[str, Any]:
    """Puts ``round(val_fraction × number of groups)`` randomly chosen groups in validation.

    Deterministic for a given seed and set of ids, whatever their order on disk.
    """
    if len(ids) != len(groups):
        raise SplitError("ids and groups differ in length")
    if not 0.0 < val_fraction < 1.0:
        raise SplitError(f"split.val_fraction must be strictly between 0 and 1, got {val_fraction}")
    unique_groups = sorted(set(groups))
    if len(unique_groups) < 2:
        raise SplitError(
            f"the dataset has {len(unique_groups)} artwork group(s): a train/validation split needs at "
            "least two; add images or check the metadata's group column"
        )
    rng = np.random.default_rng(seed)
    shuffled = [unique_groups[i] for i in rng.permutation(len(unique_groups))]
    n_val = min(max(1, round(val_fraction * len(unique_groups))), len(unique_groups) - 1)
    val_groups = set(shuffled[:n_val])
    val = sorted(i for i, g in zip(ids, groups) if g in val_groups)
    train = sorted(i for i, g in zip(ids, groups) if g not in val_groups)
    return {
        "seed": seed,
        "val_fraction": val_fraction,
        "grouped_by": "group",
        "n_train": len(train),
        "n_val": len(val),
        "train_groups": sorted(set(unique_groups) - val_groups),
        "val_groups": sorted(val_groups),
        "train": train,
        "val": val,
    }
