"""How a trained model sees a scan: one definition, recorded in the checkpoint, used by training's
cache, evaluation (both modes), ``predict`` and the export's model card alike.

A model only knows the scale it was trained at. Applying it at another (a resize-view model run
on native-resolution tiles sees damage 6–40× larger than it ever did) gives a confident, wrong
map without any error, so every consumer of a checkpoint goes through :class:`ModelView`:

* ``resize`` (``prepare.view: resize``, the prototype's): the whole scan squeezed to
  ``image_size``² exactly as the cache was built (the same libvips resize), one forward pass, and
  the logits brought back to the scan's own size by bilinear interpolation, strip by strip
  (:func:`upsampled_argmax`): never a full-resolution float logit volume, whatever the scan's size.
* ``crops`` (``prepare.view: crops``): the scan downscaled by ``input_scale`` (the training
  ``crop_scale``), covered by the sliding window of :mod:`heritage_damage_seg.model.sliding` in
  tiles of
  ``image_size``, and the class map brought back to the scan's size by nearest neighbour.

Both give a class map at the size of the pixels they were handed (a scan, or a working copy of
one that was downscaled for being huge); the model's input size is computed from the scan's
*native* size, so a working copy is seen exactly as its original would be.

Checkpoints written before this record existed carry only ``input_scale``; they are read as the
view they can only have been trained in (``crops`` below 1, else ``resize``) with a logged note.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from heritage_damage_seg.classes import NUM_CLASSES
from heritage_damage_seg.data import decode
from heritage_damage_seg.data.geometry import scaled_size
from heritage_damage_seg.model.sliding import (
    SlidingSettings,
    describe_bound,
    forward_tiles,
    predict_mask,
)

log = logging.getLogger(__name__)

VIEWS = ("resize", "crops")
# Float memory one strip of upsampled logits may take (a few intermediate copies of it coexist).
STRIP_BYTES = 64 * 2**20


@dataclass(frozen=True)
class ModelView:
    """How the model was trained to see a scan (see the module docstring)."""

    view: str
    image_size: int
    input_scale: float | None = None
    """crops: the fraction of native resolution the model saw; resize: None (every scan squeezed
    to ``image_size``², whatever its size, so there is no single scale)."""

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(
                f"unknown training view '{self.view}': expected one of {', '.join(VIEWS)}"
            )
        if self.view == "crops" and not (self.input_scale and 0 < self.input_scale <= 1):
            raise ValueError(f"a crops view needs an input scale in (0, 1], got {self.input_scale}")

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any], name: str = "checkpoint") -> ModelView:
        size = int(checkpoint["image_size"])
        record = checkpoint.get("scan_view")
        if record is not None:
            return cls(record["view"], size, record.get("input_scale"))
        # Older checkpoints: `view` and `input_scale` (1.0 in the resize view), or neither.
        scale = float(checkpoint.get("input_scale", 1.0))
        view = "crops" if scale < 1.0 else "resize"
        log.info(
            "note: %s predates the recorded scan view; it is read as the %s view (%s), the only one "
            "a checkpoint with input_scale %g can come from",
            name,
            view,
            cls(view, size, scale if view == "crops" else None).describe(),
            scale,
        )
        return cls(view, size, scale if view == "crops" else None)

    def record(self) -> dict[str, Any]:
        """What the checkpoint and the model card store (``scan_view``)."""
        return {
            "view": self.view,
            "image_size": self.image_size,
            "input_scale": self.input_scale,
            "description": self.describe(),
        }

    def describe(self) -> str:
        if self.view == "resize":
            return (
                f"whole scan resized to {self.image_size}x{self.image_size} (aspect not kept), "
                "logits resized back to the scan's size (bilinear)"
            )
        return (
            f"scan downscaled to {self.input_scale:g} x native, sliding window of "
            f"{self.image_size} px tiles, classes resized back to the scan's size (nearest)"
        )

    def model_input_size(self, native_width: int, native_height: int) -> tuple[int, int]:
        """(width, height) of the picture the model is given for a scan of this native size."""
        if self.view == "resize":
            return self.image_size, self.image_size
        assert self.input_scale is not None
        return scaled_size(native_width, native_height, self.input_scale)

    def describe_cost(self, width: int, height: int, settings: SlidingSettings) -> str:
        """What predicting a scan of this native size costs (for the log)."""
        if self.view == "resize":
            return (
                f"one {self.image_size} px forward pass, logits resized back in strips of "
                f"<= {STRIP_BYTES / 2**20:.0f} MiB"
            )
        model_width, model_height = self.model_input_size(width, height)
        return f"at {model_width}×{model_height}: " + describe_bound(
            model_height, model_width, self.image_size, NUM_CLASSES, settings
        )

    def model_input(
        self, source: decode.Source, *, name: str, native_size: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, decode.Header]:
        """The picture the model is given for ``source`` (writable H×W×3 uint8) and the source's
        header; ``native_size`` as in :meth:`predict`."""
        head = decode.header(source, name)
        native_size = native_size or (head.width, head.height)
        picture, _ = decode.scaled_image(source, *self.model_input_size(*native_size), name)
        return np.array(picture), head  # writable: libvips' buffer is read-only

    def predict(
        self,
        model: nn.Module,
        source: decode.Source,
        *,
        name: str,
        native_size: tuple[int, int] | None = None,
        settings: SlidingSettings = SlidingSettings(),
        device: torch.device | str = "cpu",
        amp_dtype: torch.dtype | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Class ids (H×W uint8) for ``source`` at its own size H×W, the model applied as trained.

        ``native_size``: (width, height) of the original scan when ``source`` is a downscaled
        working copy of it (the model's input is sized from the original); default: its own size.
        """
        picture, head = self.model_input(source, name=name, native_size=native_size)
        if self.view == "resize":
            logits = forward_tiles(
                model, torch.from_numpy(picture)[None].to(device), amp_dtype, settings.tta_flip
            )[0]
            return upsampled_argmax(logits, head.height, head.width)
        mask = predict_mask(
            model,
            picture,
            tile=self.image_size,
            settings=settings,
            device=device,
            amp_dtype=amp_dtype,
            progress=progress,
        )
        return resized_nearest(mask, head.width, head.height)


