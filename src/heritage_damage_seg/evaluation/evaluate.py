"""Evaluating a trained model on the split it is reported on: metrics.json, per-image confusion
matrices and the predicted masks as index PNGs.

The scored side is ``test`` (:func:`heritage_damage_seg.data.split.scored_side`): the best epoch was
chosen on ``val``, so the figures are not tuned on the images they report. Only a split without a
test side (``split.test_fraction: 0``, the prototype's protocol) is scored on ``val``, and metrics.json
then says in words that the figures were selected on the split they report (``scored_split``,
``selected_on``, ``protocol_note``).

Two modes (``evaluation_mode`` in metrics.json says which ran); both apply the model as it was
trained (:class:`~heritage_damage_seg.model.scan_view.ModelView`), they differ in what is scored:

* ``cache`` (the prototype's figures): the model's own inputs, the cached ``image_size``² images, against
  the cached masks (nearest-neighbour resized); predictions are at the cache's resolution. In the
  ``crops`` training view (``prepare.view``) the cache holds crops, so this scores the validation
  *crops*: parts of a scan are scored several times where crops overlap, parts no crop covers not
  at all.
* ``native``: each validation scan whole, from its working copy (``index.csv``'s
  ``image_path``/``mask_path``), predicted exactly as ``heritage-damage-seg predict`` would (the
  resize view: squeezed to ``image_size``², logits brought back to the scan's size; the crops
  view: the sliding window at ``crop_scale``), scored against its mask at the scan's resolution.
  This is the figure a user of the damage maps gets. A scan above ``prepare.working_max_side``
  is scored on its downscaled working copy; ``scored_resolution`` in metrics.json says so.

The two differ by what resizing the *masks* does to the figures (thin classes — scratch, hair,
cracks — shrink or vanish in a 384 px mask), not by the model's scale: compare them with
:func:`mode_difference`.

``per_image_confusion.npz`` holds one confusion matrix per scored row (``ids``), the scan each
row belongs to (``scans``) and the scan's artwork group (``groups``), so the bootstrap resamples
artworks: all views and crops of one artwork together.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from heritage_damage_seg import device as devices
from heritage_damage_seg.classes import NUM_CLASSES
from heritage_damage_seg.data import decode
from heritage_damage_seg.data.cache import PreparedCache, load_cache
from heritage_damage_seg.data.split import protocol_record
from heritage_damage_seg.io import atomic_path, read_json, write_json
from heritage_damage_seg.metrics import (
    HEADLINE_METRICS,
    confusion_matrix,
    summarise,
    trivial_baseline_cm,
)
from heritage_damage_seg.model.inputs import to_model_input
from heritage_damage_seg.model.models import ENCODERS, count_parameters, load_checkpoint
from heritage_damage_seg.model.scan_view import ModelView, of_cache
from heritage_damage_seg.model.sliding import SlidingSettings
from heritage_damage_seg.seeds import seed_summary
from heritage_damage_seg.training.batches import ResidentSplit

EVALUATION_MODES = ("cache", "native")
THIN_CLASSES = ("Scratch", "Hair", "Cracks")

log = logging.getLogger(__name__)


@dataclass
class Scored:
    """What one evaluation mode scored: a confusion matrix per row, the row's id, scan and artwork group."""

    ids: np.ndarray
    scans: np.ndarray
    groups: np.ndarray
    per_image: np.ndarray  # rows × C × C int64
    forward_seconds: float
    resolution: dict[str, Any]


@dataclass
class Evaluation:
    """A trained model, checked against the cache it is scored on, on its device."""

    checkpoint_path: str
    checkpoint: dict[str, Any]
    model: nn.Module
    view: ModelView
    cache: PreparedCache
    device: torch.device
    amp_dtype: torch.dtype | None
    batch_size: int
    mode: str
    sliding: SlidingSettings


