"""Evaluating a trained model on the validation split: metrics.json, per-image confusion matrices
and the predicted masks as index PNGs (at the cache's resolution, aligned with its masks)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from heritage_damage_seg import device as devices
from heritage_damage_seg.batches import ResidentSplit, to_model_input
from heritage_damage_seg.classes import NUM_CLASSES
from heritage_damage_seg.dataset import load_cache
from heritage_damage_seg.io import atomic_path, read_json, write_json
from heritage_damage_seg.metrics import confusion_matrix, summarise, trivial_baseline_cm
from heritage_damage_seg.models import ENCODERS, count_parameters, load_checkpoint

log = logging.getLogger(__name__)


@torch.no_grad()
def evaluate(
    checkpoint_path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str],
    split_file: str | os.PathLike[str],
    metrics_file: str | os.PathLike[str],
    per_image_confusion_file: str | os.PathLike[str],
    predictions_dir: str | os.PathLike[str],
    batch_size: int = 16,
    mixed_precision: bool = True,
    device_preference: str = "auto",
) -> dict[str, Any]:
    device = devices.pick_device(device_preference)
    amp_dtype = devices.autocast_dtype(device, mixed_precision)
    model, checkpoint = load_checkpoint(checkpoint_path, device)
    cache = load_cache(cache_dir)
    if cache.size != checkpoint["image_size"]:
        raise ValueError(
            f"{checkpoint_path} was trained at {checkpoint['image_size']} px but the cache {cache_dir} is "
            f"{cache.size} px: retrain, or rebuild the cache at the training resolution"
        )
    split = read_json(split_file)
    val = ResidentSplit(cache.images, cache.masks, cache.positions(split["val"]), device)
    ids = cache.index["id"].to_numpy()[val.positions]
    predictions_dir = Path(predictions_dir)
    predictions_dir.mkdir(parents=True, exist_ok=True)

    # One untimed batch first: the first call pays for allocator warm-up and kernel selection.
    first_images, _ = next(val.batches(batch_size))
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        model(to_model_input(first_images))
    per_image = np.zeros((len(val), NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    forward_seconds = 0.0
    done = 0
    for images, masks in val.batches(batch_size):
        devices.synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            predictions = model(to_model_input(images)).argmax(1)
        devices.synchronize(device)
        forward_seconds += time.perf_counter() - start
        for prediction, mask in zip(predictions, masks):
            per_image[done] = confusion_matrix(prediction, mask).cpu().numpy()
            with atomic_path(predictions_dir / f"{ids[done]}.png") as tmp:
                Image.fromarray(prediction.to(torch.uint8).cpu().numpy(), mode="L").save(tmp, format="PNG")
            done += 1
    cm = per_image.sum(axis=0)
    summary = summarise(cm)
    baseline = summarise(trivial_baseline_cm(cm))
    encoder = checkpoint["encoder"]
    metrics: dict[str, Any] = {
        "encoder": encoder,
        "smp_encoder": ENCODERS[encoder].smp_encoder,
        "family": ENCODERS[encoder].family,
        "checkpoint": str(checkpoint_path),
        "checkpoint_epoch": checkpoint["epoch"],
        "evaluation_mode": "resize",
        "image_size": cache.size,
        "n_images": len(val),
        **summary,
        "trivial_baseline": {
            "description": "predicts Clean for every pixel",
            "mIoU": baseline["mIoU"],
            "damage_mIoU": baseline["damage_mIoU"],
            "pixel_accuracy": baseline["pixel_accuracy"],
        },
        "inference_ms_per_image": 1000.0 * forward_seconds / max(1, len(val)),
        "inference_batch_size": batch_size,
        "device": devices.describe(device),
        "precision": str(amp_dtype or "fp32"),
        "parameters": count_parameters(model),
        "confusion_matrix": cm.tolist(),
    }
    with atomic_path(per_image_confusion_file) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, ids=ids.astype(str), confusion=per_image)
    write_json(metrics_file, metrics)
    log.info(
        "%s: mIoU %.2f%% (damage %.2f%%), trivial baseline %.2f%%, %.2f ms/image on %s",
        encoder, 100 * (summary["mIoU"] or 0), 100 * (summary["damage_mIoU"] or 0),
        100 * (baseline["mIoU"] or 0), metrics["inference_ms_per_image"], metrics["device"],
    )  # fmt: skip
    return metrics
