"""Randomly initialised checkpoints in the format train.py writes (no training, no downloads)."""

from pathlib import Path

import torch

from heritage_damage_seg.classes import CLASS_NAMES, NUM_CLASSES
from heritage_damage_seg.model.models import IMAGENET_MEAN, IMAGENET_STD, build_model

SIZE = 64


def save_random_checkpoint(
    path: Path,
    encoder: str = "convnext_tiny",
    size: int = SIZE,
    seed: int = 0,
    scan_view: dict | None = None,
) -> Path:
    """``scan_view``: the record train.py writes (``ModelView.record()``); None: a checkpoint from
    before it existed."""
    torch.manual_seed(seed)
    model = build_model(encoder, image_size=size)
    torch.save(
        {
            "encoder": encoder,
            "image_size": size,
            "num_classes": NUM_CLASSES,
            "class_names": list(CLASS_NAMES),
            "normalisation": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "scale": 255},
            "epoch": 1,
            "val_mIoU": 0.0,
            "settings": {"encoder": encoder, "seed": seed},
            "model_state_dict": model.state_dict(),
            **({"scan_view": scan_view} if scan_view is not None else {}),
        },
        path,
    )
    return path
