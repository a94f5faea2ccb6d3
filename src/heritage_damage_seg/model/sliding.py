"""Native-resolution inference by sliding window, in bounded memory.

The image is covered by tiles of exactly the model's input size (``tile``: the training size;
MaxViT accepts no other), ``overlap`` apart as a fraction of the tile. Along each side the tile
starts are ``0, stride, 2·stride, …`` with the last one moved back to end on the image's edge, so
no tile hangs over the image and none is padded; only a side shorter than one tile is padded (by
reflection) up to the tile. Tiles go through the model in batches; each tile's logits are weighted
(``gaussian``: σ = tile/8 as nnU-Net; ``linear``: a tent falling to near 0 at the tile's edge;
``uniform``: plain averaging) and summed, then divided by the summed weights.

Memory: the image is walked one *tile row* at a time. Only a strip of ``tile`` image rows of
float logits is ever held (``C × tile × W`` float32 plus ``tile × W`` weights); when a tile row is
done, the rows no later tile touches (``stride`` rows) are final, are reduced to class ids and
leave the strip. Beyond the uint8 input image (3 B/px) and the uint8 output mask (1 B/px), the
extra memory is therefore at most ``3 · (C + 1) · 4 · tile · W`` bytes for the strip (the strip,
the copy of its open rows when it moves on, the normalised rows it hands out) plus one batch of
tiles (:func:`strip_bytes`), independent of the image height; holding full-resolution float logits
instead would cost ``(C + 1) · 4 · H · W`` bytes (17 GB for a 250 MP scan at 16 classes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from heritage_damage_seg import device as devices
from heritage_damage_seg.model.dihedral import dihedral_average
from heritage_damage_seg.model.inputs import to_model_input

log = logging.getLogger(__name__)

BLENDS = ("gaussian", "linear", "uniform")


@dataclass(frozen=True)
class SlidingSettings:
    overlap: float = 0.25
    """Fraction of the tile shared by neighbouring tiles, in [0, 0.9]."""
    blend: str = "gaussian"
    batch_size: int = 16
    tta_flip: bool = False
    """Predict each tile in all 8 flips/transposes and average the logits (8× the model time; see
    :mod:`heritage_damage_seg.model.dihedral`)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.overlap <= 0.9:
            raise ValueError(f"sliding overlap {self.overlap} must be within [0, 0.9]")
        if self.blend not in BLENDS:
            raise ValueError(f"sliding blend '{self.blend}' must be one of {', '.join(BLENDS)}")
        if self.batch_size < 1:
            raise ValueError("sliding batch_size must be at least 1")


def stride_for(tile: int, overlap: float) -> int:
    return max(1, tile - int(round(tile * overlap)))


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Starts of the tiles along one side of ``length`` ≥ ``tile``: the last one ends on the edge."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def tile_weights(tile: int, blend: str) -> torch.Tensor:
    """tile×tile float32 weights, strictly positive (every pixel is covered by some tile)."""
    centre = (tile - 1) / 2.0
    position = torch.arange(tile, dtype=torch.float64) - centre
    if blend == "gaussian":
        sigma = tile / 8.0
        profile = torch.exp(-(position**2) / (2 * sigma**2))
    elif blend == "linear":
        profile = 1.0 - position.abs() / (centre + 1.0)
    elif blend == "uniform":
        profile = torch.ones(tile, dtype=torch.float64)
    else:
        raise ValueError(f"unknown blend '{blend}'")
    weights = torch.outer(profile, profile)
    weights = weights / weights.max()
    return weights.clamp_min(1e-6).float()


def strip_bytes(
    width: int, tile: int, num_classes: int, batch_size: int, tta_flip: bool = False
) -> int:
    """Float memory of the stitcher beyond the uint8 input and output: the logits + weight strip,
    one batch of normalised input tiles and its logits (×2 with TTA: the running sum of the 8
    views beside the view being predicted)."""
    width = max(width, tile)
    # ×3: the strip itself, the copy of its open rows when it moves on (at most the strip), and
    # the normalised logits of the rows it hands out (at most the strip).
    strip = 3 * (num_classes + 1) * 4 * tile * width
    batch = batch_size * (3 + num_classes) * 4 * tile * tile * (2 if tta_flip else 1)
    return strip + batch


def _pad_to_tile(image: np.ndarray, tile: int) -> np.ndarray:
    height, width = image.shape[:2]
    pad_h, pad_w = max(0, tile - height), max(0, tile - width)
    if not (pad_h or pad_w):
        return image
    # numpy's reflect repeats the reflection when the pad exceeds the side (a 10 px strip, 64 px
    # tile).
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")


@torch.no_grad()
def forward_tiles(
    model: nn.Module, tiles: torch.Tensor, amp_dtype: torch.dtype | None, tta_flip: bool
) -> torch.Tensor:
    """uint8 B×T×T×3 tiles → float32 logits B×C×T×T."""
    x = to_model_input(tiles)
    device_type = x.device.type
    with devices.autocast(device_type, amp_dtype):
        if tta_flip:
            return dihedral_average(model, x)
        return model(x).float()