def load_evaluation(
    checkpoint_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    *,
    batch_size: int,
    mixed_precision: bool,
    device_preference: str,
    mode: str,
    sliding: SlidingSettings | None,
) -> Evaluation:
    """The model and its cache, refusing a cache of another size or view than it was trained on."""
    if mode not in EVALUATION_MODES:
        raise ValueError(f"evaluation mode '{mode}' must be one of {', '.join(EVALUATION_MODES)}")
    device = devices.pick_device(device_preference)
    model, checkpoint = load_checkpoint(checkpoint_path, device)
    view = ModelView.from_checkpoint(checkpoint, str(checkpoint_path))
    cache = load_cache(cache_dir)
    if cache.size != view.image_size:
        raise ValueError(
            f"{checkpoint_path} was trained at {view.image_size} px but the cache {cache_dir} is "
            f"{cache.size} px: retrain, or rebuild the cache at the training resolution"
        )
    cache_view = of_cache(cache.view, cache.size, cache.input_scale)
    if cache_view != view:
        raise ValueError(
            f"{checkpoint_path} sees scans as: {view.describe()}; the cache {cache_dir} was prepared "
            f"as: {cache_view.describe()}. Retrain on this cache, or rebuild it with the model's "
            "prepare.view and prepare.crop_scale"
        )
    return Evaluation(
        str(checkpoint_path),
        checkpoint,
        model,
        view,
        cache,
        device,
        devices.autocast_dtype(device, mixed_precision),
        batch_size,
        mode,
        sliding or SlidingSettings(batch_size=batch_size),
    )


def scored_rows(run: Evaluation, split_file: str | os.PathLike[str]) -> tuple[dict, ResidentSplit]:
    """The protocol record and the scored side (``test``; ``val`` under the prototype's protocol)."""
    split = read_json(split_file)
    protocol = protocol_record(split)
    scored_ids = split[protocol["scored_split"]]
    if not scored_ids:
        raise ValueError(
            f"{split_file}: the {protocol['scored_split']} side is empty: nothing to score"
        )
    cache = run.cache
    return protocol, ResidentSplit(
        cache.images, cache.masks, cache.positions(scored_ids), run.device
    )


def _warm_up(run: Evaluation, scored: ResidentSplit) -> None:
    """One untimed batch: the first call pays for allocator warm-up and kernel selection."""
    first_images, _ = next(scored.batches(run.batch_size))
    with devices.autocast(run.device, run.amp_dtype):
        run.model(to_model_input(first_images))


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
    mode: str = "cache",
    sliding: SlidingSettings | None = None,
    seed_metrics: Sequence[str | os.PathLike[str]] = (),
) -> dict[str, Any]:
    """Scores the checkpoint on the split's scored side in ``mode``; writes metrics.json, the
    per-image confusion matrices and the predicted masks (see the module docstring).

    ``seed_metrics``: the metrics.json of the same encoder's other seeds (training.seeds); this
    run's metrics.json names every seed it covers, with the mean, std and each seed's figures
    (:func:`heritage_damage_seg.seeds.seed_summary`)."""
    run = load_evaluation(
        checkpoint_path,
        cache_dir,
        batch_size=batch_size,
        mixed_precision=mixed_precision,
        device_preference=device_preference,
        mode=mode,
        sliding=sliding,
    )
    protocol, rows = scored_rows(run, split_file)
    predictions_dir = Path(predictions_dir)
    predictions_dir.mkdir(parents=True, exist_ok=True)
    _warm_up(run, rows)
    if mode == "native":
        scored = _score_native(run, run.cache.index.iloc[rows.positions], predictions_dir)
    else:
        scored = _score_cache(run, rows, predictions_dir)
    metrics = {**protocol, **_metrics(run, scored)}
    others = [read_json(path) for path in seed_metrics]
    runs = {metrics["seed"]: metrics, **{other["seed"]: other for other in others}}
    metrics["seeds"] = seed_summary(runs)
    _write_per_image(scored, per_image_confusion_file)
    write_json(metrics_file, metrics)
    _log_metrics(metrics)
    return metrics


