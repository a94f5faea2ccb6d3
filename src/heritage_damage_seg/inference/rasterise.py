"""Corrected outlines painted into an ARTeFACT class mask at the scan's native size.

A pixel belongs to an outline when its centre lies inside it (GDAL's rule, that of
:func:`rasterio.features.rasterize`), so the pixel-edge outlines ``predict`` writes with tolerance
0 paint back exactly the pixels they came from. COCO RLE is painted as its pixels.

**Overlaps: a fixed class precedence**, not the order of the features. Editors reorder features
when they save (QGIS by its provider, CVAT by its own ids, ``predict`` by region), so "the later
feature wins" would make the mask depend on the tool; a fixed order gives the same mask whatever
the tool and whatever the order. It ranks damage by what a conservator must not miss where two
are drawn over each other: loss of the object's substance first (material loss, puncture, burn
marks, peel), then breaks and deformations of the support (cracks, fold, scratch), then what was
added on it (sticker, stamp, writing), then discolouration (staining, light leak), then loose
surface deposits that can simply be cleaned off (dirt, hair, dust); a polygon of the class Clean
(a reviewer marking an area as reviewed and undamaged) loses to any damage. Simplified outlines
of neighbouring regions overlap by a fraction of a pixel along their border; the precedence
settles those too.

Pixels no outline covers are *unreviewed*: Clean (0) or 255 (not reviewed, never trained on or
scored), as the user says (:data:`UNREVIEWED`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import rasterio.features

from heritage_damage_seg.classes import CLEAN, IGNORE_INDEX, NUM_CLASSES, class_id
from heritage_damage_seg.inference.corrected_outlines import Piece, Rle

PRECEDENCE: tuple[int, ...] = tuple(
    class_id(name)
    for name in (
        "Material loss",
        "Puncture",
        "Burn marks",
        "Peel",
        "Cracks",
        "Fold",
        "Scratch",
        "Sticker",
        "Stamp",
        "Writing",
        "Staining",
        "Lightleak",
        "Dirt",
        "Hair",
        "Dust",
        "Clean",
    )
)
"""Class ids, the one that wins an overlap first."""
assert sorted(PRECEDENCE) == list(range(NUM_CLASSES)), "every class has exactly one rank"

UNREVIEWED = {"clean": CLEAN, "ignore": IGNORE_INDEX}
"""``--unreviewed`` → the value of the pixels no outline covers."""


def rle_pixels(rle: Rle) -> np.ndarray:
    """The H×W boolean mask of COCO run lengths (column-major, a run of 0s first)."""
    values = np.arange(len(rle.counts)) % 2 == 1
    flat = np.repeat(values, np.asarray(rle.counts, dtype=np.int64))
    return flat.reshape(rle.width, rle.height).T


def paint(pieces: Sequence[Piece], height: int, width: int, unreviewed: str) -> np.ndarray:
    """The H×W uint8 class mask of ``pieces``: every class painted in reverse
    :data:`PRECEDENCE`, so the higher-ranked class ends on top where outlines overlap."""
    if unreviewed not in UNREVIEWED:
        raise ValueError(f"unreviewed must be one of {sorted(UNREVIEWED)}, got {unreviewed!r}")
    mask = np.full((height, width), UNREVIEWED[unreviewed], dtype=np.uint8)
    for class_id_ in reversed(PRECEDENCE):
        mine = [p for p in pieces if p.class_id == class_id_]
        geometries = [p.geometry for p in mine if p.geometry is not None]
        if geometries:
            rasterio.features.rasterize(
                geometries, out=mask, default_value=class_id_, dtype="uint8"
            )
        for piece in mine:
            if piece.rle is not None:
                mask[rle_pixels(piece.rle)] = class_id_
    return mask
