import numpy as np
import pytest

from heritage_damage_seg.classes import IGNORE_INDEX
from heritage_damage_seg.data import class_weights

# 16 classes; counts chosen so that frequencies are exact: total 1000 pixels.
COUNTS = np.array([800, 100, 50, 40, 10] + [0] * 11)
FREQ = COUNTS / 1000


def test_pixel_counts_ignore_background():
    masks = np.array(
        [[[0, 0, 1], [IGNORE_INDEX, 2, 2]], [[15, IGNORE_INDEX, 0], [0, 0, 0]]], dtype=np.uint8
    )
    counts = class_weights.pixel_counts(masks, chunk=1)
    assert counts.tolist() == [6, 1, 2] + [0] * 12 + [1]


@pytest.mark.parametrize(
    "method, expected_present",
    [
        ("inverse_frequency", [1 / 0.8, 1 / 0.1, 1 / 0.05, 1 / 0.04, 1 / 0.01]),
        ("inverse_sqrt_frequency", [1 / np.sqrt(f) for f in (0.8, 0.1, 0.05, 0.04, 0.01)]),
        ("enet", [1 / np.log(1.02 + f) for f in (0.8, 0.1, 0.05, 0.04, 0.01)]),
        ("median_frequency", [0.05 / f for f in (0.8, 0.1, 0.05, 0.04, 0.01)]),
        ("uniform", [1.0] * 5),
    ],
)
def test_methods_on_hand_computed_frequencies(method, expected_present):
    result = class_weights.compute(COUNTS, method)
    weights = np.array(result["weights"])
    assert weights[:5] == pytest.approx(expected_present)
    if method != "uniform":
        assert (weights[5:] == 0).all()  # never-seen classes get no weight
    assert result["frequencies"][:5] == pytest.approx(FREQ[:5].tolist())
    assert result["pixel_counts"] == COUNTS.tolist()
    assert result["method"] == method


def test_seed_method_as_its_code_computed_it():
    raw = np.log1p(np.sqrt(1 / (FREQ + 1e-7)))
    expected = np.clip(raw / raw.mean() * 10, 0.08, 3.0)
    result = class_weights.compute(COUNTS, "inverse_sqrt_log_scaled")
    assert result["weights"] == pytest.approx(expected.tolist())


def test_seed_method_ratio_on_artefact_like_frequencies_is_small():
    # ARTeFACT-like shares: Clean 87.5 %, the rest tiny: every damage class clips to 3.0.
    freq = np.array([0.875, 0.037, 0.049] + [0.0035] * 13)
    counts = np.round(freq / freq.sum() * 1e9).astype(np.int64)
    result = class_weights.compute(counts, "inverse_sqrt_log_scaled")
    assert result["weights"][1:] == pytest.approx([3.0] * 15)
    assert result["max_min_ratio"] < 1.5  # not the 36.4× the prototype's README claimed


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="median_frequency"):
        class_weights.compute(COUNTS, "inverse_log")


def test_all_background_split_is_an_error():
    with pytest.raises(ValueError, match="no labelled pixels"):
        class_weights.compute(np.zeros(16, dtype=np.int64), "enet")
