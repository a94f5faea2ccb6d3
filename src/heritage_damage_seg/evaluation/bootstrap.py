"""How sure are we? Bootstrap confidence intervals over the artworks of the scored (test) split.

A resample draws artworks with replacement and sums their per-artwork confusion matrices
into one dataset-level matrix, from which mIoU and damage mIoU are computed by
:func:`heritage_damage_seg.metrics.headline_figures`, as every other figure is (0/0 classes left
out of the mean).
Every model is scored on the *same* resamples (a paired bootstrap), so the interval of a
difference between two models reflects how their errors co-vary across images.

The unit resampled is the artwork group: an artwork has several rows — its views (the original
scan and its ``_augN`` copies) and, in the ``crops`` training view, the crops of each — whose errors
are strongly correlated (the same damage, seen again). Resampling them as if independent would
narrow the intervals by about the square root of the rows per artwork, so the rows of an artwork
are summed first (:func:`per_unit`; the scans are the units for files that predate the groups).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from heritage_damage_seg.metrics import HEADLINE_METRICS, headline_figures


def per_unit(
    ids: Sequence[str], units: Sequence[str], confusion: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """The ``(N, C, C)`` confusion matrices of ``ids`` summed per resampling unit (``units[i]`` is
    the artwork group, or the scan, of ``ids[i]``): the units, sorted, and their ``(U, C, C)``
    matrices. Rows that are their own unit (``units == ids``) come back as they are, sorted."""
    if len(ids) != len(units) or len(ids) != len(confusion):
        raise ValueError("ids, scans and confusion matrices differ in length")
    names, inverse = np.unique(np.asarray([str(s) for s in units]), return_inverse=True)
    summed = np.zeros((len(names), *np.shape(confusion)[1:]), dtype=np.int64)
    np.add.at(summed, inverse, np.asarray(confusion, dtype=np.int64))
    return [str(n) for n in names], summed


def resample_weights(n_images: int, n_resamples: int, seed: int) -> np.ndarray:
    """``(n_resamples, n_images)`` counts: how often each image is drawn in each resample."""
    if n_images < 1:
        raise ValueError("the bootstrap needs at least one scored artwork")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(n_resamples, n_images))
    weights = np.zeros((n_resamples, n_images), dtype=np.int64)
    np.add.at(weights, (np.arange(n_resamples)[:, None], draws), 1)
    return weights


def seed_weights(n_seeds: int, n_resamples: int, seed: int) -> np.ndarray:
    """``(n_resamples, n_seeds)`` counts: how often each training seed is drawn in each resample
    (all ones with a single seed). Drawn from their own generator, so the artwork draws of
    :func:`resample_weights` are the same whatever the number of seeds."""
    if n_seeds == 1:
        return np.ones((n_resamples, 1), dtype=np.int64)
    rng = np.random.default_rng([seed, n_seeds])
    draws = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    weights = np.zeros((n_resamples, n_seeds), dtype=np.int64)
    np.add.at(weights, (np.arange(n_resamples)[:, None], draws), 1)
    return weights


def _seed_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per resample, the ``weights``-weighted mean over seeds of ``(R, S)`` values, NaNs left out."""
    defined = np.isfinite(values)
    total = np.where(defined, values, 0.0) * weights
    count = (defined * weights).sum(axis=1)
    return np.where(count > 0, total.sum(axis=1) / np.maximum(count, 1), np.nan)


