"""Per-class loss weights from the pixel frequencies of the training split.

All methods see the same pixel counts (ground truth 255 excluded). A class that never occurs in
the training split gets weight 0 (it can never be a target), except in the prototype's method, which
is reproduced as it was implemented, epsilon included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from heritage_damage_seg.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES


def pixel_counts(masks: np.ndarray, num_classes: int = NUM_CLASSES, chunk: int = 64) -> np.ndarray:
    """Ground-truth pixels per class over an N×H×W uint8 mask array (memory-mapped is fine)."""
    counts = np.zeros(256, dtype=np.int64)
    for start in range(0, len(masks), chunk):
        counts += np.bincount(np.asarray(masks[start : start + chunk]).reshape(-1), minlength=256)
    counts[IGNORE_INDEX] = 0
    return counts[:num_classes]


def _over_present(freq: np.ndarray, formula: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    weights = np.zeros_like(freq)
    present = freq > 0
    weights[present] = formula(freq[present])
    return weights


def inverse_sqrt_log_scaled(freq: np.ndarray) -> np.ndarray:
    """The prototype's method, as its code computed it: log1p(sqrt(1/(f + 1e-7))), scaled to a mean of 10,
    clipped to [0.08, 3.0]. With ARTeFACT-like frequencies every damage class clips to 3.0, so the
    max/min ratio is about 1.3×, not the 36.4× its README states."""
    raw = np.log1p(np.sqrt(1.0 / (freq + 1e-7)))
    return np.clip(raw / raw.mean() * 10.0, 0.08, 3.0)


def inverse_frequency(freq: np.ndarray) -> np.ndarray:
    return _over_present(freq, lambda f: 1.0 / f)


def inverse_sqrt_frequency(freq: np.ndarray) -> np.ndarray:
    return _over_present(freq, lambda f: 1.0 / np.sqrt(f))


def enet(freq: np.ndarray) -> np.ndarray:
    """ENet (Paszke et al. 2016): 1 / ln(1.02 + p)."""
    return _over_present(freq, lambda f: 1.0 / np.log(1.02 + f))


def median_frequency(freq: np.ndarray) -> np.ndarray:
    """Median-frequency balancing (Eigen & Fergus 2015): median(f) / f over present classes."""
    return _over_present(freq, lambda f: np.median(f) / f)


def uniform(freq: np.ndarray) -> np.ndarray:
    return np.ones_like(freq)


METHODS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "inverse_sqrt_log_scaled": inverse_sqrt_log_scaled,
    "inverse_frequency": inverse_frequency,
    "inverse_sqrt_frequency": inverse_sqrt_frequency,
    "enet": enet,
    "median_frequency": median_frequency,
    "uniform": uniform,
}


def compute(counts: np.ndarray, method: str) -> dict[str, Any]:
    """The weights file's content: counts, frequencies, weights and the method that made them."""
    if method not in METHODS:
        raise ValueError(
            f"class_weights.method '{method}' is not known: choose one of {', '.join(sorted(METHODS))}"
        )
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        raise ValueError(
            "the training split has no labelled pixels (all masks are 255): check the masks"
        )
    freq = counts / total
    weights = METHODS[method](freq)
    positive = weights[weights > 0]
    return {
        "method": method,
        "class_names": list(CLASS_NAMES[: len(counts)]),
        "pixel_counts": counts.tolist(),
        "frequencies": freq.tolist(),
        "weights": weights.tolist(),
        "max_min_ratio": float(positive.max() / positive.min()) if len(positive) else None,
        "absent_classes": [CLASS_NAMES[i] for i in np.flatnonzero(counts == 0)],
    }