def of_cache(view: str, image_size: int, crop_scale: float | None) -> ModelView:
    """The view a cache was prepared in (``PreparedCache.view``), as training records it."""
    return ModelView(view, image_size, crop_scale if view == "crops" else None)


def source_positions(out_length: int, in_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling along one axis as torch's ``interpolate(align_corners=False)`` does it:
    the two neighbouring source indices of every output pixel and the weight of the second."""
    position = np.maximum(
        (np.arange(out_length, dtype=np.float64) + 0.5) * (in_length / out_length) - 0.5, 0.0
    )
    first = np.minimum(np.floor(position).astype(np.int64), in_length - 1)
    second = np.minimum(first + 1, in_length - 1)
    return first, second, (position - first).astype(np.float32)


def upsampled_argmax(
    logits: torch.Tensor,
    height: int,
    width: int,
    *,
    strip_bytes: int = STRIP_BYTES,
    block_width: int = 2048,
) -> np.ndarray:
    """argmax over classes of ``logits`` (C×h×w) bilinearly resized to ``height``×``width``: the
    same as ``interpolate(logits[None], (height, width), mode="bilinear").argmax(1)`` (up to exact
    ties), computed in blocks of ``block_width`` columns × a strip of rows, so the memory stays a
    few strips (``strip_bytes`` of floats) whatever the output's size.

    Each output pixel is a convex combination of the logits of the four source pixels around it.
    Where those four agree on their argmax, so does every convex combination of them (the winning
    class wins term by term), so the answer there is that class with no float work; only pixels
    among disagreeing neighbours (class boundaries) are interpolated. On a 244 MP scan that skips
    most of the 16 × 244 M interpolations a plain resize would do. (numpy on the host: the logits
    are small, and its gathers are several times faster than torch's advanced indexing on a CPU.)"""
    classes, in_h, in_w = logits.shape
    corners = logits.detach().float().permute(1, 2, 0).reshape(in_h * in_w, classes).cpu().numpy()
    labels = corners.argmax(1).astype(np.uint8).reshape(in_h, in_w)
    below = np.minimum(np.arange(in_h) + 1, in_h - 1)
    right = np.minimum(np.arange(in_w) + 1, in_w - 1)
    agree = (
        (labels == labels[below])
        & (labels == labels[:, right])
        & (labels == labels[below][:, right])
    )
    rows_first, rows_second, rows_weight = source_positions(height, in_h)
    cols_first, cols_second, cols_weight = source_positions(width, in_w)
    out = np.empty((height, width), dtype=np.uint8)
    # Up to ~6 float arrays of (pixels in the strip) × C coexist where every pixel is a boundary.
    step = max(1, strip_bytes // (6 * 4 * classes * min(width, block_width)))
    for left in range(0, width, block_width):
        cols = slice(left, min(width, left + block_width))
        col_first = cols_first[cols]
        for top in range(0, height, step):
            rows = slice(top, min(height, top + step))
            row_first = rows_first[rows]
            strip = np.take(np.take(labels, row_first, axis=0), col_first, axis=1)
            ys, xs = np.nonzero(~np.take(np.take(agree, row_first, axis=0), col_first, axis=1))
            if len(ys):
                upper_row, lower_row = row_first[ys] * in_w, rows_second[rows][ys] * in_w
                left_col, right_col = col_first[xs], cols_second[cols][xs]
                wc, wr = cols_weight[cols][xs, None], rows_weight[rows][ys, None]
                upper = _lerp(
                    np.take(corners, upper_row + left_col, axis=0),
                    np.take(corners, upper_row + right_col, axis=0),
                    wc,
                )
                lower = _lerp(
                    np.take(corners, lower_row + left_col, axis=0),
                    np.take(corners, lower_row + right_col, axis=0),
                    wc,
                )
                strip[ys, xs] = _lerp(upper, lower, wr).argmax(1)
            out[rows, cols] = strip
    return out


def _lerp(start: np.ndarray, end: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``start + weight · (end − start)`` in place of ``start``, as ``torch.lerp`` computes it."""
    end -= start
    end *= weight
    start += end
    return start


def resized_nearest(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """A class map resized by nearest neighbour (each output pixel takes the source pixel under its
    centre), by indexing: no copy of a full-size source is made, whatever its size."""
    if mask.shape == (height, width):
        return mask
    rows = np.minimum(
        ((np.arange(height) + 0.5) * (mask.shape[0] / height)).astype(np.int64), mask.shape[0] - 1
    )
    cols = np.minimum(
        ((np.arange(width) + 0.5) * (mask.shape[1] / width)).astype(np.int64), mask.shape[1] - 1
    )
    return np.take(np.take(mask, rows, axis=0), cols, axis=1)
