"""Segmentation metrics with mmsegmentation's ``IoUMetric`` definitions.

One confusion matrix is accumulated over every scored pixel (of the test split; of the validation
split during training), never averaged per batch or per image; ground-truth pixels equal to
``ignore_index`` are left out, a ratio of 0/0 is ``None`` (class absent from both ground truth
and prediction), and a mean is taken over the classes whose value is not ``None``. Training-time
validation and evaluation both call :func:`summarise`, and the bootstrap, seed, leave-one-out and
comparison figures :func:`headline_figures`, which :func:`summarise` itself uses: one definition of
mIoU and damage mIoU in the project, and one list of the headline figures
(:data:`HEADLINE_METRICS`) that every summary reports.

Light at import (no torch): the report's scripts read figures without loading the model stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from heritage_damage_seg.classes import (
    CLASS_NAMES,
    CLEAN,
    DAMAGE_CLASSES,
    IGNORE_INDEX,
    NUM_CLASSES,
)

if TYPE_CHECKING:
    import torch

#: The figures a model is ranked and summarised by (bootstrap intervals, seed repeats,
#: leave-one-out folds, the comparison, the tables, the model card), in this order.
HEADLINE_METRICS: tuple[str, ...] = ("mIoU", "damage_mIoU")


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
    import torch

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


def class_iou(confusions: np.ndarray) -> np.ndarray:
    """IoU per class of one ``(C, C)`` or a stack of ``(..., C, C)`` confusion matrices (rows =
    truth): TP / (TP + FP + FN), NaN where the class is in neither truth nor prediction."""
    confusions = np.asarray(confusions, dtype=np.float64)
    tp = np.diagonal(confusions, axis1=-2, axis2=-1)
    union = confusions.sum(axis=-1) + confusions.sum(axis=-2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the defined (non-NaN) values; NaN where none is."""
    defined = ~np.isnan(values)
    count = defined.sum(axis=-1)
    total = np.where(defined, values, 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def headline_figures(confusions: np.ndarray) -> dict[str, np.ndarray]:
    """The :data:`HEADLINE_METRICS` of one ``(C, C)`` or a stack of ``(..., C, C)`` confusion
    matrices: ``mIoU``, the mean IoU over the classes whose IoU is defined, and ``damage_mIoU``,
    the same over the damage classes 1–15 (NaN where no class is defined)."""
    iou = class_iou(confusions)
    damage = [c for c in DAMAGE_CLASSES if c < iou.shape[-1]]
    return {"mIoU": _nanmean(iou), "damage_mIoU": _nanmean(iou[..., damage])}


def _as_numpy(cm: np.ndarray | torch.Tensor) -> np.ndarray:
    if hasattr(cm, "detach"):  # a torch tensor, on any device
        cm = cm.detach().cpu().numpy()
    return np.asarray(cm, dtype=np.int64)


def _defined(value: np.ndarray) -> float | None:
    return None if np.isnan(value) else float(value)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> list[float | None]:
    return [None if d == 0 else float(n) / float(d) for n, d in zip(numerator, denominator)]


def summarise(
    cm: np.ndarray | torch.Tensor, class_names: tuple[str, ...] = CLASS_NAMES
) -> dict[str, Any]:
    """All figures derived from one dataset-level confusion matrix (rows = truth, cols = prediction).

    Per class: IoU = TP / (TP + FP + FN), precision = TP / (TP + FP), recall = TP / (TP + FN),
    F1 = 2TP / (2TP + FP + FN), support = number of ground-truth pixels. ``mIoU`` is the mean IoU
    over classes whose IoU is defined; ``damage_mIoU`` the same over classes 1–15 only.
    """
    cm = _as_numpy(cm)
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
    headline = {name: _defined(value) for name, value in headline_figures(cm).items()}
    return {
        **headline,
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
    cm = _as_numpy(cm)
    baseline = np.zeros_like(cm)
    baseline[:, predicted_class] = cm.sum(axis=1)
    return baseline
