"""Bootstrap confidence intervals on constructed per-image confusion matrices with known answers."""

import json

import numpy as np
import pytest

from heritage_damage_seg.classes import CLASS_NAMES, DAMAGE_CLASSES, NUM_CLASSES
from heritage_damage_seg.evaluation.bootstrap import (
    bootstrap_models,
    per_unit,
    resample_weights,
)
from heritage_damage_seg.evaluation.compare import compare
from heritage_damage_seg.metrics import headline_figures, summarise


def image_cm(correct: int, wrong: int, damage_class: int = 9, pixels: int = 100) -> np.ndarray:
    """One image: ``pixels`` Clean pixels all right, and ``correct + wrong`` pixels of a damage class
    of which ``wrong`` are predicted Clean."""
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    cm[0, 0] = pixels
    cm[damage_class, damage_class] = correct
    cm[damage_class, 0] = wrong
    return cm


def test_resample_weights_draw_every_image_count_times_and_are_seeded():
    weights = resample_weights(7, 50, seed=3)
    assert weights.shape == (50, 7) and (weights.sum(axis=1) == 7).all()
    assert (weights == resample_weights(7, 50, seed=3)).all()
    assert not (weights == resample_weights(7, 50, seed=4)).all()


def test_the_stacked_headline_figures_are_the_means_of_the_defined_class_ious():
    """headline_figures (what the bootstrap resamples) against the per-class IoUs summarise
    reports, averaged here by hand."""
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 20, size=(5, NUM_CLASSES, NUM_CLASSES))
    stack[2, 3, :] = 0
    stack[2, :, 3] = 0  # class 3 absent: left out of the mean
    stack[4, 1:, :] = 0
    stack[4, :, 1:] = 0  # no damage class at all: damage mIoU undefined
    fast = headline_figures(stack)
    for i, cm in enumerate(stack):
        ious = [c["IoU"] for c in summarise(cm)["per_class"].values()]
        damage = [ious[c] for c in DAMAGE_CLASSES if ious[c] is not None]
        assert fast["mIoU"][i] == pytest.approx(np.mean([v for v in ious if v is not None]))
        if damage:
            assert fast["damage_mIoU"][i] == pytest.approx(np.mean(damage))
        else:
            assert np.isnan(fast["damage_mIoU"][i]) and summarise(cm)["damage_mIoU"] is None
    assert summarise(stack[2])["per_class"][CLASS_NAMES[3]]["IoU"] is None


def test_a_clearly_better_model_has_the_higher_interval_and_wins_every_resample():
    n = 30
    ids = [f"img{i:02d}" for i in range(n)]
    rng = np.random.default_rng(1)
    # Model a finds 80–90 of 100 damage pixels per image, model b only 20–30.
    good = np.stack([image_cm(c, 100 - c) for c in rng.integers(80, 91, n)])
    poor = np.stack([image_cm(c, 100 - c) for c in rng.integers(20, 31, n)])
    # b is given in another image order: the bootstrap must pair images by id.
    order = rng.permutation(n)
    result = bootstrap_models(
        {"good": (ids, good), "poor": ([ids[i] for i in order], poor[order])},
        n_resamples=500,
        seed=7,
    )
    a, b = result["models"]["good"], result["models"]["poor"]
    for metric in ("mIoU", "damage_mIoU"):
        assert a[metric]["low"] <= a[metric]["estimate"] <= a[metric]["high"]
        assert b[metric]["low"] <= b[metric]["estimate"] <= b[metric]["high"]
        assert b[metric]["high"] < a[metric]["low"]
    assert a["mIoU"]["estimate"] == pytest.approx(summarise(good.sum(axis=0))["mIoU"])
    (pair,) = result["pairwise"]
    assert (pair["a"], pair["b"]) == ("good", "poor")
    assert 0 < pair["mIoU"]["low"] <= pair["mIoU"]["difference"] <= pair["mIoU"]["high"]
    assert pair["mIoU"]["a_wins_share"] == 1.0 and pair["damage_mIoU"]["a_wins_share"] == 1.0


def test_models_that_trade_wins_per_image_get_an_interval_around_zero():
    n = 40
    ids = [str(i) for i in range(n)]
    # a is better on the even images, b on the odd ones, by the same margin: no real winner.
    a = np.stack([image_cm(70 if i % 2 == 0 else 30, 30 if i % 2 == 0 else 70) for i in range(n)])
    b = np.stack([image_cm(30 if i % 2 == 0 else 70, 70 if i % 2 == 0 else 30) for i in range(n)])
    result = bootstrap_models({"a": (ids, a), "b": (ids, b)}, n_resamples=1000, seed=0)
    (pair,) = result["pairwise"]
    assert pair["mIoU"]["difference"] == pytest.approx(0.0)
    assert pair["mIoU"]["low"] < 0 < pair["mIoU"]["high"]
    assert 0.2 < pair["mIoU"]["a_wins_share"] < 0.8
    # Identical models never win: the share of strict wins is 0 and every resample is a tie.
    same = bootstrap_models({"a": (ids, a), "copy": (ids, a.copy())}, n_resamples=200, seed=0)[
        "pairwise"
    ][0]
    assert same["mIoU"]["a_wins_share"] == 0.0 and same["mIoU"]["ties_share"] == 1.0
    assert same["mIoU"]["low"] == same["mIoU"]["high"] == 0.0


