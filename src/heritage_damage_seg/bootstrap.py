"""How sure are we? Bootstrap confidence intervals over the artworks of the scored (test) split.

A resample draws artworks with replacement and sums their per-artwork confusion matrices
into one dataset-level matrix, from which mIoU and damage mIoU are computed with the same
definitions as :func:`heritage_damage_seg.metrics.summarise` (0/0 classes left out of the mean).
Every model is scored on the *same* resamples (a paired bootstrap), so the interval of a
difference between two models reflects how their errors co-vary across images.

The unit resampled is the artwork group: an artwork has several rows — its views (the original
scan and its ``_augN`` copies) and, in the ``crops`` training view, the crops of each — whose errors
are strongly correlated (the same damage, seen again). Resampling them as if independent would
narrow the intervals by about the square root of the rows per artwork, so the rows of an artwork
are summed first (:func:`per_unit`; :func:`per_scan` for files that predate the groups).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from heritage_damage_seg.classes import DAMAGE_CLASSES

METRICS: tuple[str, ...] = ("mIoU", "damage_mIoU")


def per_unit(ids: Sequence[str], units: Sequence[str], confusion: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The ``(N, C, C)`` confusion matrices of ``ids`` summed per resampling unit (``units[i]`` is
    the artwork group, or the scan, of ``ids[i]``): the units, sorted, and their ``(U, C, C)``
    matrices. Rows that are their own unit (``units == ids``) come back as they are, sorted."""
    if len(ids) != len(units) or len(ids) != len(confusion):
        raise ValueError("ids, scans and confusion matrices differ in length")
    names, inverse = np.unique(np.asarray([str(s) for s in units]), return_inverse=True)
    summed = np.zeros((len(names), *np.shape(confusion)[1:]), dtype=np.int64)
    np.add.at(summed, inverse, np.asarray(confusion, dtype=np.int64))
    return [str(n) for n in names], summed


#: Summing the crops of each scan: :func:`per_unit` with the scans as units.
per_scan = per_unit


def resample_weights(n_images: int, n_resamples: int, seed: int) -> np.ndarray:
    """``(n_resamples, n_images)`` counts: how often each image is drawn in each resample."""
    if n_images < 1:
        raise ValueError("the bootstrap needs at least one scored artwork")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(n_resamples, n_images))
    weights = np.zeros((n_resamples, n_images), dtype=np.int64)
    np.add.at(weights, (np.arange(n_resamples)[:, None], draws), 1)
    return weights


def miou_from_confusions(confusions: np.ndarray) -> dict[str, np.ndarray]:
    """mIoU and damage mIoU of each of a stack of ``(R, C, C)`` confusion matrices (NaN: no class defined)."""
    confusions = np.asarray(confusions, dtype=np.float64)
    tp = np.diagonal(confusions, axis1=1, axis2=2)
    union = confusions.sum(axis=2) + confusions.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)
    damage = [c for c in DAMAGE_CLASSES if c < iou.shape[1]]

    def nanmean(values: np.ndarray) -> np.ndarray:
        defined = ~np.isnan(values)
        count = defined.sum(axis=1)
        total = np.where(defined, values, 0.0).sum(axis=1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    return {"mIoU": nanmean(iou), "damage_mIoU": nanmean(iou[:, damage])}


def _interval(samples: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None, None
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def _none_if_nan(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def bootstrap_models(
    per_image: dict[str, tuple[list[str], np.ndarray]],
    n_resamples: int = 1000,
    seed: int = 42,
    confidence: float = 0.95,
    unit: str = "artwork",
    split: str = "test",
) -> dict[str, Any]:
    """Percentile intervals per model and for each pairwise difference, on shared resamples.

    ``per_image`` maps a model name to ``(unit names, (U, C, C) confusion matrices)``, one per
    resampling unit (an artwork: sum its views and crops with :func:`per_unit` first); every model
    must have been evaluated on the same units (in any order). ``unit`` and ``split`` only name
    them in the result. Pairs are ordered as given, so
    pass the models ranked best first: ``a_wins_share`` is the share of resamples in which model
    ``a`` scores strictly higher than ``b``.
    """
    if not per_image:
        return {"n_resamples": n_resamples, "seed": seed, "confidence": confidence, "models": {}, "pairwise": []}
    names = list(per_image)
    reference = sorted(per_image[names[0]][0])
    stacks = {}
    for name, (ids, confusion) in per_image.items():
        ids = [str(i) for i in ids]
        if sorted(ids) != reference:
            raise ValueError(f"{name} was evaluated on other {split} images than {names[0]}")
        order = np.argsort(ids, kind="stable")
        stacks[name] = np.asarray(confusion, dtype=np.int64)[order]
    weights = resample_weights(len(reference), n_resamples, seed).astype(np.float64)

    point: dict[str, dict[str, float]] = {}
    samples: dict[str, dict[str, np.ndarray]] = {}
    models: dict[str, Any] = {}
    for name, stack in stacks.items():
        flat = stack.reshape(len(reference), -1).astype(np.float64)
        resampled = (weights @ flat).reshape(n_resamples, *stack.shape[1:])
        samples[name] = miou_from_confusions(resampled)
        full = miou_from_confusions(stack.sum(axis=0, keepdims=True))
        point[name] = {metric: float(full[metric][0]) for metric in METRICS}
        models[name] = {}
        for metric in METRICS:
            low, high = _interval(samples[name][metric], confidence)
            models[name][metric] = {"estimate": _none_if_nan(point[name][metric]), "low": low, "high": high}

    pairwise = []
    for a, b in combinations(names, 2):
        entry: dict[str, Any] = {"a": a, "b": b}
        for metric in METRICS:
            difference = samples[a][metric] - samples[b][metric]
            finite = difference[np.isfinite(difference)]
            low, high = _interval(difference, confidence)
            entry[metric] = {
                "difference": _none_if_nan(point[a][metric] - point[b][metric]),
                "low": low,
                "high": high,
                "a_wins_share": float((finite > 0).mean()) if finite.size else None,
                "ties_share": float((finite == 0).mean()) if finite.size else None,
            }
        pairwise.append(entry)
    return {
        "n_images": len(reference),  # resampling units (kept under its old name)
        "n_units": len(reference),
        "n_resamples": n_resamples,
        "seed": seed,
        "confidence": confidence,
        "unit": unit,
        "scored_split": split,
        "method": f"percentile bootstrap over {split} {unit}s (all rows of a {unit} summed), paired across models",
        "models": models,
        "pairwise": pairwise,
    }
