"""Training one encoder: AdamW + OneCycleLR, weighted Dice, mixed precision where the GPU has it.

Per epoch it writes a row of ``history.csv``, the last checkpoint, and the best checkpoint (by
validation mIoU, computed with :func:`heritage_damage_seg.metrics.summarise`). The training step
never waits on the host: losses are summed on the device and read once per epoch.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from heritage_damage_seg import device as devices
from heritage_damage_seg.batches import Augmentation, ResidentSplit, augment, to_model_input
from heritage_damage_seg.classes import CLASS_NAMES, NUM_CLASSES
from heritage_damage_seg.dataset import load_cache
from heritage_damage_seg.io import atomic_path, read_json
from heritage_damage_seg.losses import WeightedDiceLoss
from heritage_damage_seg.metrics import confusion_matrix, summarise
from heritage_damage_seg.models import IMAGENET_MEAN, IMAGENET_STD, build_model, count_parameters

log = logging.getLogger(__name__)

HISTORY_COLUMNS = (
    "epoch", "train_loss", "val_mIoU", "val_damage_mIoU", "lr", "train_imgs_per_s", "epoch_seconds", "peak_memory_mb",
)  # fmt: skip


class NonFiniteLossError(RuntimeError):
    pass


@dataclass(frozen=True)
class TrainSettings:
    encoder: str
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float = 0.01
    pct_start: float = 0.3
    dice_smooth: float = 1.0
    mixed_precision: bool = True
    channels_last: bool = True
    augmentation: dict[str, Any] = field(default_factory=dict)  # Augmentation's fields; {} = flips only
    seed: int = 42
    encoder_weights: str | None = None
    eval_batch_size: int = 32
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def validation_confusion(
    model: nn.Module, split: ResidentSplit, batch_size: int, amp_dtype: torch.dtype | None, channels_last: bool
) -> torch.Tensor:
    """Dataset-level confusion matrix of the model's arg-max predictions over ``split`` (on device)."""
    model.eval()
    cm = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64, device=split.device)
    for images, masks in split.batches(batch_size):
        with torch.autocast(split.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(to_model_input(images, channels_last))
        cm += confusion_matrix(logits.argmax(1), masks)
    return cm


def _format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def train(
    settings: TrainSettings,
    *,
    cache_dir: str | os.PathLike[str],
    split_file: str | os.PathLike[str],
    class_weights_file: str | os.PathLike[str],
    best_checkpoint: str | os.PathLike[str],
    last_checkpoint: str | os.PathLike[str],
    history_file: str | os.PathLike[str],
) -> dict[str, Any]:
    generator = seed_everything(settings.seed)
    device = devices.pick_device(settings.device)
    amp_dtype = devices.autocast_dtype(device, settings.mixed_precision)
    channels_last = settings.channels_last and device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    cache = load_cache(cache_dir)
    split = read_json(split_file)
    weights = read_json(class_weights_file)
    train_split = ResidentSplit(cache.images, cache.masks, cache.positions(split["train"]), device)
    val_split = ResidentSplit(cache.images, cache.masks, cache.positions(split["val"]), device)
    if len(train_split) == 0 or len(val_split) == 0:
        raise ValueError(f"{split_file}: the split has an empty side ({len(train_split)} train, {len(val_split)} val)")

    model = build_model(settings.encoder, image_size=cache.size, encoder_weights=settings.encoder_weights)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = WeightedDiceLoss(weights["weights"], smooth=settings.dice_smooth).to(device)
    batch_size = min(settings.batch_size, len(train_split))
    steps_per_epoch = max(1, len(train_split) // batch_size)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
        fused=device.type == "cuda",
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=settings.learning_rate,
        total_steps=settings.epochs * steps_per_epoch,
        pct_start=settings.pct_start,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    augmentation = Augmentation(**settings.augmentation)
    n_params = count_parameters(model)
    log.info(
        "training %s (%.1f M parameters) on %s, precision %s: %d train / %d val images at %d px, "
        "batch %d, %d steps/epoch, %d epochs, max lr %.3g, class weights %s",
        settings.encoder, n_params / 1e6, devices.describe(device), amp_dtype or "fp32", len(train_split),
        len(val_split), cache.size, batch_size, steps_per_epoch, settings.epochs, settings.learning_rate,
        weights["method"],
    )  # fmt: skip

    history: list[dict[str, float]] = []
    best_miou = -math.inf
    best_epoch = 0
    started = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        model.train()
        epoch_start = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        last_progress = epoch_start
        for step, (images, masks) in enumerate(
            train_split.batches(batch_size, generator=generator, drop_last=True), start=1
        ):
            images, masks = augment(images, masks, generator, augmentation)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(to_model_input(images, channels_last))
            loss = loss_fn(logits, masks)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.detach()
            seen += images.shape[0]
            now = time.perf_counter()
            if now - last_progress > 30:
                log.info("  epoch %d step %d/%d, %.1f img/s", epoch, step, steps_per_epoch, seen / (now - epoch_start))
                last_progress = now
        devices.synchronize(device)
        train_seconds = time.perf_counter() - epoch_start
        mean_loss = float(loss_sum) / steps_per_epoch  # the one host read of the epoch
        if not math.isfinite(mean_loss):
            raise NonFiniteLossError(
                f"epoch {epoch}: training loss is {mean_loss}; stopping with the last good checkpoint "
                f"({last_checkpoint}) kept. Lower the learning rate or check the data."
            )
        summary = summarise(validation_confusion(model, val_split, settings.eval_batch_size, amp_dtype, channels_last))
        val_miou = summary["mIoU"] if summary["mIoU"] is not None else float("nan")
        epoch_seconds = time.perf_counter() - epoch_start
        row = {
            "epoch": epoch,
            "train_loss": mean_loss,
            "val_mIoU": val_miou,
            "val_damage_mIoU": summary["damage_mIoU"] if summary["damage_mIoU"] is not None else float("nan"),
            "lr": scheduler.get_last_lr()[0],
            "train_imgs_per_s": seen / train_seconds,
            "epoch_seconds": epoch_seconds,
            "peak_memory_mb": devices.peak_memory_mb(device),
        }
        history.append(row)
        checkpoint = {
            "encoder": settings.encoder,
            "image_size": cache.size,
            "num_classes": NUM_CLASSES,
            "class_names": list(CLASS_NAMES),
            "normalisation": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "scale": 255},
            "epoch": epoch,
            "val_mIoU": val_miou,
            "settings": asdict(settings),
            "model_state_dict": model.state_dict(),
        }
        improved = val_miou > best_miou
        if improved:
            best_miou, best_epoch = val_miou, epoch
            _save(checkpoint, best_checkpoint)
        _save(
            checkpoint | {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict()},
            last_checkpoint,
        )
        _write_history(history, history_file)
        elapsed = time.perf_counter() - started
        eta = elapsed / epoch * (settings.epochs - epoch)
        log.info(
            "epoch %d/%d loss %.4f val mIoU %.2f%% (best %.2f%% @%d) lr %.2e %.1f img/s %.1fs ETA %s%s",
            epoch, settings.epochs, mean_loss, 100 * val_miou, 100 * best_miou, best_epoch, row["lr"],
            row["train_imgs_per_s"], epoch_seconds, _format_duration(eta), " *" if improved else "",
        )  # fmt: skip
    log.info("done in %s; best val mIoU %.2f%% at epoch %d", _format_duration(time.perf_counter() - started), 100 * best_miou, best_epoch)
    return {"best_val_mIoU": best_miou, "best_epoch": best_epoch, "parameters": n_params}


def _save(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def _write_history(rows: list[dict[str, float]], path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
