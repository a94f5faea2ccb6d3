"""Seed repeats: each encoder trained once per seed of ``training.seeds``.

One training run says nothing about training randomness: 'A beats B' may be a seed. The first
seed's run lives where it always did (``results/{encoder}/``: the checkpoint ``predict`` and
``export`` use, its predictions and plots); every further seed beside it in
``results/{encoder}/seed_<seed>/``. ``results/{encoder}/metrics.json`` stays the file users type:
its figures are the first seed's, and its ``seeds`` block names every seed it covers with the
mean, the standard deviation (n − 1) and each seed's mIoU and damage mIoU. The comparison's
intervals cover both the test artworks and the seeds
(:func:`heritage_damage_seg.evaluation.bootstrap.bootstrap_models`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from heritage_damage_seg.metrics import HEADLINE_METRICS


def training_seeds(training: Mapping[str, Any]) -> list[int]:
    """``training.seeds`` (each encoder is trained once per seed), or ``[training.seed]`` when unset."""
    seeds = training.get("seeds") or [training["seed"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"training.seeds lists a seed twice: {list(seeds)}")
    return [int(s) for s in seeds]


def seed_run(encoder: str, seed: int, seeds: Sequence[int], results: str = "results") -> str:
    """The folder of one seed's run: ``results/{encoder}`` for the first seed, else ``…/seed_<seed>``."""
    return f"{results}/{encoder}" if seed == seeds[0] else f"{results}/{encoder}/seed_{seed}"


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n − 1) over the values present (seeds, folds)."""
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    mean = sum(present) / len(present)
    if len(present) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in present) / (len(present) - 1))


def seed_summary(per_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """The ``seeds`` block of metrics.json from each seed's metrics (first seed first)."""
    seeds = [int(s) for s in per_seed]
    block: dict[str, Any] = {
        "seeds": seeds,
        "n_seeds": len(seeds),
        "figures_of_seed": seeds[0],
        "std": "sample standard deviation across seeds (n - 1); null with one seed",
    }
    for metric in HEADLINE_METRICS:
        values = {str(s): per_seed[s].get(metric) for s in seeds}
        mean, std = mean_std(list(values.values()))
        block[metric] = {"mean": mean, "std": std, "per_seed": values}
    return block
