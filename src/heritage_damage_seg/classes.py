"""The ARTeFACT label set: ids, names and the palette of its ``annotation_rgb`` renderings."""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255
"""Mask value for pixels outside the artwork ("Background"): never trained on, never scored."""

CLASS_NAMES: tuple[str, ...] = (
    "Clean",
    "Material loss",
    "Peel",
    "Dust",
    "Scratch",
    "Hair",
    "Dirt",
    "Fold",
    "Writing",
    "Cracks",
    "Staining",
    "Stamp",
    "Sticker",
    "Puncture",
    "Burn marks",
    "Lightleak",
)
NUM_CLASSES = len(CLASS_NAMES)
CLEAN = 0
DAMAGE_CLASSES: tuple[int, ...] = tuple(range(1, NUM_CLASSES))


def class_id(name: str) -> int:
    """The id of a class named in :data:`CLASS_NAMES`, e.g. ``class_id("Cracks")`` → 9, so code can
    name a class instead of writing its number."""
    if name not in CLASS_NAMES:
        raise ValueError(f"unknown class name {name!r}; the classes are {CLASS_NAMES}")
    return CLASS_NAMES.index(name)


PALETTE_HEX: tuple[str, ...] = (
    "#000000",
    "#1CE6FF",
    "#FF34FF",
    "#FF4A46",
    "#008941",
    "#006FA6",
    "#A30059",
    "#FFA500",
    "#7A4900",
    "#0000A6",
    "#63FFAC",
    "#004D43",
    "#8FB0FF",
    "#997D87",
    "#809693",
    "#F6FF1B",
)
IGNORE_HEX = "#5A0007"


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))


PALETTE_RGB: tuple[tuple[int, int, int], ...] = tuple(_rgb(h) for h in PALETTE_HEX)
IGNORE_RGB = _rgb(IGNORE_HEX)


def colour_lut() -> np.ndarray:
    """A 256×3 uint8 lookup table: class id → palette colour (255 → the Background colour)."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:NUM_CLASSES] = PALETTE_RGB
    lut[IGNORE_INDEX] = IGNORE_RGB
    return lut


def slug(class_id: int) -> str:
    """File-name form of a class name, e.g. 9 → ``09_cracks``."""
    return f"{class_id:02d}_{CLASS_NAMES[class_id].lower().replace(' ', '_')}"
