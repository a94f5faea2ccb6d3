"""Evaluating a trained model on the validation split: metrics.json, per-image confusion matrices
and the predicted masks as index PNGs.

Two modes (``evaluation_mode`` in metrics.json says which ran):

* ``resize`` (the seed's): the cached images and masks, resized to the training size, are scored;
  predictions are at the cache's resolution, aligned with its masks. In the ``crops`` training
  view (``prepare.view``) the cache holds crops, so this scores the validation *crops*: parts of
  a scan are scored several times where crops overlap, and parts no crop covers are not scored.
* ``sliding``: each validation image is read from its working copy (``index.csv``'s
  ``image_path``/``mask_path``) and predicted whole by the sliding window of
  :mod:`heritage_damage_seg.sliding`; its mask is scored and the predictions have its size. In the
  resize view that is the native resolution; in the crops view it is the *training* scale (the
  scan downscaled by ``crop_scale``, mask by nearest neighbour): the model never saw another, and
  each validation scan is scored once, however many crops it has. Thin classes (scratch, hair,
  cracks) lose most to resizing: compare the two with :func:`mode_difference`.

``per_image_confusion.npz`` holds one confusion matrix per scored row (``ids``) and the scan each
row belongs to (``scans``), so the bootstrap can resample scans, not crops of one scan.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from heritage_damage_seg import decode
from heritage_damage_seg import device as devices
from heritage_damage_seg.batches import ResidentSplit, to_model_input
from heritage_damage_seg.classes import NUM_CLASSES
from heritage_damage_seg.dataset import load_cache, read_image, read_mask
from heritage_damage_seg.io import atomic_path, read_json, write_json
from heritage_damage_seg.metrics import confusion_matrix, summarise, trivial_baseline_cm
from heritage_damage_seg.models import ENCODERS, count_parameters, load_checkpoint
from heritage_damage_seg.sliding import SlidingSettings, predict_mask

EVALUATION_MODES = ("resize", "sliding")
THIN_CLASSES = ("Scratch", "Hair", "Cracks")

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
    mode: str = "resize",
    sliding: SlidingSettings | None = None,
) -> dict[str, Any]:
    if mode not in EVALUATION_MODES:
        raise ValueError(f"evaluation mode '{mode}' must be one of {', '.join(EVALUATION_MODES)}")
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
    rows = cache.index.iloc[val.positions]
    crops = cache.view == "crops"
    crop_scale = cache.input_scale if crops else None
    predictions_dir = Path(predictions_dir)
    predictions_dir.mkdir(parents=True, exist_ok=True)

    # One untimed batch first: the first call pays for allocator warm-up and kernel selection.
    first_images, _ = next(val.batches(batch_size))
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        model(to_model_input(first_images))
    forward_seconds = 0.0
    sliding = sliding or SlidingSettings(batch_size=batch_size)
    if mode == "sliding":
        # One row per scan: in the crops view, the first of its crops names the scan's files and scale.
        scans = rows.drop_duplicates("scan") if crops else rows
        ids = (scans["scan"] if crops else scans["id"]).to_numpy()
        scan_of = ids
        per_image = np.zeros((len(scans), NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
        for n, row in enumerate(scans.itertuples(index=False)):
            image, mask = _scan_at_training_scale(row) if crops else _native_scan(row)
            devices.synchronize(device)
            start = time.perf_counter()
            prediction = predict_mask(
                model, image, tile=cache.size, settings=sliding, device=device, amp_dtype=amp_dtype
            )
            devices.synchronize(device)
            forward_seconds += time.perf_counter() - start
            per_image[n] = confusion_matrix(torch.from_numpy(prediction), torch.from_numpy(mask)).numpy()
            with atomic_path(predictions_dir / f"{ids[n]}.png") as tmp:
                Image.fromarray(prediction, mode="L").save(tmp, format="PNG")
            if (n + 1) % max(1, len(ids) // 10) == 0 or n + 1 == len(ids):
                log.info("sliding evaluation: %d/%d scans, %.1f s", n + 1, len(ids), forward_seconds)
    else:
        ids = rows["id"].to_numpy()
        scan_of = (rows["scan"] if crops else rows["id"]).to_numpy()
        per_image = np.zeros((len(val), NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
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
        "evaluation_mode": mode,
        "view": cache.view,
        "crop_scale": crop_scale,
        "image_size": cache.size,
        "resolution": _resolution(mode, cache.size, crop_scale),
        "sliding": asdict(sliding) if mode == "sliding" else None,
        "n_images": len(ids),
        "n_scans": len(set(scan_of)),
        **summary,
        "trivial_baseline": {
            "description": "predicts Clean for every pixel",
            "mIoU": baseline["mIoU"],
            "damage_mIoU": baseline["damage_mIoU"],
            "pixel_accuracy": baseline["pixel_accuracy"],
        },
        "inference_ms_per_image": 1000.0 * forward_seconds / max(1, len(ids)),
        "inference_batch_size": batch_size,
        "device": devices.describe(device),
        "precision": str(amp_dtype or "fp32"),
        "parameters": count_parameters(model),
        "confusion_matrix": cm.tolist(),
    }
    with atomic_path(per_image_confusion_file) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, ids=ids.astype(str), scans=scan_of.astype(str), confusion=per_image)
    write_json(metrics_file, metrics)
    log.info(
        "%s (%s): mIoU %.2f%% (damage %.2f%%), trivial baseline %.2f%%, %.2f ms/image on %s",
        encoder, mode, 100 * (summary["mIoU"] or 0), 100 * (summary["damage_mIoU"] or 0),
        100 * (baseline["mIoU"] or 0), metrics["inference_ms_per_image"], metrics["device"],
    )  # fmt: skip
    return metrics


def _resolution(mode: str, size: int, crop_scale: float | None) -> str:
    """What the scored pixels are, for metrics.json."""
    if crop_scale is None:
        return "native" if mode == "sliding" else f"{size}x{size}"
    if mode == "sliding":
        return f"whole scans at {crop_scale:g} x native"
    return f"{size}x{size} crops at {crop_scale:g} x native"


def _native_scan(row: Any) -> tuple[np.ndarray, np.ndarray]:
    """A scan's working copy and mask as they are (resize view)."""
    picture, _ = read_image(row.image_path)
    image, mask = np.asarray(picture, dtype=np.uint8), read_mask(row.mask_path)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"{row.image_path} and {row.mask_path} differ in size: rebuild the cache")
    return image, mask