def test_more_images_give_a_narrower_interval_and_the_seed_fixes_it():
    rng = np.random.default_rng(2)
    cms = np.stack([image_cm(c, 100 - c) for c in rng.integers(20, 90, 200)])
    ids = [str(i) for i in range(200)]
    wide = bootstrap_models({"m": (ids[:20], cms[:20])}, n_resamples=500, seed=5)["models"]["m"][
        "mIoU"
    ]
    narrow = bootstrap_models({"m": (ids, cms)}, n_resamples=500, seed=5)["models"]["m"]["mIoU"]
    assert narrow["high"] - narrow["low"] < wide["high"] - wide["low"]
    again = bootstrap_models({"m": (ids, cms)}, n_resamples=500, seed=5)["models"]["m"]["mIoU"]
    assert again == narrow


def test_models_evaluated_on_different_images_are_refused():
    cm = np.stack([image_cm(50, 50)] * 2)
    with pytest.raises(ValueError, match="other test images"):
        bootstrap_models({"a": (["x", "y"], cm), "b": (["x", "z"], cm)}, n_resamples=10, seed=0)


def _write_model(tmp_path, name, ids, scans, groups, confusion, val_miou):
    np.savez_compressed(
        tmp_path / f"{name}.npz",
        ids=np.array(ids),
        scans=np.array(scans),
        groups=np.array(groups),
        confusion=confusion,
    )
    summary = summarise(confusion.sum(axis=0))
    (tmp_path / f"{name}.json").write_text(
        json.dumps(
            {
                "smp_encoder": name,
                "family": "x",
                "mIoU": summary["mIoU"],
                "damage_mIoU": summary["damage_mIoU"],
                "pixel_accuracy": summary["pixel_accuracy"],
                "trivial_baseline": {"mIoU": 0.1},
                "per_class": {},
                "parameters": 1,
                "checkpoint_epoch": 1,
                "inference_ms_per_image": 1.0,
                "device": "cpu",
                "scored_split": "test",
            }
        )
    )
    (tmp_path / f"{name}.csv").write_text(
        f"epoch,train_imgs_per_s,epoch_seconds,val_mIoU\n1,10,1,{val_miou}\n"
    )


def test_identical_views_of_an_artwork_give_the_interval_of_the_artworks_alone(tmp_path):
    """Three identical views per artwork: the comparison's intervals (from per_image_confusion.npz
    with its groups) equal the bootstrap over one matrix per artwork; treating views as
    independent images would make them narrower."""
    rng = np.random.default_rng(11)
    n_artworks, views = 12, 3
    artworks = [f"art{a:02d}" for a in range(n_artworks)]
    ids = [f"{a}_aug{v}" if v else a for a in artworks for v in range(views)]
    groups = [a for a in artworks for _ in range(views)]
    per_artwork = {}
    # Model b is fitted to the validation split (highest val mIoU) but scores lower on test.
    for name, low, high, val_miou in (("a", 60, 90, 0.4), ("b", 30, 70, 0.6)):
        per_artwork[name] = np.stack(
            [image_cm(c, 100 - c) for c in rng.integers(low, high, n_artworks)]
        )
        rows = np.repeat(per_artwork[name], views, axis=0)  # every view errs exactly as its artwork
        _write_model(tmp_path, name, ids, ids, groups, rows, val_miou)
    files = {n: tmp_path / f"{n}.{{}}" for n in per_artwork}
    result = compare(
        {n: str(f).format("json") for n, f in files.items()},
        {n: str(f).format("csv") for n, f in files.items()},
        {n: str(f).format("npz") for n, f in files.items()},
        n_resamples=400,
        seed=9,
    )
    alone = bootstrap_models(
        {n: (artworks, per_artwork[n]) for n in ("a", "b")}, n_resamples=400, seed=9
    )
    assert result["bootstrap"]["unit"] == "artwork" and result["bootstrap"]["n_units"] == n_artworks
    for model in result["models"]:
        for metric in ("mIoU", "damage_mIoU"):
            assert model[f"{metric}_ci_low"] == pytest.approx(
                alone["models"][model["encoder"]][metric]["low"]
            )
            assert model[f"{metric}_ci_high"] == pytest.approx(
                alone["models"][model["encoder"]][metric]["high"]
            )
    (pair,) = result["pairwise"]
    (expected,) = alone["pairwise"]
    assert (pair["a"], pair["b"]) == ("a", "b")
    for metric in ("mIoU", "damage_mIoU"):
        for key in ("difference", "low", "high", "a_wins_share"):
            assert pair[metric][key] == pytest.approx(expected[metric][key])
    # predict's best encoder is chosen on validation, the ranking is on test.
    assert result["models"][0]["encoder"] == "a" and result["best_encoder"] == "b"
    as_images = bootstrap_models(
        {n: (ids, np.repeat(per_artwork[n], views, axis=0)) for n in per_artwork},
        n_resamples=400,
        seed=9,
    )
    width = lambda r: r["models"]["a"]["mIoU"]["high"] - r["models"]["a"]["mIoU"]["low"]  # noqa: E731
    assert width(as_images) < 0.8 * width(alone)


def test_per_unit_sums_the_rows_of_each_artwork():
    confusion = np.stack([image_cm(i, 10 - i) for i in range(5)])
    names, summed = per_unit(
        ["a", "a_aug1", "b", "b_aug1", "b_aug2"], ["a", "a", "b", "b", "b"], confusion
    )
    assert names == ["a", "b"]
    assert np.array_equal(summed[0], confusion[:2].sum(axis=0)) and np.array_equal(
        summed[1], confusion[2:].sum(axis=0)
    )
