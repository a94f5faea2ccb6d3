"""The model comparison across encoders."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from heritage_damage_seg.data.split import SELECTED_ON_SCORED_NOTE
from heritage_damage_seg.evaluation.bootstrap import bootstrap_models, per_unit
from heritage_damage_seg.io import read_json
from heritage_damage_seg.metrics import HEADLINE_METRICS


def compare(
    metrics_files: dict[str, str],
    history_files: dict[str, str | list[str]],
    per_image_files: dict[str, str | list[str]] | None = None,
    n_resamples: int = 1000,
    seed: int = 42,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """The cross-model table: one entry per encoder, ranked by mIoU on the scored split (``test``).

    ``best_encoder`` (what ``predict.encoder: best`` uses) is chosen on the validation split: the
    highest ``val_mIoU`` of the encoder's best epoch (``history.csv``; with seed repeats the mean
    over the seeds' histories, first seed first), never on the test figures
    it reports. ``scored_split``/``selected_on`` say which split each is; where they coincide
    (``split.test_fraction: 0``) ``protocol_note`` says that the figures are optimistic.

    Seed repeats (``training.seeds``): ``per_image_files[encoder]`` lists one file per seed (the
    same seeds for every encoder); mIoU and damage mIoU are then the mean over seeds (metrics.json's
    ``seeds`` block, with ``*_seed_std`` and every seed's figure), and the bootstrap draws artworks
    and seeds, so the intervals and ``a_wins_share`` cover both.

    With ``per_image_files`` (each encoder's ``per_image_confusion.npz``), every model gains
    bootstrap confidence intervals for mIoU and damage mIoU, and the result a ``pairwise`` list:
    the difference between each pair of models (better-ranked first) with its interval and the
    share of resamples the better-ranked model wins (see
    :mod:`heritage_damage_seg.evaluation.bootstrap`).
    The bootstrap resamples artwork groups: the matrices of all views and crops of an artwork are
    summed first (files without ``groups`` fall back to scans).
    """
    models = [
        model_row(encoder, read_json(path), _as_list(history_files[encoder]))
        for encoder, path in metrics_files.items()
    ]
    models.sort(key=lambda m: -(m["mIoU"] if m["mIoU"] is not None else -1.0))
    scored_split = _common_scored_split(models)
    chosen = (
        max(models, key=lambda m: m["val_mIoU"] if m["val_mIoU"] is not None else -1.0)
        if models
        else None
    )
    result: dict[str, Any] = {
        "ranked_by": "mIoU",
        "scored_split": scored_split,
        "selected_on": "val",
        "protocol_note": (
            SELECTED_ON_SCORED_NOTE
            if scored_split == "val"
            else "ranked on the untouched test split; best_encoder chosen on the validation split"
        ),
        "best_encoder": chosen["encoder"] if chosen else None,
        "best_encoder_selected_by": "val_mIoU (validation mIoU of each encoder's best epoch)",
        "models": models,
    }
    if per_image_files:
        per_image, unit = _per_unit_confusions(models, per_image_files)
        bootstrap = bootstrap_models(
            per_image,
            n_resamples=n_resamples,
            seed=seed,
            confidence=confidence,
            unit=unit,
            split=scored_split,
        )
        for model in models:
            for metric, interval in bootstrap["models"][model["encoder"]].items():
                model[f"{metric}_ci_low"] = interval["low"]
                model[f"{metric}_ci_high"] = interval["high"]
        result["bootstrap"] = {
            k: v for k, v in bootstrap.items() if k not in ("models", "pairwise")
        }
        result["pairwise"] = bootstrap["pairwise"]
    return result


def _as_list(paths: str | os.PathLike[str] | list[str]) -> list[str]:
    """One path, or one per seed (first seed first)."""
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)


def best_val_miou(histories: list[pd.DataFrame]) -> float | None:
    """The validation mIoU of each run's best epoch (the checkpoint kept), averaged over seeds:
    what predict's best encoder is chosen on."""
    best = [float(h["val_mIoU"].max()) for h in histories if "val_mIoU" in h]
    best = [v for v in best if np.isfinite(v)]
    return float(np.mean(best)) if best else None


def model_row(encoder: str, metrics: dict[str, Any], history_paths: list[str]) -> dict[str, Any]:
    """One encoder's row of the comparison: test figures (mean over seeds), the validation
    figure it is chosen on, and the first seed's throughput and training time."""
    histories = [pd.read_csv(p) for p in history_paths]
    history = histories[0]
    # Epoch 1 includes start-up (allocation, kernel selection); it is not the steady rate.
    rates = history["train_imgs_per_s"]
    steady = rates.iloc[1:] if len(history) > 1 else rates
    seeds = metrics.get("seeds") or {}
    over_seeds = {
        m: seeds[m]["mean"] if seeds.get("n_seeds", 1) > 1 else metrics[m] for m in HEADLINE_METRICS
    }
    single_seed = [metrics["seed"]] if metrics.get("seed") is not None else []
    return {
        "encoder": encoder,
        "smp_encoder": metrics["smp_encoder"],
        "family": metrics["family"],
        "mIoU": over_seeds["mIoU"],
        "damage_mIoU": over_seeds["damage_mIoU"],
        "seeds": seeds.get("seeds", single_seed),
        "mIoU_seed_std": seeds.get("mIoU", {}).get("std"),
        "damage_mIoU_seed_std": seeds.get("damage_mIoU", {}).get("std"),
        "mIoU_per_seed": seeds.get("mIoU", {}).get("per_seed"),
        "pixel_accuracy": metrics["pixel_accuracy"],
        "trivial_baseline_mIoU": metrics["trivial_baseline"]["mIoU"],
        "scored_split": metrics.get("scored_split", "val"),
        "val_mIoU": best_val_miou(histories),
        "per_class_IoU": {name: c["IoU"] for name, c in metrics["per_class"].items()},
        "parameters": metrics["parameters"],
        "train_imgs_per_s": float(steady.median()),
        "train_seconds": float(history["epoch_seconds"].sum()),
        "epochs": int(history["epoch"].max()),
        "best_epoch": metrics["checkpoint_epoch"],
        "inference_ms_per_image": metrics["inference_ms_per_image"],
        "device": metrics["device"],
    }


def _common_scored_split(models: list[dict[str, Any]]) -> str:
    scored = sorted({m["scored_split"] for m in models})
    if len(scored) > 1:
        raise ValueError(
            f"the encoders were scored on different splits ({', '.join(scored)}): re-evaluate them"
        )
    return scored[0] if scored else "test"


def _per_unit_confusions(
    models: list[dict[str, Any]], per_image_files: dict[str, str | list[str]]
) -> tuple[dict[str, tuple[list[str], np.ndarray]], str]:
    """Each encoder's confusion matrices summed per resampling unit (seeds stacked), in ranked
    order (pairwise differences are better minus worse), and the unit's kind."""
    per_image, units = {}, set()
    for model in models:
        runs = []
        for path in _as_list(per_image_files[model["encoder"]]):  # one file per seed
            unit, names, stack = load_units(path)
            units.add(unit)
            if runs and names != runs[0][0]:
                raise ValueError(
                    f"{path} scored other {unit}s than the first seed's run of {model['encoder']}"
                )
            runs.append((names, stack))
        stacked = runs[0][1] if len(runs) == 1 else np.stack([r[1] for r in runs])
        per_image[model["encoder"]] = (runs[0][0], stacked)
    if len(units) > 1:
        raise ValueError(
            "the encoders' per_image_confusion.npz files differ in kind: re-evaluate them"
        )
    return per_image, units.pop() if units else "artwork"


def load_units(path: str | os.PathLike[str]) -> tuple[str, list[str], np.ndarray]:
    """One per_image_confusion.npz summed per resampling unit: the unit kind, the units, the matrices."""
    # Our own file; allow_pickle only for runs that stored the ids as an object array.
    with np.load(path, allow_pickle=True) as data:
        ids = [str(i) for i in data["ids"]]
        # All views and crops of one artwork are resampled together; older files without
        # `groups` fall back to scans (crops of one scan together), then to rows.
        if "groups" in data.files:
            unit, members = "artwork", [str(i) for i in data["groups"]]
        elif "scans" in data.files:
            unit, members = "scan", [str(i) for i in data["scans"]]
        else:
            unit, members = "scan", ids
        names, stack = per_unit(ids, members, data["confusion"])
    return unit, names, stack
