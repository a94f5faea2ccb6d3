"""How many scans must a conservator correct before the model gets better on a new collection?

The experiment the corrections loop is judged by, run on a domain shift the project can make: a
leave-one-out fold (say, every Glass scan held out) is the *new collection*. Its artworks are drawn
once, seeded, into a **scored** part, which nobody ever corrects and every figure is scored on, and
a **pool** a conservator could correct. For each order and each k, the first k pool artworks are
"corrected" (their true masks, as a conservator would give them), the fold's model is fine-tuned
on them (mixed with ``replay`` artworks of its own training side, so the old collections are not
forgotten), its best epoch chosen on the fold's inner validation (old collections: the new
collection's scored part is never seen by a choice), and the scored part is scored again. Before
and after are compared on the same artworks with paired bootstrap intervals.

Orders: ``uncertainty`` corrects first the artworks where the fold's model is least sure of itself
(the share of scored pixels whose predicted class has probability below the low-confidence
threshold, as predict's confidence maps count it); ``random`` is a seeded shuffle. The curve says
which helps more for the same number of corrections.

Torch-free: the workflow imports this module when it is parsed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from heritage_damage_seg.data.split import SplitError
from heritage_damage_seg.metrics import HEADLINE_METRICS

ORDERS: tuple[str, ...] = ("uncertainty", "random")
POOL_COLUMNS = ("group", "role", "rows", "low_confidence_pct", "uncertainty_rank", "random_rank")
CURVE_COLUMNS = (
    "order",
    "k",
    "corrected",
    "n_scored_artworks",
    *(
        f"{metric}_{part}"
        for metric in HEADLINE_METRICS
        for part in ("before", "after", "after_low", "after_high", "gain", "gain_low", "gain_high")
    ),
    "mIoU_gain_share",
)


def split_new_collection(
    groups: Sequence[str], scored_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """``(pool, scored)``: the new collection's artwork groups, ``round(scored_fraction × n)`` (at
    least one, at most n − 1) drawn with ``seed`` to be scored, the rest correctable. Sorted."""
    names = sorted(set(groups))
    if len(names) < 2:
        raise SplitError(
            f"the new collection has {len(names)} artwork(s): the curve needs at least one to "
            "correct and one to score"
        )
    n_scored = min(max(1, round(scored_fraction * len(names))), len(names) - 1)
    scored = sorted(random.Random(seed).sample(names, n_scored))
    return sorted(set(names) - set(scored)), scored


def correction_orders(pool: pd.DataFrame, seed: int) -> dict[str, list[str]]:
    """The pool's artworks in each order: ``uncertainty`` (highest low-confidence share first,
    ties by name) and ``random`` (seeded, drawn independently of the uncertainty)."""
    by_name = pool.sort_values("group", kind="stable")
    uncertain = by_name.sort_values("low_confidence_pct", ascending=False, kind="stable")
    shuffled = list(by_name["group"])
    random.Random(seed).shuffle(shuffled)
    return {"uncertainty": list(uncertain["group"]), "random": shuffled}


def check_ks(ks: Sequence[int], pool_size: int, fold: str) -> None:
    """Every k must leave the scored part alone: at most the pool's artworks."""
    too_many = [k for k in ks if k > pool_size]
    if too_many:
        raise SplitError(
            f"correction_curve.ks {list(ks)} asks to correct {max(too_many)} artworks, but the fold "
            f"{fold!r} has {pool_size} correctable artwork(s) (the rest are scored): lower ks, "
            "lower correction_curve.scored_fraction, or use a dataset with more artworks per value"
        )


def replay_groups(fold_split: Mapping[str, Any], n: int, seed: int) -> list[str]:
    """``n`` artworks of the fold's training side (seeded; all of them when it has fewer)."""
    train_groups = sorted(fold_split["train_groups"])
    return sorted(random.Random(seed).sample(train_groups, min(n, len(train_groups))))


