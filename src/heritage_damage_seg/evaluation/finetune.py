"""Fine-tuning a trained model on a corrections dataset (issue 26, part 3 on real data).

A conservator's corrections (the folder dataset ``import-corrections`` writes, masks with 255 where
nobody reviewed) become a second dataset beside the one the model was trained on. Its artworks are
drawn once, seeded, into three parts, as :func:`~heritage_damage_seg.data.split.grouped_split` draws
any dataset: **train** (the corrections the model learns from), **choose** (the split's ``val``: the
fine-tuning's best epoch is chosen on them) and **scored** (the split's ``test``: scans nobody
trained or chose on, where the model is scored before and after). ``replay`` artworks of the
original split's *training* side are mixed into train, so the old collections are not forgotten;
the original validation and test artworks are never touched.

Both datasets' cache rows go into one combined cache
(:func:`~heritage_damage_seg.data.cache_writer.combine_caches`), so the train and evaluate code read
one cache and one split as always. "Before" is the original model evaluated on the same scored
scans as the fine-tuned one; the comparison's intervals are a paired percentile bootstrap over the
scored artworks (:func:`~heritage_damage_seg.evaluation.bootstrap.bootstrap_models`).

Torch-free: the workflow imports this module when it is parsed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from heritage_damage_seg.data.split import SplitError, grouped_split
from heritage_damage_seg.evaluation.correction_curve import replay_groups
from heritage_damage_seg.metrics import HEADLINE_METRICS

#: The two models of the comparison, as bootstrap_models names them ("before" last: the pair reads
#: fine-tuned − before).
AFTER, BEFORE = "fine-tuned", "before"
COMPARISON_COLUMNS = (
    "metric",
    "before",
    "before_low",
    "before_high",
    "after",
    "after_low",
    "after_high",
    "gain",
    "gain_low",
    "gain_high",
    "gain_share",
    "n_scored_artworks",
)


def finetune_split(
    corrections: pd.DataFrame,
    original_split: Mapping[str, Any],
    original: pd.DataFrame,
    *,
    scored_fraction: float,
    choose_fraction: float,
    replay: int,
    seed: int,
    corrections_file: str = "the corrections' index.csv",
) -> dict[str, Any]:
    """The fine-tuning's split over the combined cache.

    ``corrections`` and ``original`` are the two caches' indexes (id, group), ``original_split``
    the split the model was trained on. The corrections' artworks are drawn by
    :func:`grouped_split` (``test_fraction`` = ``scored_fraction``, ``val_fraction`` =
    ``choose_fraction``, at least one artwork each); ``replay`` artworks of the original training
    side (all of them when it has fewer), with every one of their ids that the original split
    trained on, join train. An id or an artwork in both datasets is refused: it would be trained on
    and scored as two things at once."""
    ids = corrections["id"].astype(str).tolist()
    groups = corrections["group"].astype(str).tolist()
    original_ids = set(original["id"].astype(str))
    shared = sorted(set(ids) & original_ids)
    if shared:
        raise SplitError(
            f"{corrections_file}: ids {shared[:5]} are also in the training dataset: a corrected scan "
            "of the training data would be trained on twice (rename the corrections' ids, or correct "
            "scans the model has not seen)"
        )
    shared_groups = sorted(set(groups) & set(original["group"].astype(str)))
    if shared_groups:
        raise SplitError(
            f"{corrections_file}: artworks {shared_groups[:5]} are also in the training dataset: give "
            "the corrections their own group names in metadata.csv"
        )
    if len(set(groups)) < 3:
        raise SplitError(
            f"{corrections_file}: the corrections have {len(set(groups))} artwork(s); fine-tuning "
            "needs at least three: one to train on, one to choose on, one to score"
        )
    drawn = grouped_split(
        ids,
        groups,
        val_fraction=choose_fraction,
        test_fraction=scored_fraction,
        seed=seed,
    )
    replayed = replay_groups(original_split, replay, seed)
    trained_before = set(original_split["train"])
    original_groups = original["group"].astype(str)
    replay_ids = sorted(
        i
        for i in original.loc[original_groups.isin(replayed), "id"].astype(str)
        if i in trained_before
    )
    train = sorted([*drawn["train"], *replay_ids])
    return {
        "seed": seed,
        "scored_fraction": scored_fraction,
        "choose_fraction": choose_fraction,
        "grouped_by": "group",
        "selected_on": "val",
        "scored_split": "test",
        "corrected_groups": drawn["train_groups"],
        "choose_groups": drawn["val_groups"],
        "scored_groups": drawn["test_groups"],
        "replay_groups": replayed,
        "replay": replay_ids,
        "train_groups": sorted([*drawn["train_groups"], *replayed]),
        "val_groups": drawn["val_groups"],
        "test_groups": drawn["test_groups"],
        "train": train,
        "val": drawn["val"],
        "test": drawn["test"],
        "n_train": len(train),
        "n_val": drawn["n_val"],
        "n_test": drawn["n_test"],
    }


def combined_ids(split: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """What the combined cache holds: ``(corrections ids, replay ids)``, each sorted."""
    replay = sorted(split["replay"])
    corrections = sorted({*split["train"], *split["val"], *split["test"]} - set(replay))
    return corrections, replay


def comparison_rows(result: Mapping[str, Any], n_scored: int) -> list[dict[str, Any]]:
    """One row per headline metric from :func:`bootstrap_models` run on ``{AFTER: …, BEFORE: …}``:
    the figure before and after with their intervals, the gain (after − before) with its paired
    interval and the share of resamples in which the fine-tuned model scores higher."""
    models = result["models"]
    pair = next(p for p in result["pairwise"] if (p["a"], p["b"]) == (AFTER, BEFORE))
    rows = []
    for metric in HEADLINE_METRICS:
        before, after, gain = models[BEFORE][metric], models[AFTER][metric], pair[metric]
        rows.append(
            {
                "metric": metric,
                "before": before["estimate"],
                "before_low": before["low"],
                "before_high": before["high"],
                "after": after["estimate"],
                "after_low": after["low"],
                "after_high": after["high"],
                "gain": gain["difference"],
                "gain_low": gain["low"],
                "gain_high": gain["high"],
                "gain_share": gain["a_wins_share"],
                "n_scored_artworks": n_scored,
            }
        )
    return rows


def same_units(
    names: Mapping[str, Sequence[str]], scored_groups: Sequence[str], split_file: str
) -> None:
    """Both evaluations must have scored exactly the split's scored artworks."""
    for model, units in names.items():
        if sorted(units) != sorted(scored_groups):
            raise ValueError(
                f"the {model} model was scored on the artworks {sorted(units)}, but {split_file} "
                f"scores {sorted(scored_groups)}: rerun its evaluation"
            )
