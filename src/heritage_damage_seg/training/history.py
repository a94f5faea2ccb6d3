"""``history.csv``: one row per epoch, rewritten whole (atomically) after every epoch."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

from heritage_damage_seg.io import atomic_path

HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "val_mIoU",
    "val_damage_mIoU",
    "lr",
    "train_imgs_per_s",  # the training steps alone
    "epoch_imgs_per_s",  # the epoch's wall time: steps, validation and bookkeeping
    "epoch_seconds",
    "peak_memory_mb",
    "precision",  # bf16 / fp16 / fp32: a run resumed on another GPU type changes it
)
# Measurements of the machine, not of the model: they differ between otherwise identical runs.
TIMING_COLUMNS = ("train_imgs_per_s", "epoch_imgs_per_s", "epoch_seconds", "peak_memory_mb")


def write_history(rows: Sequence[dict[str, float]], path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        # restval: rows of checkpoints written before a column existed
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)
