"""Training and validation batches straight from the uint8 cache, augmented on the device.

The split's rows are gathered from the memory-mapped cache once and kept as uint8 (a quarter of
float32): on the GPU when they fit beside the model, so a step costs an index and a few tensor ops,
not a decode; otherwise in host memory, copied one batch at a time through pinned memory without
blocking.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from heritage_damage_seg import device as devices


class ResidentSplit:
    """One side of the split as uint8 tensors (images N×S×S×3, masks N×S×S) ready for ``device``.

    ``resident``: keep the rows on the device (the CPU always does); None decides by the GPU's
    memory (:func:`~heritage_damage_seg.device.data_fits_on_gpu`). Rows that stay on the host stay
    in pageable memory (pinning the whole split would round it up to a power of two of locked
    memory); each batch is gathered into a pinned staging buffer of its own size and copied from
    there without blocking. torch's pinned host allocator hands a buffer out again only once its
    copy is done, so no step waits for the GPU."""

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        positions: np.ndarray,
        device: torch.device,
        resident: bool | None = None,
    ):
        order = np.sort(positions)  # sequential reads from the memory map
        host_images = torch.from_numpy(np.ascontiguousarray(images[order]))
        host_masks = torch.from_numpy(np.ascontiguousarray(masks[order]))
        self.positions = order
        self.device = device
        if resident is None:
            resident = device.type != "cuda" or devices.data_fits_on_gpu(
                host_images.nbytes + host_masks.nbytes, device
            )
        self.on_device = resident or device.type == "cpu"
        if self.on_device:
            self.images, self.masks = host_images.to(device), host_masks.to(device)
        else:
            self.images, self.masks = host_images, host_masks

    @property
    def nbytes(self) -> int:
        return self.images.nbytes + self.masks.nbytes

    def __len__(self) -> int:
        return len(self.positions)

    def shuffled_order(self, generator: torch.Generator) -> torch.Tensor:
        """One epoch's sample order (on the CPU, so a checkpoint can hold it)."""
        return torch.randperm(len(self), generator=generator)

    def batches(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        order: torch.Tensor | None = None,
        start_batch: int = 0,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches on ``device``; shuffled when a generator is given (or in the given ``order``), in
        cache order otherwise; ``start_batch`` skips the batches an interrupted epoch trained on."""
        n = len(self)
        if order is None and generator is None:
            order = torch.arange(n, device=self.images.device)
        elif order is None:
            order = self.shuffled_order(generator)
        order = _beside(order, self.images)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(start_batch * batch_size, stop, batch_size):
            index = order[start : start + batch_size]
            if self.on_device:
                yield self.images.index_select(0, index), self.masks.index_select(0, index)
            else:
                yield self._staged(self.images, index), self._staged(self.masks, index)

    def _staged(self, rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The indexed rows, gathered straight into pinned memory and copied without blocking."""
        staging = torch.empty(
            (len(index), *rows.shape[1:]), dtype=rows.dtype, pin_memory=self.device.type == "cuda"
        )
        torch.index_select(rows, 0, index, out=staging)
        return staging.to(self.device, non_blocking=True)


def _beside(order: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The sample order on the device that holds the rows it indexes: a host order for host rows;
    for device rows, copied from pinned memory without blocking (a pageable host-to-device copy
    would wait for the GPU). Device *types* are compared: a bare ``cuda`` is ``cuda:0``."""
    if order.device.type == rows.device.type:
        return order
    if rows.device.type == "cuda":
        return order.pin_memory().to(rows.device, non_blocking=True)
    return order.to(rows.device)


def steps_per_epoch(n: int, batch: int, shards: int = 1) -> int:
    """Full global batches in an epoch: ``batch // shards`` samples from each shard per step."""
    if shards == 1:
        return max(1, n // batch)
    smallest_shard = n // shards
    return max(1, smallest_shard // (batch // shards))


def shard_positions(positions: np.ndarray, shard: int, shards: int) -> np.ndarray:
    """The rows one rank holds: every ``shards``-th row of the split in cache order (so the views of
    one artwork, adjacent in the cache, fall on different ranks)."""
    return np.sort(positions)[shard::shards]


def epoch_order(n: int, batch: int, shards: int, generator: torch.Generator) -> torch.Tensor:
    """One epoch's sample order over the whole split (row numbers in cache order): global batch k
    is ``order[k*batch:(k+1)*batch]``. One shard: a permutation of all rows (the single-process
    order). Several: each shard's rows shuffled on their own and batch k made of ``batch/shards``
    rows from each shard, shard after shard, so that rank r's part of every batch is in the shard it
    holds; the same order whether one process or ``shards`` ranks train on it."""
    if shards == 1:
        return torch.randperm(n, generator=generator)
    per_shard = batch // shards
    steps = steps_per_epoch(n, batch, shards)
    parts = []
    for shard in range(shards):
        rows = torch.arange(shard, n, shards)
        shuffled = rows[torch.randperm(len(rows), generator=generator)]
        parts.append(shuffled[: steps * per_shard].view(steps, per_shard))
    return torch.cat(parts, dim=1).reshape(-1)


def rank_order(order: torch.Tensor, batch: int, rank: int, world: int) -> torch.Tensor:
    """A rank's part of every global batch of ``order``, as row numbers of the shard it holds."""
    if world == 1:
        return order
    per_rank = batch // world
    steps = len(order) // batch
    part = order[: steps * batch].view(steps, batch)[:, rank * per_rank : (rank + 1) * per_rank]
    return part.reshape(-1) // world


@dataclass(frozen=True)
class Augmentation:
    """Per-sample random transforms; image and mask always move together and labels stay exact."""

    flips: bool = True  # horizontal/vertical flips and transposes: all 8 right-angle symmetries
    min_crop_scale: float = 1.0  # < 1: zoom into a random square crop of at least this side share
    brightness: float = 0.0  # ± relative brightness change
    contrast: float = 0.0  # ± relative contrast change

    def __post_init__(self) -> None:
        if not 0.1 <= self.min_crop_scale <= 1.0:
            raise ValueError(
                f"augmentation min_crop_scale must be in [0.1, 1], got {self.min_crop_scale}"
            )
        if not (0 <= self.brightness < 1 and 0 <= self.contrast < 1):
            raise ValueError("augmentation brightness and contrast must be in [0, 1)")


def augment(
    images: torch.Tensor,
    masks: torch.Tensor,
    generator: torch.Generator,
    settings: Augmentation = Augmentation(),
    part: tuple[int, slice] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images B×H×W×3 uint8, masks B×H×W uint8 → the same, randomly transformed per sample.

    Random numbers come from ``generator`` on the host (a few per sample) so that runs are
    reproducible on any device; the pixel work happens on the tensors' device. ``part``: (global
    batch size, this rank's columns): every rank draws for the whole global batch and keeps its
    columns, so a sample is transformed alike however many ranks share the batch.
    """
    if part is None:
        draws = torch.rand((8, images.shape[0]), generator=generator)
    else:
        global_batch, columns = part
        draws = torch.rand((8, global_batch), generator=generator)[:, columns].contiguous()
    if (
        images.device.type == "cuda"
    ):  # a pinned source lets the copy run without waiting for the GPU
        draws = draws.pin_memory()
    draws = draws.to(images.device, non_blocking=True)
    if settings.flips:
        images, masks = _where(draws[0] < 0.5, images, masks, lambda t: t.flip(2))
        images, masks = _where(draws[1] < 0.5, images, masks, lambda t: t.flip(1))
        if images.shape[1] == images.shape[2]:
            images, masks = _where(draws[2] < 0.5, images, masks, lambda t: t.transpose(1, 2))
    if settings.min_crop_scale < 1.0:
        images, masks = _scale_crop(
            images, masks, settings.min_crop_scale, draws[3], draws[4], draws[5]
        )
    if settings.brightness or settings.contrast:
        images = _jitter(images, settings, draws[6], draws[7])
    return images, masks


def _where(
    selected: torch.Tensor, images: torch.Tensor, masks: torch.Tensor, op
) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.where(selected.view(-1, 1, 1, 1), op(images), images),
        torch.where(selected.view(-1, 1, 1), op(masks), masks),
    )


def _scale_crop(
    images: torch.Tensor,
    masks: torch.Tensor,
    min_scale: float,
    u_scale: torch.Tensor,
    u_x: torch.Tensor,
    u_y: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zoom into a random square crop per sample, resized back to the full size (bilinear image,
    nearest mask: no blended labels, 255 stays 255). Crops lie inside the image: no padding."""
    batch = images.shape[0]
    scale = min_scale + (1.0 - min_scale) * u_scale
    theta = torch.zeros(batch, 2, 3, device=images.device)
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, 0, 2] = (2 * u_x - 1) * (1 - scale)
    theta[:, 1, 2] = (2 * u_y - 1) * (1 - scale)
    grid = F.affine_grid(theta, [batch, 1, *images.shape[1:3]], align_corners=False)
    image_float = images.permute(0, 3, 1, 2).float()
    warped = F.grid_sample(image_float, grid, mode="bilinear", align_corners=False)
    warped_masks = F.grid_sample(
        masks.unsqueeze(1).float(), grid, mode="nearest", align_corners=False
    )
    return (
        warped.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous(),
        warped_masks.squeeze(1).to(torch.uint8),
    )


def _jitter(
    images: torch.Tensor,
    settings: Augmentation,
    u_brightness: torch.Tensor,
    u_contrast: torch.Tensor,
) -> torch.Tensor:
    x = images.float()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 1 + settings.contrast * (2 * u_contrast - 1).view(-1, 1, 1, 1)
    brightness = 1 + settings.brightness * (2 * u_brightness - 1).view(-1, 1, 1, 1)
    return (((x - mean) * contrast + mean) * brightness).round().clamp(0, 255).to(torch.uint8)
