"""The correction curve: the new collection's scored artworks are never corrected nor chosen on,
each fine-tuning starts from the fold's model, and every figure of curve.csv recomputes from the
saved per-artwork confusion matrices."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import snakemake

from heritage_damage_seg.data.split import SplitError
from heritage_damage_seg.evaluation.bootstrap import bootstrap_models
from heritage_damage_seg.evaluation.compare import load_units
from heritage_damage_seg.evaluation.correction_curve import (
    check_ks,
    correction_orders,
    correction_split,
    curve_rows,
    replay_groups,
    restricted,
    run_name,
    split_new_collection,
)
from heritage_damage_seg.metrics import headline_figures
from heritage_damage_seg.model.models import build_model
from heritage_damage_seg.training.train import start_from_checkpoint

GROUPS = [f"art{i:02d}" for i in range(10)]


def test_the_new_collection_is_drawn_into_disjoint_scored_and_correctable_parts():
    pool, scored = split_new_collection(GROUPS, 0.3, seed=1)
    assert len(scored) == 3 and len(pool) == 7 and not set(pool) & set(scored)
    assert sorted(pool + scored) == GROUPS
    assert split_new_collection(list(reversed(GROUPS)), 0.3, seed=1) == (pool, scored)
    assert split_new_collection(GROUPS, 0.3, seed=2) != (pool, scored)
    # at least one on each side, whatever the fraction
    assert [len(side) for side in split_new_collection(GROUPS[:2], 0.99, seed=0)] == [1, 1]
    with pytest.raises(SplitError, match="at least one to correct and one to score"):
        split_new_collection(["only"], 0.5, seed=0)


def test_uncertainty_order_is_most_unsure_first_and_random_ignores_the_uncertainty():
    pool = pd.DataFrame({"group": GROUPS, "low_confidence_pct": np.linspace(5, 50, len(GROUPS))})
    orders = correction_orders(pool, seed=3)
    assert orders["uncertainty"] == list(reversed(GROUPS))
    assert sorted(orders["random"]) == GROUPS and orders["random"] != orders["uncertainty"]
    flipped = pool.assign(low_confidence_pct=pool["low_confidence_pct"][::-1].to_numpy())
    assert correction_orders(flipped, seed=3)["random"] == orders["random"]


def test_more_corrections_than_the_pool_holds_are_refused_naming_the_key():
    check_ks([1, 2, 4], 4, "Glass")
    with pytest.raises(
        SplitError, match=r"correction_curve.ks \[1, 8\] asks to correct 8.*'Glass' has 4"
    ):
        check_ks([1, 8], 4, "Glass")


def fold_split() -> dict:
    return {
        "family": "material",
        "fold": "Glass",
        "held_out": "Glass",
        "train_groups": ["old0", "old1", "old2"],
        "val_groups": ["oldv"],
        "test_groups": GROUPS[:4],
        "train": ["old0_a", "old1_a", "old2_a"],
        "val": ["oldv_a"],
        "test": [f"{g}_{v}" for g in GROUPS[:4] for v in "ab"],
    }


def test_a_fine_tuning_trains_on_the_corrected_and_replayed_artworks_and_scores_the_rest():
    index = pd.DataFrame(
        [(f"{g}_{v}", g) for g in GROUPS[:4] for v in "ab"]
        + [(f"{g}_a", g) for g in ("old0", "old1", "old2", "oldv")],
        columns=["id", "group"],
    )
    replay = replay_groups(fold_split(), 2, seed=0)
    assert len(replay) == 2 and set(replay) <= {"old0", "old1", "old2"}
    assert replay_groups(fold_split(), 9, seed=0) == ["old0", "old1", "old2"]
    split = correction_split(fold_split(), index, ["art01"], ["art02", "art03"], replay)
    assert split["train"] == sorted(["art01_a", "art01_b", *(f"{g}_a" for g in replay)])
    assert split["val"] == ["oldv_a"] and split["test"] == [
        "art02_a",
        "art02_b",
        "art03_a",
        "art03_b",
    ]
    assert split["scored_split"] == "test" and split["corrected_groups"] == ["art01"]
    with pytest.raises(SplitError, match="both corrected and scored"):
        correction_split(fold_split(), index, ["art02"], ["art02"], [])


def confusions(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 50, size=(n, 16, 16))


def test_curve_rows_read_fine_tuned_minus_before_on_the_same_resamples():
    rng = np.random.default_rng(0)
    names = GROUPS[:6]
    before, after = confusions(rng, 6), confusions(rng, 6)
    after[:, np.arange(16), np.arange(16)] += 400  # a better model: more on the diagonal
    result = bootstrap_models(
        {run_name("random", 2): (names, after), "before": (names, before)}, n_resamples=200
    )
    (row,) = curve_rows({("random", 2): ["art08", "art09"]}, result, n_scored=6)
    expected_before = float(headline_figures(before.sum(0, keepdims=True))["mIoU"][0])
    expected_after = float(headline_figures(after.sum(0, keepdims=True))["mIoU"][0])
    assert row["mIoU_before"] == pytest.approx(expected_before)
    assert row["mIoU_after"] == pytest.approx(expected_after)
    assert row["mIoU_gain"] == pytest.approx(expected_after - expected_before)
    assert 0 < row["mIoU_gain_low"] <= row["mIoU_gain"] <= row["mIoU_gain_high"]
    assert row["mIoU_gain_share"] == 1.0 and row["corrected"] == "art08;art09"


def test_restricting_the_fold_evaluation_keeps_only_the_scored_artworks():
    stack = np.arange(3 * 16 * 16).reshape(3, 16, 16)
    names, kept = restricted(["a", "b", "c"], stack, ["c", "a"])
    assert names == ["a", "c"] and np.array_equal(kept, stack[[0, 2]])
    with pytest.raises(ValueError, match=r"\['z'\]"):
        restricted(["a"], stack[:1], ["z"])


def test_a_fine_tuning_starts_from_the_checkpoint_weights_and_refuses_another_model(tmp_path):
    torch.manual_seed(0)
    trained = build_model("convnext_tiny", image_size=64)
    path = tmp_path / "model_best.pt"
    torch.save(
        {"encoder": "convnext_tiny", "image_size": 64, "epoch": 3,
         "model_state_dict": trained.state_dict()},
        path,
    )  # fmt: skip
    torch.manual_seed(1)
    fresh = build_model("convnext_tiny", image_size=64)
    start_from_checkpoint(fresh, str(path), "convnext_tiny", 64)
    for name, tensor in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name
    refusal = "convnext_tiny model at 64 px, but this fine-tuning trains convnext_tiny at 96"
    with pytest.raises(ValueError, match=refusal):
        start_from_checkpoint(fresh, str(path), "convnext_tiny", 96)


CURVE_CONFIG = """
synthetic: {n_artworks: 30, views_per_artwork: 2, min_side: 64, max_side: 96}
encoders: {convnext_tiny: {batch_size: 4, weights: null}}
correction_curve: {ks: [1, 2], scored_fraction: 0.34, replay: 2, epochs: 1}
"""


@pytest.mark.slow
def test_the_curve_runs_through_snakemake_and_its_figures_recompute(tmp_path):
    layer = tmp_path / "curve.yaml"
    layer.write_text(CURVE_CONFIG)
    target = "results/correction_curve/convnext_tiny/curve.csv"
    result = snakemake(target, workdir=tmp_path, configs=(layer,))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    out = tmp_path / "results/correction_curve/convnext_tiny"
    pool = pd.read_csv(out / "pool.csv", dtype={"group": str})
    scored = sorted(pool.loc[pool["role"] == "scored", "group"])
    correctable = pool[pool["role"] == "pool"]
    assert len(scored) == 1 and len(correctable) == 2  # 3 artworks per material
    assert correctable["low_confidence_pct"].between(0, 100).all()
    curve = json.loads((out / "curve.json").read_text())
    fold = curve["fold"]
    fold_dir = tmp_path / f"results/loo_material/{fold}/convnext_tiny"
    rows = pd.read_csv(out / "curve.csv")
    assert sorted(zip(rows["order"], rows["k"])) == sorted(
        (o, k) for o in ("uncertainty", "random") for k in (1, 2)
    )
    index = pd.read_csv(tmp_path / "results/cache/index.csv", dtype={"id": str, "group": str})
    scored_ids = set(index.loc[index["group"].isin(scored), "id"])
    _, names, stack = load_units(fold_dir / "per_image_confusion.npz")
    before = headline_figures(restricted(names, stack, scored)[1].sum(0, keepdims=True))
    assert rows["mIoU_before"].to_numpy() == pytest.approx(float(before["mIoU"][0]))
    for row in rows.itertuples():
        run = out / row.order / f"k{row.k}"
        split = json.loads((run / "split.json").read_text())
        assert set(split["test"]) == scored_ids
        assert not (set(split["train"]) | set(split["val"])) & scored_ids
        assert (
            split["corrected_groups"] == row.corrected.split(";")
            and len(split["corrected_groups"]) == row.k
        )
        checkpoint = torch.load(run / "model_best.pt", map_location="cpu", weights_only=False)
        assert checkpoint["settings"]["init_checkpoint"].endswith(
            f"loo_material/{fold}/convnext_tiny/model_best.pt"
        )
        _, names, stack = load_units(run / "per_image_confusion.npz")
        after = headline_figures(np.asarray(stack).sum(0, keepdims=True))
        assert row.mIoU_after == pytest.approx(float(after["mIoU"][0]))
        assert row.mIoU_gain == pytest.approx(row.mIoU_after - row.mIoU_before)
    uncertain_first = correctable.sort_values("uncertainty_rank")["group"].iloc[0]
    assert rows.query("order == 'uncertainty' and k == 1")["corrected"].item() == uncertain_first
    assert correctable.loc[correctable["uncertainty_rank"] == 1, "low_confidence_pct"].item() == (
        correctable["low_confidence_pct"].max()
    )
    assert (out / "curve.png").stat().st_size > 10_000