def _write_per_image(scored: Scored, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            ids=scored.ids.astype(str),
            scans=scored.scans.astype(str),
            groups=scored.groups.astype(str),
            confusion=scored.per_image,
        )


def _log_metrics(metrics: dict[str, Any]) -> None:
    log.info(
        "%s (%s split, %s, scored %s): mIoU %.2f%% (damage %.2f%%), trivial baseline %.2f%%, "
        "%.2f ms/image on %s",
        metrics["encoder"],
        metrics["scored_split"],
        metrics["evaluation_mode"],
        metrics["resolution"],
        100 * (metrics["mIoU"] or 0),
        100 * (metrics["damage_mIoU"] or 0),
        100 * (metrics["trivial_baseline"]["mIoU"] or 0),
        metrics["inference_ms_per_image"],
        metrics["device"],
    )


def _score_cache(run: Evaluation, val: ResidentSplit, predictions_dir: Path) -> Scored:
    """The cached rows of the scored split, batch by batch; only the forward passes are timed."""
    model, cache, device, amp_dtype = run.model, run.cache, run.device, run.amp_dtype
    rows = cache.index.iloc[val.positions]
    ids = rows["id"].to_numpy()
    per_image = np.zeros((len(val), NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    forward_seconds, done = 0.0, 0
    for images, masks in val.batches(run.batch_size):
        devices.synchronize(device)
        start = time.perf_counter()
        with devices.autocast(device, amp_dtype):
            predictions = model(to_model_input(images)).argmax(1)
        devices.synchronize(device)
        forward_seconds += time.perf_counter() - start
        for prediction, mask in zip(predictions, masks):
            per_image[done] = confusion_matrix(prediction, mask).cpu().numpy()
            _save_prediction(
                predictions_dir / f"{ids[done]}.png", prediction.to(torch.uint8).cpu().numpy()
            )
            done += 1
    if cache.view == "crops":
        description = f"{cache.size}x{cache.size} crops at {cache.input_scale:g} x native"
    else:
        description = f"{cache.size}x{cache.size} (each scan and mask resized to the training size)"
    resolution = {"description": description, "at_native": False}
    groups = rows["group"].astype(str).to_numpy()
    return Scored(
        ids,
        cache.scans().iloc[val.positions].to_numpy(),
        groups,
        per_image,
        forward_seconds,
        resolution,
    )


def _score_native(run: Evaluation, rows: pd.DataFrame, predictions_dir: Path) -> Scored:
    """Each scan of the scored split once, whole, predicted as ``predict`` does and scored at its working
    copy's resolution; the timing covers the whole prediction (decode, model, resizing back)."""
    model, view, device, amp_dtype = run.model, run.view, run.device, run.amp_dtype
    scans = rows.drop_duplicates("scan") if view.view == "crops" else rows
    ids = (scans["scan"] if view.view == "crops" else scans["id"]).to_numpy()
    per_image = np.zeros((len(scans), NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    forward_seconds, fractions = 0.0, []
    for n, row in enumerate(scans.itertuples(index=False)):
        native = (int(row.width), int(row.height))
        devices.synchronize(device)
        start = time.perf_counter()
        prediction = view.predict(
            model,
            row.image_path,
            name=row.image_path,
            native_size=native,
            settings=run.sliding,
            device=device,
            amp_dtype=amp_dtype,
        )
        devices.synchronize(device)
        forward_seconds += time.perf_counter() - start
        mask = decode.full_mask(row.mask_path, str(row.mask_path))
        if mask.shape != prediction.shape:
            raise ValueError(
                f"{row.image_path} and {row.mask_path} differ in size: rebuild the cache"
            )
        per_image[n] = confusion_matrix(
            torch.from_numpy(prediction), torch.from_numpy(mask)
        ).numpy()
        _save_prediction(predictions_dir / f"{ids[n]}.png", prediction)
        fractions.append(mask.shape[1] / native[0])
        if (n + 1) % max(1, len(ids) // 10) == 0 or n + 1 == len(ids):
            log.info("native evaluation: %d/%d scans, %.1f s", n + 1, len(ids), forward_seconds)
    return Scored(
        ids,
        ids,
        scans["group"].astype(str).to_numpy(),
        per_image,
        forward_seconds,
        _native_resolution(fractions),
    )


def _native_resolution(fractions: list[float]) -> dict[str, Any]:
    """What "native" really was: working copies of scans above ``working_max_side`` are smaller."""
    downscaled = [f for f in fractions if f < 0.999]
    if not downscaled:
        return {"description": "native", "at_native": True, "scans_downscaled": 0}
    return {
        "description": f"native, except {len(downscaled)} of {len(fractions)} scans above "
        f"prepare.working_max_side scored on working copies down to {min(downscaled):.3g} x native",
        "at_native": False,
        "scans_downscaled": len(downscaled),
        "smallest_fraction_of_native": min(downscaled),
    }


def _save_prediction(path: Path, prediction: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(prediction, mode="L").save(tmp, format="PNG")


def _metrics(run: Evaluation, scored: Scored) -> dict[str, Any]:
    checkpoint, cache, view, mode = run.checkpoint, run.cache, run.view, run.mode
    cm = scored.per_image.sum(axis=0)
    summary = summarise(cm)
    baseline = summarise(trivial_baseline_cm(cm))
    encoder = checkpoint["encoder"]
    return {
        "encoder": encoder,
        "smp_encoder": ENCODERS[encoder].smp_encoder,
        "family": ENCODERS[encoder].family,
        "checkpoint": run.checkpoint_path,
        "checkpoint_epoch": checkpoint["epoch"],
        "seed": checkpoint.get("settings", {}).get("seed"),  # the training seed of these figures
        "evaluation_mode": mode,
        "view": cache.view,
        "crop_scale": cache.input_scale if cache.view == "crops" else None,
        "scan_view": view.record(),
        "image_size": cache.size,
        "resolution": scored.resolution["description"],
        "scored_resolution": scored.resolution,
        "sliding": asdict(run.sliding) if mode == "native" and view.view == "crops" else None,
        "n_images": len(scored.ids),
        "n_scans": len(set(scored.scans)),
        **summary,
        "trivial_baseline": {
            "description": "predicts Clean for every pixel",
            "mIoU": baseline["mIoU"],
            "damage_mIoU": baseline["damage_mIoU"],
            "pixel_accuracy": baseline["pixel_accuracy"],
        },
        "inference_ms_per_image": 1000.0 * scored.forward_seconds / max(1, len(scored.ids)),
        "inference_batch_size": run.batch_size,
        "device": devices.describe(run.device),
        "precision": devices.precision_name(run.amp_dtype),
        "trained_precision": checkpoint.get("precision", "unrecorded"),
        "parameters": count_parameters(run.model),
        "confusion_matrix": cm.tolist(),
    }


def mode_difference(
    cache_metrics: dict[str, Any], native_metrics: dict[str, Any]
) -> list[dict[str, Any]]:
    """Per class: IoU scored on the cache and at native resolution, and native − cache
    (percentage points; ``None`` where either is undefined). Thin classes are flagged."""
    for metrics, expected in ((cache_metrics, "cache"), (native_metrics, "native")):
        if metrics.get("evaluation_mode") != expected:
            raise ValueError(
                f"expected metrics of mode '{expected}', got '{metrics.get('evaluation_mode')}'"
            )
    rows = []
    for name in [*cache_metrics["per_class"], *HEADLINE_METRICS]:
        if name in cache_metrics["per_class"]:
            a, b = cache_metrics["per_class"][name]["IoU"], native_metrics["per_class"][name]["IoU"]
        else:
            a, b = cache_metrics[name], native_metrics[name]
        rows.append(
            {
                "class": name,
                "thin": name in THIN_CLASSES,
                "IoU_cache": a,
                "IoU_native": b,
                "difference_pp": None if a is None or b is None else 100.0 * (b - a),
            }
        )
    return rows