def iter_strips(
    model: nn.Module,
    image: np.ndarray,
    *,
    tile: int,
    settings: SlidingSettings = SlidingSettings(),
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Blended logits of ``image`` (H×W×3 uint8) strip by strip: yields ``(first_row, logits)``
    with logits C×h×W float32 (on ``device``) for rows ``first_row … first_row+h`` of the image;
    the strips are in order and cover every row once. ``progress(done, total)`` is called after
    each tile row."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 image, got {image.shape} {image.dtype}")
    device = torch.device(device)
    height, width = image.shape[:2]
    padded = _pad_to_tile(image, tile)
    padded_h, padded_w = padded.shape[:2]
    stride = stride_for(tile, settings.overlap)
    rows, cols = tile_starts(padded_h, tile, stride), tile_starts(padded_w, tile, stride)
    weights = tile_weights(tile, settings.blend).to(device)
    acc: torch.Tensor | None = None  # C × tile × W: image rows [top, top + tile)
    wsum = torch.zeros((tile, padded_w), device=device)
    top = 0  # the image row the strip's first row stands for
    for r, y in enumerate(rows):
        if acc is not None and y > top:  # rows [top, y) are final: no later tile reaches them
            shift = y - top
            yield from _emit(acc, wsum, top, shift, height, width)
            # Move the rows still open to the top (a copy of the overlap only), clear the rest.
            acc[:, : tile - shift] = acc[:, shift:].clone()
            acc[:, tile - shift :] = 0
            wsum[: tile - shift] = wsum[shift:].clone()
            wsum[tile - shift :] = 0
            top = y
        band = _band_on_device(padded[y : y + tile], device)
        for start in range(0, len(cols), settings.batch_size):
            xs = cols[start : start + settings.batch_size]
            tiles = torch.stack([band[:, x : x + tile] for x in xs])
            logits = forward_tiles(model, tiles, amp_dtype, settings.tta_flip)
            if acc is None:
                acc = torch.zeros((logits.shape[1], tile, padded_w), device=device)
            for x, tile_logits in zip(xs, logits):
                acc[:, :, x : x + tile] += tile_logits * weights
                wsum[:, x : x + tile] += weights
        if progress is not None:
            progress(r + 1, len(rows))
    assert acc is not None
    yield from _emit(acc, wsum, top, min(tile, padded_h - top), height, width)


def _band_on_device(rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """One tile row of the image, copied to the device once and cut into tiles there: on a GPU
    the copy is pinned and does not block, so the host reads the next band while the GPU works
    (instead of stacking every batch on the host and waiting for its copy)."""
    band = torch.from_numpy(np.array(rows))  # a writable copy of the rows
    if device.type == "cuda":
        return band.pin_memory().to(device, non_blocking=True)
    return band


def _emit(
    acc: torch.Tensor, wsum: torch.Tensor, top: int, count: int, height: int, width: int
) -> Iterator[tuple[int, torch.Tensor]]:
    count = min(count, height - top)  # rows beyond the image are padding
    if count > 0:
        yield top, acc[:, :count, :width] / wsum[:count, :width]


def predict_logits(model: nn.Module, image: np.ndarray, *, tile: int, **kwargs) -> torch.Tensor:
    """The whole C×H×W blended logits (for small images and tests: this holds them all)."""
    return torch.cat([strip for _, strip in iter_strips(model, image, tile=tile, **kwargs)], dim=1)


def predict_mask(
    model: nn.Module,
    image: np.ndarray,
    *,
    tile: int,
    out: np.ndarray | None = None,
    **kwargs,
) -> np.ndarray:
    """H×W uint8 class ids by sliding window; only a strip of float logits is held at a time."""
    height, width = image.shape[:2]
    if out is None:
        out = np.empty((height, width), dtype=np.uint8)
    for first_row, strip in iter_strips(model, image, tile=tile, **kwargs):
        out[first_row : first_row + strip.shape[1]] = strip.argmax(0).to(torch.uint8).cpu().numpy()
    return out


def tile_count(height: int, width: int, tile: int, overlap: float) -> int:
    stride = stride_for(tile, overlap)
    return len(tile_starts(max(height, tile), tile, stride)) * len(
        tile_starts(max(width, tile), tile, stride)
    )


def describe_bound(
    height: int, width: int, tile: int, num_classes: int, settings: SlidingSettings
) -> str:
    extra = strip_bytes(width, tile, num_classes, settings.batch_size, settings.tta_flip)
    naive = (num_classes + 1) * 4 * height * width
    return (
        f"{tile_count(height, width, tile, settings.overlap)} tiles of {tile} px; float strip + batch "
        f"{extra / 2**20:.0f} MiB (full-resolution logits would be {naive / 2**20:.0f} MiB); "
        f"uint8 image + mask {4 * height * width / 2**20:.0f} MiB"
    )


def megapixels(height: int, width: int) -> float:
    return height * width / 1e6


__all__ = [
    "BLENDS",
    "SlidingSettings",
    "describe_bound",
    "forward_tiles",
    "iter_strips",
    "megapixels",
    "predict_logits",
    "predict_mask",
    "strip_bytes",
    "tile_count",
    "tile_starts",
    "tile_weights",
]
