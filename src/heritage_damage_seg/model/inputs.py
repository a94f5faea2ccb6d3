"""What the network is fed: uint8 scans on the device, normalised as the ImageNet encoders expect."""

from __future__ import annotations

import torch

from heritage_damage_seg.model.models import IMAGENET_MEAN, IMAGENET_STD

_NORMALISATION: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def _normalisation(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std in pixel units on ``device``, made once per device: building them
    per call was a host-to-device copy, and so a host synchronisation, in every step."""
    if device not in _NORMALISATION:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0
        _NORMALISATION[device] = (mean.to(device), std.to(device))
    return _NORMALISATION[device]


def to_model_input(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 B×H×W×3 → ImageNet-normalised float B×3×H×W."""
    mean, std = _normalisation(images.device)
    x = (images.permute(0, 3, 1, 2).float() - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
