"""How sure the model is, per pixel: the probability of the class it chose, at native resolution.

The confidence map of a scan is a uint8 image of the scan's size, ``round(255 · p)`` where ``p``
is the model's softmax probability of the class in the mask at that pixel, computed in the view
the model was trained in (:class:`~heritage_damage_seg.scan_view.ModelView`) and in bounded
memory like the mask itself:

* ``crops`` view: the sliding window's blended logits are turned into probabilities strip by
  strip (one extra strip of floats), and the map is brought to the scan's size by nearest
  neighbour like the mask, so every pixel carries the probability of exactly its class.
* ``resize`` view: the model's probabilities at its input size (C × S × S, small) are resized to
  the scan's size bilinearly, as the logits are for the mask (same sampling positions), but only
  for the one class each pixel was given, in blocks of rows: never C full-size float maps. (The
  bilinear mean of the four neighbours' probabilities of that class; it equals the softmax of the
  resized logits at the model's pixel centres and is within the neighbours' range in between.)

:func:`confidence_summary` gives the per-class figures of ``damage_areas.csv``: the mean
confidence of each class's pixels and the share of them below a threshold.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pyvips
import torch
from torch import nn

from heritage_damage_seg.classes import NUM_CLASSES, slug
from heritage_damage_seg.data import decode
from heritage_damage_seg.io import atomic_path
from heritage_damage_seg.model.scan_view import (
    ModelView,
    resized_nearest,
    source_positions,
    upsampled_argmax,
)
from heritage_damage_seg.model.sliding import SlidingSettings, forward_tiles, iter_strips

CONFIDENCE_COLUMNS: list[str] = (
    ["mean_confidence", "low_confidence_pct"]
    + [f"{slug(c)}_mean_confidence" for c in range(NUM_CLASSES)]
    + [f"{slug(c)}_low_confidence_pct" for c in range(NUM_CLASSES)]
)


def to_uint8(probability: torch.Tensor) -> np.ndarray:
    """Probabilities in [0, 1] → ``round(255 · p)`` as uint8 (on the host)."""
    return (probability.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


def labels_and_confidence(
    model: nn.Module, image: np.ndarray, *, tile: int, **kwargs
) -> tuple[np.ndarray, np.ndarray]:
    """Class ids and the confidence in them (both H×W uint8) by sliding window over ``image``, a
    strip at a time (``kwargs``: those of :func:`~heritage_damage_seg.sliding.iter_strips`)."""
    height, width = image.shape[:2]
    labels = np.empty((height, width), dtype=np.uint8)
    confidence = np.empty((height, width), dtype=np.uint8)
    for first_row, strip in iter_strips(model, image, tile=tile, **kwargs):
        rows = slice(first_row, first_row + strip.shape[1])
        chosen = strip.argmax(0)
        labels[rows] = chosen.to(torch.uint8).cpu().numpy()
        confidence[rows] = to_uint8(torch.softmax(strip, 0).gather(0, chosen[None])[0])
    return labels, confidence


def upsampled_confidence(
    probabilities: torch.Tensor, labels: np.ndarray, *, block_pixels: int = 2**20
) -> np.ndarray:
    """For every pixel of ``labels`` (H×W class ids), the probability of its class bilinearly
    resized from ``probabilities`` (C×h×w), as uint8; ``block_pixels`` pixels at a time."""
    classes, in_h, in_w = probabilities.shape
    flat = (
        probabilities.detach().float().permute(1, 2, 0).reshape(-1).cpu().numpy()
    )  # class fastest
    height, width = labels.shape
    rows_first, rows_second, rows_weight = source_positions(height, in_h)
    cols_first, cols_second, cols_weight = source_positions(width, in_w)
    left, right, col_weight = cols_first[None, :], cols_second[None, :], cols_weight[None, :]
    out = np.empty((height, width), dtype=np.uint8)
    step = max(1, block_pixels // width)
    for top in range(0, height, step):
        rows = slice(top, min(height, top + step))
        chosen = np.minimum(labels[rows], classes - 1).astype(np.int64)
        upper, lower = rows_first[rows][:, None] * in_w, rows_second[rows][:, None] * in_w
        corners = [
            np.take(flat, (row + col) * classes + chosen)
            for row in (upper, lower)
            for col in (left, right)
        ]
        upper_value = corners[0] + col_weight * (corners[1] - corners[0])
        lower_value = corners[2] + col_weight * (corners[3] - corners[2])
        upper_value += rows_weight[rows][:, None] * (lower_value - upper_value)
        out[rows] = np.clip(np.rint(upper_value * 255.0), 0, 255).astype(np.uint8)
    return out


def predict_with_confidence(
    view: ModelView,
    model: nn.Module,
    source: decode.Source,
    *,
    name: str,
    settings: SlidingSettings = SlidingSettings(),
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """What :meth:`ModelView.predict` returns (the class map at the source's size) and, beside it,
    the confidence map of the same size (uint8, see the module docstring)."""
    picture, head = view.model_input(source, name=name)
    if view.view == "resize":
        logits = forward_tiles(
            model, torch.from_numpy(picture)[None].to(device), amp_dtype, settings.tta_flip
        )[0]
        mask = upsampled_argmax(logits, head.height, head.width)
        return mask, upsampled_confidence(torch.softmax(logits.float(), 0), mask)
    labels, confidence = labels_and_confidence(
        model,
        picture,
        tile=view.image_size,
        settings=settings,
        device=device,
        amp_dtype=amp_dtype,
        progress=progress,
    )
    return resized_nearest(labels, head.width, head.height), resized_nearest(
        confidence, head.width, head.height
    )


def confidence_summary(
    mask: np.ndarray, confidence: np.ndarray, threshold: float, rows_per_chunk: int = 256
) -> dict[str, float | None]:
    """Mean confidence (0–1) and % of pixels below ``threshold`` over the scored pixels (classes
    0–15) and per class (None for a class with no pixel); in chunks of rows, as
    :func:`~heritage_damage_seg.inference.areas.class_counts`. A pixel is below when ``round(255 · p)``
    is below ``round(255 · threshold)``."""
    cutoff = round(255 * threshold)
    counts = np.zeros(256, dtype=np.int64)
    sums = np.zeros(256, dtype=np.float64)
    low = np.zeros(256, dtype=np.int64)
    for top in range(0, mask.shape[0], rows_per_chunk):
        labels = mask[top : top + rows_per_chunk].reshape(-1)
        values = confidence[top : top + rows_per_chunk].reshape(-1)
        counts += np.bincount(labels, minlength=256)
        sums += np.bincount(labels, weights=values, minlength=256)
        low += np.bincount(labels[values < cutoff], minlength=256)
    scored = slice(0, NUM_CLASSES)
    row: dict[str, float | None] = {
        "mean_confidence": _ratio(sums[scored].sum() / 255.0, counts[scored].sum()),
        "low_confidence_pct": _ratio(100.0 * low[scored].sum(), counts[scored].sum()),
    }
    for c in range(NUM_CLASSES):
        row[f"{slug(c)}_mean_confidence"] = _ratio(sums[c] / 255.0, counts[c])
    for c in range(NUM_CLASSES):
        row[f"{slug(c)}_low_confidence_pct"] = _ratio(100.0 * low[c], counts[c])
    return row


def _ratio(numerator: float, denominator: int) -> float | None:
    return float(numerator) / int(denominator) if denominator else None


def save_grey_png(array: np.ndarray, path: str | os.PathLike[str], *, compression: int = 6) -> None:
    """An H×W uint8 array as a greyscale PNG, written by libvips from the array's own buffer (no
    copy of a full-size scan) and renamed into place when complete."""
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError(f"expected an H×W uint8 array for {path}, got {array.shape} {array.dtype}")
    contiguous = np.ascontiguousarray(array)
    image = pyvips.Image.new_from_memory(
        contiguous.data, contiguous.shape[1], contiguous.shape[0], 1, "uchar"
    )
    with atomic_path(path) as tmp:
        image.pngsave(str(tmp), compression=compression)
