"""Leave-one-group-out families: the list of folds and the summary across them.

A family (``material`` or ``content``) has one fold per value of that index.csv column; each fold
trains on all other values (its best epoch chosen on an inner validation carved from them by
artwork) and is scored on the held-out one, which no choice ever sees (see
:func:`heritage_damage_seg.data.split.leave_one_out_split`). One fold's mIoU says how a model does
on
one unseen material; the family's mean, spread and worst fold say how far it generalises, which a
single random split cannot (its validation artworks share materials with the training ones).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from heritage_damage_seg.data.split import LOO_COLUMNS, SplitError, fold_names
from heritage_damage_seg.io import atomic_path, read_json, write_json
from heritage_damage_seg.metrics import HEADLINE_METRICS
from heritage_damage_seg.seeds import mean_std

CSV_COLUMNS = (
    "encoder",
    "statistic",
    "fold",
    "held_out",
    "n_train",
    "n_val",
    "n_test",
    "mIoU",
    "damage_mIoU",
)


def describe_folds(index: pd.DataFrame, family: str) -> dict[str, Any]:
    """The content of ``results/loo_{family}/folds.json``: every fold with its image and group counts.

    Checked with :func:`~heritage_damage_seg.data.split.fold_names`, so a family that cannot be
    built
    (missing values, a group spanning two values, a single value) fails here, before any training.
    """
    if family not in LOO_COLUMNS:
        raise SplitError(
            f"unknown leave-one-out family {family!r}; choose from {', '.join(LOO_COLUMNS)}"
        )
    ids, groups, values = (index[c].astype(str).tolist() for c in ("id", "group", family))
    folds = fold_names(ids, groups, values, column=family)
    rows = []
    for name, value in folds.items():
        held = index[family].astype(str) == value
        rows.append(
            {
                "fold": name,
                "held_out": value,
                "n_test": int(held.sum()),  # held out: scored only
                "n_train": int((~held).sum()),
                "n_test_groups": int(index.loc[held, "group"].nunique()),
                "n_train_groups": int(index.loc[~held, "group"].nunique()),
            }
        )
    return {"family": family, "n_folds": len(rows), "folds": rows}


def _fold_row(
    family: str, fold: Mapping[str, Any], split_file: str | os.PathLike[str]
) -> dict[str, Any]:
    """A fold's sizes from its split.json, which must hold out what folds.json says."""
    split = read_json(split_file)
    if (
        split.get("held_out") != fold["held_out"]
        or split.get("n_test") != fold["n_test"]
        or split["n_train"] + split["n_val"] != fold["n_train"]
    ):
        raise SplitError(
            f"{split_file} holds out {split.get('held_out')!r} ({split.get('n_test')} images), "
            f"folds.json says {fold['held_out']!r} ({fold['n_test']}): rerun the {family} family"
        )
    return {
        "fold": fold["fold"],
        "held_out": fold["held_out"],
        "n_train": split["n_train"],
        "n_val": split["n_val"],
        "n_test": split["n_test"],
        "n_train_groups": len(split["train_groups"]),
        "n_val_groups": len(split["val_groups"]),
        "n_test_groups": len(split["test_groups"]),
    }


def summarise(
    family: str,
    folds: Sequence[Mapping[str, Any]],
    metrics_files: Mapping[str, Mapping[str, str | os.PathLike[str]]],
    split_files: Mapping[str, str | os.PathLike[str]],
) -> dict[str, Any]:
    """Per encoder: every fold's mIoU and damage mIoU, their mean and std across folds, the worst fold.

    ``folds`` is ``folds.json``'s list; ``metrics_files[encoder][fold]`` a fold's metrics.json;
    ``split_files[fold]`` its split.json, whose counts must match the folds list and the metrics
    (a stale file from other data would otherwise be summarised silently). The std is the sample
    standard deviation (n − 1), null with one fold; the worst fold is the one of lowest mIoU.
    """
    fold_rows = [_fold_row(family, fold, split_files[fold["fold"]]) for fold in folds]
    encoders = []
    for encoder, per_fold in metrics_files.items():
        scored = []
        for fold in fold_rows:
            metrics = read_json(per_fold[fold["fold"]])
            if metrics["n_images"] != fold["n_test"]:
                raise SplitError(
                    f"{per_fold[fold['fold']]} scored {metrics['n_images']} images, the fold holds out "
                    f"{fold['n_test']}: rerun it"
                )
            scored.append(
                {
                    **{k: fold[k] for k in ("fold", "held_out", "n_train", "n_val", "n_test")},
                    **{metric: metrics[metric] for metric in HEADLINE_METRICS},
                }
            )
        entry: dict[str, Any] = {"encoder": encoder, "folds": scored}
        for metric in HEADLINE_METRICS:
            entry[f"{metric}_mean"], entry[f"{metric}_std"] = mean_std([s[metric] for s in scored])
        ranked = [s for s in scored if s["mIoU"] is not None]
        entry["worst_fold"] = min(ranked, key=lambda s: s["mIoU"]) if ranked else None
        encoders.append(entry)
    return {
        "family": family,
        "n_folds": len(fold_rows),
        "definitions": {
            "std": "sample standard deviation across folds (n - 1); null with one fold",
            "worst_fold": "the fold of lowest mIoU",
        },
        "folds": fold_rows,
        "encoders": encoders,
    }


def summary_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The summary as one long table: a ``fold`` row per encoder and fold, then ``mean``, ``std``
    and ``worst`` rows per encoder (``worst`` names its fold)."""
    rows = []
    for entry in summary["encoders"]:
        for fold in entry["folds"]:
            rows.append({"encoder": entry["encoder"], "statistic": "fold", **fold})
        for statistic in ("mean", "std"):
            rows.append(
                {
                    "encoder": entry["encoder"],
                    "statistic": statistic,
                    "mIoU": entry[f"mIoU_{statistic}"],
                    "damage_mIoU": entry[f"damage_mIoU_{statistic}"],
                }
            )
        if entry["worst_fold"] is not None:
            rows.append({"encoder": entry["encoder"], "statistic": "worst", **entry["worst_fold"]})
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS)).astype(
        {"n_train": "Int64", "n_val": "Int64", "n_test": "Int64"}
    )


def write_summary(
    summary: Mapping[str, Any], json_file: str | os.PathLike[str], csv_file: str | os.PathLike[str]
) -> None:
    write_json(json_file, summary)
    with atomic_path(csv_file) as tmp:
        summary_table(summary).to_csv(tmp, index=False)
