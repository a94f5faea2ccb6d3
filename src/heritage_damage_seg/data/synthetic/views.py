"""Extra *views* of a scan, like ARTeFACT's offline-augmented copies: a dihedral transform, maybe a
crop and a colour shift; the mask is moved exactly (no interpolation)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from heritage_damage_seg.data.synthetic.numeric import F32, MIN_SIDE


@dataclass(frozen=True)
class ViewTransform:
    """How an extra view is derived from its source (applied in this order).

    Attributes:
        rot90: number of counter-clockwise quarter turns (``np.rot90``), 0..3.
        flip: mirror left-right after the rotation.
        crop: ``(top, left, height, width)`` in the rotated/flipped frame.
        gain: per-channel colour gain (image only).
        offset: brightness offset in grey levels (image only).
    """

    rot90: int
    flip: bool
    crop: tuple[int, int, int, int]
    gain: tuple[float, float, float]
    offset: float


def random_view(
    rng: np.random.Generator, height: int, width: int, min_side: int = MIN_SIDE
) -> ViewTransform:
    """Draw a view of a ``height x width`` scan: a dihedral transform, maybe a crop and a colour shift.

    Crops keep at least 60% of each side and never go below ``min_side``; the view is never the
    identity.
    """
    quarter_turns = int(rng.integers(4))
    flip = bool(rng.random() < 0.5)
    if quarter_turns == 0 and not flip:
        flip = True
    h, w = (width, height) if quarter_turns % 2 else (height, width)
    crop_h, crop_w = h, w
    if rng.random() < 0.6:
        shortest_h = max(math.ceil(0.6 * h), min(min_side, h))
        shortest_w = max(math.ceil(0.6 * w), min(min_side, w))
        crop_h, crop_w = int(rng.integers(shortest_h, h + 1)), int(rng.integers(shortest_w, w + 1))
    top, left = int(rng.integers(0, h - crop_h + 1)), int(rng.integers(0, w - crop_w + 1))
    if rng.random() < 0.7:
        gain = tuple(float(g) for g in rng.uniform(0.94, 1.06, 3))
        offset = float(rng.uniform(-8, 8))
    else:
        gain, offset = (1.0, 1.0, 1.0), 0.0
    crop = (top, left, crop_h, crop_w)
    return ViewTransform(quarter_turns, flip, crop, gain, offset)  # type: ignore[arg-type]


def apply_view(
    image: np.ndarray, mask: np.ndarray, view: ViewTransform
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``view`` to an image and its mask; the mask is moved exactly (no interpolation)."""

    def move(array: np.ndarray) -> np.ndarray:
        array = np.rot90(array, view.rot90, axes=(0, 1))
        if view.flip:
            array = array[:, ::-1]
        top, left, crop_h, crop_w = view.crop
        return np.ascontiguousarray(array[top : top + crop_h, left : left + crop_w])

    moved_image, moved_mask = move(image), move(mask)
    if view.gain != (1.0, 1.0, 1.0) or view.offset != 0.0:
        shifted = moved_image.astype(F32) * np.array(view.gain, F32) + view.offset
        moved_image = np.clip(np.rint(shifted), 0, 255).astype(np.uint8)
    return moved_image, moved_mask