def _scan_at_training_scale(row: Any) -> tuple[np.ndarray, np.ndarray]:
    """A scan at the scale its crops were cut from (crops view): the working copy resized to the
    index's scaled size, the image as the cache's crops were made, the mask by nearest neighbour.
    The working copy is the scan itself unless it exceeded ``working_max_side``; then it was
    already downscaled once, and these pixels differ slightly from the crops' (resampled twice)."""
    width, height = int(row.scaled_width), int(row.scaled_height)
    image, _ = decode.scaled_image(row.image_path, width, height, row.image_path)
    mask, _ = decode.scaled_mask(row.mask_path, width, height, row.mask_path)
    return np.array(image), np.array(mask)  # writable copies of libvips' buffers


def mode_difference(resize_metrics: dict[str, Any], sliding_metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Per class: IoU when evaluated resized and at native resolution, and sliding − resize
    (percentage points; ``None`` where either is undefined). Thin classes are flagged."""
    for metrics, expected in ((resize_metrics, "resize"), (sliding_metrics, "sliding")):
        if metrics.get("evaluation_mode") != expected:
            raise ValueError(f"expected metrics of mode '{expected}', got '{metrics.get('evaluation_mode')}'")
    rows = []
    for name in [*resize_metrics["per_class"], "mIoU", "damage_mIoU"]:
        if name in resize_metrics["per_class"]:
            a, b = resize_metrics["per_class"][name]["IoU"], sliding_metrics["per_class"][name]["IoU"]
        else:
            a, b = resize_metrics[name], sliding_metrics[name]
        rows.append(
            {
                "class": name,
                "thin": name in THIN_CLASSES,
                "IoU_resize": a,
                "IoU_sliding": b,
                "difference_pp": None if a is None or b is None else 100.0 * (b - a),
            }
        )
    return rows
