"""Segmentation metrics with mmsegmentation's ``IoUMetric`` definitions.

One confusion matrix is accumulated over every scored pixel (of the test split; of the validation
split during training), never averaged per batch or per image; ground-truth pixels equal to
``ignore_index`` are left out, a ratio of 0/0 is ``None`` (class absent from both ground truth
and prediction), and a mean is taken over the classes whose value is not ``None``. Training-time
validation and evaluation both call :func:`summarise`, so there is one definition of mIoU in the
project.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from heritage_damage_seg.classes import (
    CLASS_NAMES,
    CLEAN,
    DAMAGE_CLASSES,
    IGNORE_INDEX,
    NUM_CLASSES,
)


def confusion_matrix(
    prediction: torch.Tensor,
    target: torch.Tensor,
    num_classes: int = NUM_CLASSES,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Counts of (true class, predicted class) pairs, shape ``(num_classes, num_classes)``, int64.

    Runs on the tensors' device with no host synchronisation (a fixed-size scatter, no boolean
    indexing, no ``bincount``, whose output size depends on the data), so it can be accumulated
    per batch while the GPU runs ahead.
    """
    target = target.reshape(-1).long()
    prediction = prediction.reshape(-1).long()
    # Out-of-range targets other than ignore_index are a data error caught when the cache is built;
    # sending them to the overflow bin here too keeps them from spilling into the next row.
    keep = (target != ignore_index) & (target < num_classes) & (target >= 0)
    overflow = num_classes * num_classes
    pairs = torch.where(keep, target * num_classes + prediction, overflow)
    counts = torch.zeros(overflow + 1, dtype=torch.int64, device=target.device)
    counts.scatter_add_(0, pairs, torch.ones_like(pairs))
    return counts[:overflow].reshape(num_classes, num_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> list[float | None]:
    return [None if d == 0 else float(n) / float(d) for n, d in zip(numerator, denominator)]


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def summarise(
    cm: np.ndarray | torch.Tensor, class_names: tuple[str, ...] = CLASS_NAMES
) -> dict[str, Any]:
    """All figures derived from one dataset-level confusion matrix (rows = truth, cols = prediction).

    Per class: IoU = TP / (TP + FP + FN), precision = TP / (TP + FP), recall = TP / (TP + FN),
    F1 = 2TP / (2TP + FP + FN), support = number of ground-truth pixels. ``mIoU`` is the mean IoU
    over classes whose IoU is defined; ``damage_mIoU`` the same over classes 1–15 only.
    """
    if isinstance(cm, torch.Tensor):
        cm = cm.detach().cpu().numpy()
    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(class_names):
        raise ValueError(
            f"confusion matrix must be {len(class_names)}×{len(class_names)}, got {cm.shape}"
        )
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    fp = predicted - tp
    fn = support - tp
    iou = _ratio(tp, tp + fp + fn)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    total = int(support.sum())
    damage = [iou[c] for c in DAMAGE_CLASSES if c < len(iou)]
    return {
        "mIoU": _mean(iou),
        "damage_mIoU": _mean(damage),
        "pixel_accuracy": None if total == 0 else float(tp.sum()) / total,
        "num_pixels": total,
        "per_class": {
            name: {
                "id": class_id,
                "IoU": iou[class_id],
                "precision": precision[class_id],
                "recall": recall[class_id],
                "F1": f1[class_id],
                "support": int(support[class_id]),
            }
            for class_id, name in enumerate(class_names)
        },
    }


def trivial_baseline_cm(cm: np.ndarray | torch.Tensor, predicted_class: int = CLEAN) -> np.ndarray:
    """The confusion matrix of a model that predicts ``predicted_class`` for every scored pixel."""
    if isinstance(cm, torch.Tensor):
        cm = cm.detach().cpu().numpy()
    baseline = np.zeros_like(np.asarray(cm, dtype=np.int64))
    baseline[:, predicted_class] = np.asarray(cm).sum(axis=1)
    return baseline