def _interval(samples: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None, None
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def _none_if_nan(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def resampling(bootstrap: Mapping[str, Any]) -> dict[str, Any]:
    """The config's ``bootstrap`` section (resamples, seed, confidence) as the keyword arguments
    of :func:`bootstrap_models` and :func:`heritage_damage_seg.evaluation.compare.compare`."""
    return {
        "n_resamples": bootstrap["resamples"],
        "seed": bootstrap["seed"],
        "confidence": bootstrap["confidence"],
    }


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
    them in the result.

    Seed repeats: ``(S, U, C, C)`` matrices hold one run per training seed (the same seeds, in
    the same order, for every model). A resample then draws the artworks *and* the seeds with
    replacement (the same draws for every model), and its figure is the mean over the drawn seeds
    of each seed's figure on the drawn artworks; the estimate is the mean over seeds. The intervals
    and ``a_wins_share`` then cover both the choice of test artworks and training randomness. Pairs
    are ordered as given, so
    pass the models ranked best first: ``a_wins_share`` is the share of resamples in which model
    ``a`` scores strictly higher than ``b``.
    """
    if not per_image:
        return {
            "n_resamples": n_resamples,
            "seed": seed,
            "confidence": confidence,
            "models": {},
            "pairwise": [],
        }
    names = list(per_image)
    stacks = aligned_stacks(per_image, split)
    n_units, n_seeds = next(iter(stacks.values())).shape[1], next(iter(stacks.values())).shape[0]
    weights = resample_weights(n_units, n_resamples, seed).astype(np.float64)
    drawn_seeds = seed_weights(n_seeds, n_resamples, seed).astype(np.float64)
    point, samples = {}, {}
    for name, stack in stacks.items():
        point[name], samples[name] = _model_figures(stack, weights, drawn_seeds)
    models = {
        name: {
            metric: {
                "estimate": _none_if_nan(point[name][metric]),
                **dict(zip(("low", "high"), _interval(samples[name][metric], confidence))),
            }
            for metric in HEADLINE_METRICS
        }
        for name in names
    }
    pairwise = [_pair(a, b, point, samples, confidence) for a, b in combinations(names, 2)]
    method = f"percentile bootstrap over {split} {unit}s (all rows of each {unit} summed)"
    if n_seeds > 1:
        method += f" × {n_seeds} training seeds (drawn with replacement; mean over the drawn seeds)"
    return {
        "n_images": n_units,  # resampling units (kept under its old name)
        "n_units": n_units,
        "n_resamples": n_resamples,
        "seed": seed,
        "confidence": confidence,
        "unit": unit,
        "n_seeds": n_seeds,
        "scored_split": split,
        "method": method + ", paired across models",
        "models": models,
        "pairwise": pairwise,
    }


def aligned_stacks(
    per_image: dict[str, tuple[list[str], np.ndarray]], split: str
) -> dict[str, np.ndarray]:
    """Every model's matrices as (seeds, units, C, C), units in one sorted order; refuses models
    scored on other units or trained with another number of seeds."""
    names = list(per_image)
    reference = sorted(str(i) for i in per_image[names[0]][0])
    stacks = {}
    for name, (ids, confusion) in per_image.items():
        ids = [str(i) for i in ids]
        if sorted(ids) != reference:
            raise ValueError(f"{name} was evaluated on other {split} images than {names[0]}")
        order = np.argsort(ids, kind="stable")
        confusion = np.asarray(confusion, dtype=np.int64)
        stacks[name] = confusion[:, order] if confusion.ndim == 4 else confusion[None, order]
    n_seeds = {stack.shape[0] for stack in stacks.values()}
    if len(n_seeds) > 1:
        raise ValueError(
            f"the models were trained with different numbers of seeds: {sorted(n_seeds)}"
        )
    return stacks


def _model_figures(
    stack: np.ndarray, weights: np.ndarray, drawn_seeds: np.ndarray
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """One model's point estimate (mean over seeds of each seed's figure on all units) and its
    resampled figures (per resample: the mean over the drawn seeds on the drawn units)."""
    n_resamples, n_units, n_seeds = weights.shape[0], stack.shape[1], stack.shape[0]
    per_seed_samples: dict[str, list[np.ndarray]] = {metric: [] for metric in HEADLINE_METRICS}
    per_seed_point: dict[str, list[float]] = {metric: [] for metric in HEADLINE_METRICS}
    for run in stack:  # one training seed
        flat = run.reshape(n_units, -1).astype(np.float64)
        figures = headline_figures((weights @ flat).reshape(n_resamples, *run.shape[1:]))
        full = headline_figures(run.sum(axis=0, keepdims=True))
        for metric in HEADLINE_METRICS:
            per_seed_samples[metric].append(figures[metric])
            per_seed_point[metric].append(float(full[metric][0]))
    samples = {
        m: _seed_mean(np.stack(per_seed_samples[m], axis=1), drawn_seeds) for m in HEADLINE_METRICS
    }
    point = {
        m: float(_seed_mean(np.asarray([per_seed_point[m]]), np.ones((1, n_seeds)))[0])
        for m in HEADLINE_METRICS
    }
    return point, samples


def _pair(
    a: str,
    b: str,
    point: dict[str, dict[str, float]],
    samples: dict[str, dict[str, np.ndarray]],
    confidence: float,
) -> dict[str, Any]:
    """``a`` − ``b`` on the shared resamples: the difference, its interval, who wins how often."""
    entry: dict[str, Any] = {"a": a, "b": b}
    for metric in HEADLINE_METRICS:
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
    return entry
