"""How unsure a model is of each cached scan, from its own predictions alone (no true mask): the
share of pixels whose predicted class has a probability below the low-confidence threshold,
counted as predict's confidence maps count it
(:func:`~heritage_damage_seg.inference.confidence.confidence_summary`). The correction curve
ranks the scans a conservator should correct first by it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from heritage_damage_seg import device as devices
from heritage_damage_seg.evaluation.evaluate import Evaluation
from heritage_damage_seg.inference.confidence import confidence_summary, to_uint8
from heritage_damage_seg.model.inputs import to_model_input
from heritage_damage_seg.training.batches import ResidentSplit


@torch.inference_mode()
def low_confidence_shares(
    run: Evaluation, ids: Sequence[str], threshold: float
) -> dict[str, float]:
    """Per cached row of ``ids``: the % of its pixels predicted with confidence below
    ``threshold``. The rows' masks are loaded with them but never read."""
    cache = run.cache
    rows = ResidentSplit(cache.images, cache.masks, cache.positions(list(ids)), run.device)
    ordered = cache.index.iloc[rows.positions]["id"].astype(str).tolist()
    shares: list[float] = []
    for images, _ in rows.batches(run.batch_size):
        with devices.autocast(run.device, run.amp_dtype):
            logits = run.model(to_model_input(images))
        probabilities = torch.softmax(logits.float(), dim=1)
        confidence, labels = probabilities.max(dim=1)
        for label, sure in zip(labels.to(torch.uint8).cpu().numpy(), to_uint8(confidence)):
            summary = confidence_summary(np.asarray(label), np.asarray(sure), threshold)
            shares.append(float(summary["low_confidence_pct"]))
    return dict(zip(ordered, shares))
