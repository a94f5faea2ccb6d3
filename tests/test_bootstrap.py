"""Bootstrap confidence intervals on constructed per-image confusion matrices with known answers."""

import numpy as np
import pytest

from heritage_damage_seg.bootstrap import bootstrap_models, miou_from_confusions, resample_weights
from heritage_damage_seg.classes import NUM_CLASSES
from heritage_damage_seg.metrics import summarise


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


def test_vectorised_miou_matches_summarise():
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 20, size=(5, NUM_CLASSES, NUM_CLASSES))
    stack[2, 3, :] = 0
    stack[2, :, 3] = 0  # class 3 absent: left out of the mean
    fast = miou_from_confusions(stack)
    for i, cm in enumerate(stack):
        assert fast["mIoU"][i] == pytest.approx(summarise(cm)["mIoU"])
        assert fast["damage_mIoU"][i] == pytest.approx(summarise(cm)["damage_mIoU"])


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
        {"good": (ids, good), "poor": ([ids[i] for i in order], poor[order])}, n_resamples=500, seed=7
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
    same = bootstrap_models({"a": (ids, a), "copy": (ids, a.copy())}, n_resamples=200, seed=0)["pairwise"][0]
    assert same["mIoU"]["a_wins_share"] == 0.0 and same["mIoU"]["ties_share"] == 1.0
    assert same["mIoU"]["low"] == same["mIoU"]["high"] == 0.0


def test_more_images_give_a_narrower_interval_and_the_seed_fixes_it():
    rng = np.random.default_rng(2)
    cms = np.stack([image_cm(c, 100 - c) for c in rng.integers(20, 90, 200)])
    ids = [str(i) for i in range(200)]
    wide = bootstrap_models({"m": (ids[:20], cms[:20])}, n_resamples=500, seed=5)["models"]["m"]["mIoU"]
    narrow = bootstrap_models({"m": (ids, cms)}, n_resamples=500, seed=5)["models"]["m"]["mIoU"]
    assert narrow["high"] - narrow["low"] < wide["high"] - wide["low"]
    again = bootstrap_models({"m": (ids, cms)}, n_resamples=500, seed=5)["models"]["m"]["mIoU"]
    assert again == narrow


def test_models_evaluated_on_different_images_are_refused():
    cm = np.stack([image_cm(50, 50)] * 2)
    with pytest.raises(ValueError, match="other validation images"):
        bootstrap_models({"a": (["x", "y"], cm), "b": (["x", "z"], cm)}, n_resamples=10, seed=0)
