"""Seeded train/validation/test split over artworks, never over files.

Every view of one artwork (the original scan and its offline-augmented ``_augN`` copies) shares
a group, and a group lies wholly on one side: the prototype's split permuted files, so copies of a
validation artwork were trained on and its validation figures leaked.

Besides the default split, leave-one-out families (:func:`leave_one_out_split`) hold out one
material or one kind of content at a time, with the same rule on groups.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np


class SplitError(ValueError):
    pass


def grouped_split(
    ids: Sequence[str],
    groups: Sequence[str],
    *,
    val_fraction: float,
    seed: int,
    test_fraction: float = 0.0,
) -> dict[str, Any]:
    """Seeded train / val / test split over artwork groups.

    ``round(test_fraction × groups)`` randomly chosen groups form ``test`` (at least one when
    ``test_fraction > 0``), ``round(val_fraction × groups)`` of the rest form ``val`` (at least
    one), and at least one group is left to train on. Everything that chooses (the best epoch,
    ``predict.encoder: best``, any tuning) reads ``val``; everything reported scores ``test``.
    With ``test_fraction`` 0 (the prototype's protocol) ``test`` is empty and the reported figures are
    scored on the split they were selected on (see :func:`scored_side`).

    Deterministic for a given seed and set of ids, whatever their order on disk.
    """
    if len(ids) != len(groups):
        raise SplitError("ids and groups differ in length")
    if not 0.0 < val_fraction < 1.0:
        raise SplitError(f"split.val_fraction must be strictly between 0 and 1, got {val_fraction}")
    if not 0.0 <= test_fraction < 1.0:
        raise SplitError(f"split.test_fraction must be at least 0 and below 1, got {test_fraction}")
    if val_fraction + test_fraction >= 1.0:
        raise SplitError(
            f"split.val_fraction + split.test_fraction is {val_fraction + test_fraction:g}: "
            "it must stay below 1 to leave artworks to train on"
        )
    unique_groups = sorted(set(groups))
    sides = 3 if test_fraction > 0 else 2
    if len(unique_groups) < sides:
        raise SplitError(
            f"the dataset has {len(unique_groups)} artwork group(s): a train/validation"
            f"{'/test' if sides == 3 else ''} split needs at least {'three' if sides == 3 else 'two'}; "
            "add images or check the metadata's group column"
            + ("" if sides == 2 else " (or set split.test_fraction: 0)")
        )
    n_groups = len(unique_groups)
    rng = np.random.default_rng(seed)
    shuffled = [unique_groups[i] for i in rng.permutation(n_groups)]
    n_test = min(max(1, round(test_fraction * n_groups)), n_groups - 2) if test_fraction > 0 else 0
    n_val = min(max(1, round(val_fraction * n_groups)), n_groups - n_test - 1)
    test_groups = set(shuffled[:n_test])
    val_groups = set(shuffled[n_test : n_test + n_val])
    train_groups = set(unique_groups) - test_groups - val_groups
    train = sorted(i for i, g in zip(ids, groups) if g in train_groups)
    val = sorted(i for i, g in zip(ids, groups) if g in val_groups)
    test = sorted(i for i, g in zip(ids, groups) if g in test_groups)
    return {
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "grouped_by": "group",
        "selected_on": "val",
        "scored_split": "test" if test else "val",
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(test),
        "train_groups": sorted(train_groups),
        "val_groups": sorted(val_groups),
        "test_groups": sorted(test_groups),
        "train": train,
        "val": val,
        "test": test,
    }


#: What metrics.json, the comparison and the report say when the figures were scored on the split
#: they were selected on (split.test_fraction: 0, the prototype's protocol).
SELECTED_ON_SCORED_NOTE = (
    "these figures were scored on the validation split that also chose the best epoch "
    "(split.test_fraction: 0, the prototype's protocol): they are optimistic by an unknown amount"
)


def scored_side(split: dict[str, Any]) -> str:
    """The side of ``split`` whose figures are reported: ``test`` when it has images, else ``val``
    (the prototype's protocol, ``split.test_fraction: 0``, and split files without a test side)."""
    return "test" if split.get("test") else "val"


def split_word(record: dict[str, Any]) -> str:
    """How figures name the split a metrics.json or model_comparison.json scored: ``test``, or
    ``validation`` where the figures were scored on the split they were selected on."""
    return "test" if record.get("scored_split", "val") == "test" else "validation"


def protocol_record(split: dict[str, Any]) -> dict[str, Any]:
    """``scored_split``, ``selected_on`` and, where they coincide, the note saying so."""
    scored = scored_side(split)
    record: dict[str, Any] = {"scored_split": scored, "selected_on": "val"}
    record["protocol_note"] = (
        SELECTED_ON_SCORED_NOTE
        if scored == "val"
        else (
            "best epoch chosen on the validation split; figures scored on the untouched test split"
        )
    )
    return record


# --------------------------------------------------------------------------------------------
# Leave-one-group-out families
#
# There are no official splits, and one random 80/20 split says little about how a model fares on
# a material or a kind of picture it has never seen. A leave-one-out family holds out, in turn,
# every value of one metadata column (all Glass scans, then all Canvas scans, …) and trains on the
# rest. Artwork groups still never cross sides: a group whose views carry two values is an error.

#: The index.csv columns a leave-one-out family may be built over (config split.leave_one_out).
LOO_COLUMNS: tuple[str, ...] = ("material", "content")

#: What :func:`fold_name` produces: the Snakemake wildcard constraint of ``{fold}``.
FOLD_NAME_PATTERN = r"[A-Za-z0-9_-]+"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def fold_name(value: str) -> str:
    """The directory name of the fold holding out ``value``.

    Every run of characters other than ASCII letters, digits, ``-`` and ``_`` becomes one ``_``,
    and ``_`` at either end is dropped: ``Lime plaster`` → ``Lime_plaster``,
    ``Film emulsion`` → ``Film_emulsion``. Paths and wildcards then need no quoting, and a value
    cannot climb out of its folder (``../x`` → ``x``).
    """
    name = _UNSAFE.sub("_", value).strip("_")
    if not name:
        raise SplitError(
            f"the value {value!r} has no letter or digit to name a fold directory after"
        )
    return name


def fold_names(
    ids: Sequence[str], groups: Sequence[str], values: Sequence[str], *, column: str
) -> dict[str, str]:
    """The folds of the leave-one-``column``-out family: fold name → held-out value, sorted by name.

    Raises :class:`SplitError` where no honest family exists: images without a value (they would
    have to be silently trained on or dropped), an artwork group whose views carry two values (it
    would sit on both sides), two values with one directory name, or fewer than two values (the
    only fold would leave nothing to train on).
    """
    if not len(ids) == len(groups) == len(values):
        raise SplitError("ids, groups and values differ in length")
    missing = [i for i, v in zip(ids, values) if not str(v).strip()]
    if missing:
        raise SplitError(
            f"{len(missing)} image(s) have no {column} (e.g. {', '.join(sorted(missing)[:5])}): a "
            f"leave-one-{column}-out family needs one for every image; fill the metadata's {column} "
            f"column or remove {column} from split.leave_one_out"
        )
    values_of_group: dict[str, set[str]] = {}
    for group, value in zip(groups, values):
        values_of_group.setdefault(group, set()).add(value)
    mixed = {g: sorted(v) for g, v in values_of_group.items() if len(v) > 1}
    if mixed:
        shown = "; ".join(f"{g}: {', '.join(v)}" for g, v in sorted(mixed.items())[:5])
        raise SplitError(
            f"{len(mixed)} artwork group(s) have views of more than one {column} ({shown}): holding "
            f"one {column} out would put the artwork on both sides; fix the metadata"
        )
    folds: dict[str, str] = {}
    for value in sorted(set(values)):
        name = fold_name(value)
        if name in folds:
            raise SplitError(
                f"the {column} values {folds[name]!r} and {value!r} both give the fold name {name!r}"
            )
        folds[name] = value
    if len(folds) < 2:
        raise SplitError(
            f"the dataset has only {len(folds)} {column} ({', '.join(map(repr, folds.values())) or 'none'}): "
            f"holding it out leaves nothing to train on; remove {column} from split.leave_one_out"
        )
    return dict(sorted(folds.items()))


def leave_one_out_split(
    ids: Sequence[str],
    groups: Sequence[str],
    values: Sequence[str],
    *,
    column: str,
    fold: str,
    val_fraction: float = 0.1,
    seed: int = 42,
) -> dict[str, Any]:
    """The split of one fold: ``test`` = every image whose ``column`` is the held-out value.

    ``fold`` is a fold name (:func:`fold_name` of the value). The other images are the fold's
    training side, from which a seeded inner validation of ``round(val_fraction × its groups)``
    artwork groups (at least one) is carved, grouped like :func:`grouped_split`: ``val`` chooses
    the fold's best epoch, ``train`` is trained on, and the held-out value is only scored. The
    result has the keys of :func:`grouped_split` (``train``, ``val``, ``test``, their groups and
    counts), plus ``family``, ``fold`` and ``held_out``. Ids are sorted, so the result depends
    only on the data, not on file order.
    """
    folds = fold_names(ids, groups, values, column=column)
    if fold not in folds:
        raise SplitError(
            f"no {column} fold {fold!r} in this dataset; the folds are: {', '.join(folds)} "
            f"(directory names: characters other than A-Z a-z 0-9 - _ become _)"
        )
    held_out = folds[fold]
    test = sorted(i for i, v in zip(ids, values) if v == held_out)
    rest = [(i, g) for i, g, v in zip(ids, groups, values) if v != held_out]
    if not test:  # unreachable while folds come from the data; kept as the contract
        raise SplitError(f"the {column} fold {fold!r} ({held_out!r}) has no images")
    if not rest:
        raise SplitError(
            f"holding out the {column} fold {fold!r} ({held_out!r}) leaves nothing to train on"
        )
    try:
        inner = grouped_split(
            [i for i, _ in rest], [g for _, g in rest], val_fraction=val_fraction, seed=seed
        )
    except SplitError as error:
        raise SplitError(
            f"holding out the {column} fold {fold!r} ({held_out!r}) leaves too little to carve an inner "
            f"validation split from: {error}"
        ) from error
    test_groups = sorted({g for g, v in zip(groups, values) if v == held_out})
    assert not set(test_groups) & (set(inner["train_groups"]) | set(inner["val_groups"])), (
        "one value per group"
    )
    return {
        "family": column,
        "fold": fold,
        "held_out": held_out,
        "grouped_by": "group",
        "seed": seed,
        "val_fraction": val_fraction,
        "selected_on": "val",
        "scored_split": "test",
        "n_train": inner["n_train"],
        "n_val": inner["n_val"],
        "n_test": len(test),
        "train_groups": inner["train_groups"],
        "val_groups": inner["val_groups"],
        "test_groups": test_groups,
        "train": inner["train"],
        "val": inner["val"],
        "test": test,
    }


def loo_encoders(chosen: Sequence[str] | None, encoders: Sequence[str]) -> list[str]:
    """The encoders trained in every fold (config split.leave_one_out_encoders; null = all).

    A family costs folds × encoders trainings, so it can be run for fewer encoders than the
    default split; each must still be configured under ``encoders`` (its batch size, weights)."""
    if chosen is None:
        return list(encoders)
    unknown = [e for e in chosen if e not in encoders]
    if unknown:
        raise SplitError(
            f"split.leave_one_out_encoders: {', '.join(unknown)} not among the configured encoders "
            f"({', '.join(encoders)}): add it under encoders or leave it out"
        )
    return list(chosen)
