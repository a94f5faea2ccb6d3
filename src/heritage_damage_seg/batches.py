"""Training and validation batches straight from the uint8 cache, augmented on the device.

The split's rows are gathered from the memory-mapped cache once and kept as uint8 (a quarter of
float32), on the GPU when there is one, so a step costs an index and a few flips, not a decode.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from heritage_damage_seg.models import IMAGENET_MEAN, IMAGENET_STD


class ResidentSplit:
    """One side of the split as uint8 tensors (images N×S×S×3, masks N×S×S) on ``device``."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, positions: np.ndarray, device: torch.device):
        order = np.sort(positions)  # sequential reads from the memory map
        self.images = torch.from_numpy(np.ascontiguousarray(images[order])).to(device)
        self.masks = torch.from_numpy(np.ascontiguousarray(masks[order])).to(device)
        self.positions = order
        self.device = device

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
        """Shuffled when a generator is given (or in the given ``order``), in cache order otherwise;
        ``start_batch`` skips the batches an interrupted epoch already trained on."""
        n = len(self)
        if order is None:
            order = self.shuffled_order(generator) if generator is not None else torch.arange(n)
        order = order.to(self.device)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(start_batch * batch_size, stop, batch_size):
            index = order[start : start + batch_size]
            yield self.images.index_select(0, index), self.masks.index_select(0, index)


def augment(
    images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample random horizontal/vertical flips and 90° rotations, identical for image and mask
    (exact: no interpolation touches a label, 255 stays 255). Images are B×H×W×3, masks B×H×W."""
    batch = images.shape[0]
    flags = torch.rand((3, batch), generator=generator).to(images.device, non_blocking=True)
    hflip, vflip, rotate = flags[0] < 0.5, flags[1] < 0.5, flags[2] < 0.5

    def apply(selected: torch.Tensor, img: torch.Tensor, msk: torch.Tensor, op) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            torch.where(selected.view(-1, 1, 1, 1), op(img), img),
            torch.where(selected.view(-1, 1, 1), op(msk), msk),
        )

    images, masks = apply(hflip, images, masks, lambda t: t.flip(2))
    images, masks = apply(vflip, images, masks, lambda t: t.flip(1))
    if images.shape[1] == images.shape[2]:
        images, masks = apply(rotate, images, masks, lambda t: t.transpose(1, 2))
    return images, masks


def to_model_input(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 B×H×W×3 → ImageNet-normalised float B×3×H×W."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1) * 255.0
    x = (images.permute(0, 3, 1, 2).float() - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
