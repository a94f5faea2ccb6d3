"""Test-time augmentation over the 8 symmetries of the square (the dihedral group D4).

Training augments with all 8 flips/transposes (``training.augmentation.flips``), so the model has
seen every tile in each of these orientations. At test time each batch of tiles is predicted in
all 8, every prediction is turned back to the original orientation, and the 8 logit maps are
averaged: 8 forward passes per batch, i.e. about 8× the model time of a plain prediction (the
stitching and decoding around it are unchanged).

A view is (transpose, flip rows, flip columns) applied in that order; its inverse undoes them in
the reverse order. Tiles are square (the model's input size), so a transpose keeps their shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

ROWS, COLS = 2, 3  # the spatial dimensions of a B×C×H×W batch


class DihedralView(NamedTuple):
    transpose: bool
    flip_rows: bool
    flip_cols: bool

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.transpose:
            x = x.transpose(ROWS, COLS)
        dims = [d for d, flip in ((ROWS, self.flip_rows), (COLS, self.flip_cols)) if flip]
        return x.flip(dims) if dims else x

    def invert(self, y: torch.Tensor) -> torch.Tensor:
        dims = [d for d, flip in ((ROWS, self.flip_rows), (COLS, self.flip_cols)) if flip]
        if dims:
            y = y.flip(dims)
        return y.transpose(ROWS, COLS) if self.transpose else y


DIHEDRAL_VIEWS: tuple[DihedralView, ...] = tuple(
    DihedralView(t, r, c) for t in (False, True) for r in (False, True) for c in (False, True)
)
"""All 8; the first is the identity."""


def dihedral_average(
    model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    """The mean over the 8 views of ``model``'s float32 logits, each brought back to ``x``'s
    orientation. ``x``: B×3×T×T with square tiles. One extra logit batch is held beside the sum."""
    if x.shape[ROWS] != x.shape[COLS]:
        raise ValueError(f"dihedral TTA needs square tiles, got {tuple(x.shape[ROWS:])}")
    total = model(x).float()
    for view in DIHEDRAL_VIEWS[1:]:
        # contiguous: a transposed view would send the convolutions down a slow strided path
        total += view.invert(model(view.apply(x).contiguous()).float())
    return total / len(DIHEDRAL_VIEWS)
