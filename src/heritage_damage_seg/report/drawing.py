"""What every figure shares: its fixed size, the Agg backend and the atomic PNG writer, the
class colours, overlays and checkerboard for Background, legends and number formats.

Every figure is written atomically at a fixed size (``figure_size`` × dpi; no tight bounding box,
so a figure's pixel size is known in advance)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from heritage_damage_seg.classes import (
    CLASS_NAMES,
    IGNORE_INDEX,
    NUM_CLASSES,
    PALETTE_HEX,
    colour_lut,
)
from heritage_damage_seg.io import atomic_path

PathLike = str | os.PathLike[str]

# Background (255) is drawn as a light checkerboard: not a class colour, plainly "not artwork".
BACKGROUND_LIGHT = np.array([225, 225, 225], dtype=np.uint8)
BACKGROUND_DARK = np.array([170, 170, 170], dtype=np.uint8)
# Colour-blind-safe (Okabe–Ito) colours for outcomes.
CORRECT = "#009E73"
WRONG = "#D55E00"
TP_COLOUR, FP_COLOUR, FN_COLOUR = "#009E73", "#E69F00", "#CC79A7"
LEVELS = (
    (0.5, "#009E73", "IoU ≥ 0.5"),
    (0.25, "#E69F00", "0.25 ≤ IoU < 0.5"),
    (0.0, "#CC3311", "IoU < 0.25"),
)

CELL_INCHES = 2.2  # one image panel in the sample figures
WIDE = (12.0, 7.0)


def figure_size(kind: str, rows: int = 1, columns: int = 1) -> tuple[float, float]:
    """Width and height in inches of each kind of figure (rows: samples, columns: models)."""
    if kind == "confusion_matrix":
        return (12.0, 10.5)
    if kind == "correction_curve":
        return (11.0, 4.5)
    if kind in ("per_class_iou", "class_distribution", "comparison_ci", "accuracy_vs_speed"):
        return WIDE
    if kind == "training_curves":
        return (15.0, 4.5)
    if kind == "prediction_grid":
        return (4 * CELL_INCHES + 0.6, rows * CELL_INCHES + 2.2)
    if kind in ("error_maps", "class_focus"):
        return (3 * CELL_INCHES + 0.6, rows * CELL_INCHES + 1.3)
    if kind == "iou_heatmap":
        return (13.0, 1.8 + 0.55 * max(columns, 1))
    raise ValueError(f"unknown figure kind {kind!r}")


def new_figure(kind: str, rows: int = 1, columns: int = 1) -> Figure:
    return plt.figure(figsize=figure_size(kind, rows, columns), layout="constrained")


def save_png(fig: Figure, path: PathLike, dpi: int) -> None:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Rendering helpers


def checker(rgb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``rgb`` with the ``background`` pixels drawn as a light grey checkerboard (in place)."""
    if background.any():
        size = max(2, background.shape[0] // 16)
        yy, xx = np.indices(background.shape[:2])
        dark = ((yy // size + xx // size) % 2).astype(bool)
        rgb[background & dark] = BACKGROUND_DARK
        rgb[background & ~dark] = BACKGROUND_LIGHT
    return rgb


def colourise(mask: np.ndarray) -> np.ndarray:
    """An index mask as RGB in the ARTeFACT palette, Background (255) as a grey checkerboard."""
    return checker(colour_lut()[mask], mask == IGNORE_INDEX)


def overlay(
    image: np.ndarray, prediction: np.ndarray, truth: np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """The prediction blended onto the image where the artwork is (truth ≠ 255); Background left as is."""
    blended = image.astype(np.float32)
    colours = colour_lut()[prediction].astype(np.float32)
    scored = (truth != IGNORE_INDEX)[..., None]
    blended = np.where(scored, (1 - alpha) * blended + alpha * colours, blended)
    return blended.clip(0, 255).astype(np.uint8)


def hex_rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float32)


def paint(
    image: np.ndarray, layers: Sequence[tuple[np.ndarray, str]], alpha: float = 0.75
) -> np.ndarray:
    """A faded greyscale copy of ``image`` with each boolean layer painted in its colour."""
    grey = image.astype(np.float32).mean(axis=2, keepdims=True).repeat(3, axis=2)
    out = 0.35 * grey + 0.65 * 255.0 * 0.55
    for where, colour in layers:
        out = np.where(where[..., None], (1 - alpha) * out + alpha * hex_rgb(colour), out)
    return out.clip(0, 255).astype(np.uint8)


def show(ax: Any, picture: np.ndarray, title: str | None = None) -> None:
    ax.imshow(picture, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def palette_legend() -> list[Patch]:
    handles = [
        Patch(facecolor=PALETTE_HEX[c], edgecolor="#555555", label=f"{c} {CLASS_NAMES[c]}")
        for c in range(NUM_CLASSES)
    ]
    handles.append(background_patch())
    return handles


def background_patch() -> Patch:
    return Patch(
        facecolor="#E1E1E1", edgecolor="#888888", hatch="++", label="Background (255, not scored)"
    )


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