def correction_split(
    fold_split: Mapping[str, Any],
    index: pd.DataFrame,
    corrected: Sequence[str],
    scored: Sequence[str],
    replay: Sequence[str],
) -> dict[str, Any]:
    """The split of one fine-tuning: ``train`` = the corrected artworks' images and the replay
    artworks', ``val`` = the fold's inner validation, ``test`` = the scored part's images."""
    if set(corrected) & set(scored):
        raise SplitError(
            f"artworks both corrected and scored: {sorted(set(corrected) & set(scored))}"
        )
    groups = index["group"].astype(str)
    ids = index["id"].astype(str)

    def images(of: Sequence[str]) -> list[str]:
        return sorted(ids[groups.isin(list(of))])

    train_groups = sorted({*corrected, *replay})
    return {
        "family": fold_split["family"],
        "fold": fold_split["fold"],
        "held_out": fold_split["held_out"],
        "grouped_by": "group",
        "selected_on": "val",
        "scored_split": "test",
        "corrected_groups": list(corrected),
        "replay_groups": sorted(replay),
        "train_groups": train_groups,
        "val_groups": sorted(fold_split["val_groups"]),
        "test_groups": sorted(scored),
        "train": images(train_groups),
        "val": sorted(fold_split["val"]),
        "test": images(scored),
        "n_train": len(images(train_groups)),
        "n_val": len(fold_split["val"]),
        "n_test": len(images(scored)),
    }


def restricted(
    units: Sequence[str], confusion: np.ndarray, keep: Sequence[str]
) -> tuple[list[str], np.ndarray]:
    """The per-artwork matrices of ``keep`` only (the fold's evaluation scored the whole new
    collection; the curve scores its scored part)."""
    missing = sorted(set(keep) - set(units))
    if missing:
        raise ValueError(f"the evaluation has no confusion matrices for the artworks {missing}")
    chosen = [i for i, unit in enumerate(units) if unit in set(keep)]
    return [str(units[i]) for i in chosen], np.asarray(confusion)[chosen]


def curve_rows(
    runs: Mapping[tuple[str, int], Sequence[str]], result: Mapping[str, Any], n_scored: int
) -> list[dict[str, Any]]:
    """One row per (order, k) of ``runs`` (→ the artworks corrected) from
    :func:`~heritage_damage_seg.evaluation.bootstrap.bootstrap_models` run on
    ``{"<order> k<k>": …, …, "before": …}`` (``before`` last, so every pair reads fine-tuned −
    before): the figures before and after, the after's interval, the gain with its paired
    interval, and the share of resamples in which the fine-tuned model scores the higher mIoU."""
    models, pairs = result["models"], {(p["a"], p["b"]): p for p in result["pairwise"]}
    rows = []
    for (order, k), corrected in runs.items():
        name = run_name(order, k)
        pair = pairs[(name, "before")]
        row: dict[str, Any] = {
            "order": order,
            "k": k,
            "corrected": ";".join(corrected),
            "n_scored_artworks": n_scored,
        }
        for metric in HEADLINE_METRICS:
            row |= {
                f"{metric}_before": models["before"][metric]["estimate"],
                f"{metric}_after": models[name][metric]["estimate"],
                f"{metric}_after_low": models[name][metric]["low"],
                f"{metric}_after_high": models[name][metric]["high"],
                f"{metric}_gain": pair[metric]["difference"],
                f"{metric}_gain_low": pair[metric]["low"],
                f"{metric}_gain_high": pair[metric]["high"],
            }
        row["mIoU_gain_share"] = pair["mIoU"]["a_wins_share"]
        rows.append(row)
    return rows


def run_name(order: str, k: int) -> str:
    return f"{order} k{k}"


def which_order_helps(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per k present in both orders, which order's fine-tuned model scores the higher mIoU, and
    the mean gain of each order over the ks: the curve's answer, stated with the figures."""
    by_order: dict[str, dict[int, float]] = {}
    for row in rows:
        by_order.setdefault(row["order"], {})[row["k"]] = row["mIoU_after"]
    both = sorted(set.intersection(*(set(v) for v in by_order.values()))) if by_order else []
    mean_gain = {
        order: float(np.mean([r["mIoU_gain"] for r in rows if r["order"] == order]))
        for order in by_order
    }
    return {
        "mean_mIoU_gain": mean_gain,
        "higher_at_k": {str(k): max(by_order, key=lambda order: by_order[order][k]) for k in both},
        "better_on_average": max(mean_gain, key=mean_gain.get) if mean_gain else None,
    }
