"""The figures a person looks at: per-model plots and the comparison across models.

Every function writes one PNG atomically at a fixed size (``figure_size`` × dpi; no tight
bounding box, so a figure's pixel size is known in advance) with the Agg backend. Sample choice
depends only on the ids of the scored split (test; validation only under
``split.test_fraction: 0``), the masks and a seed, never on a model, so the same images
appear in every encoder's figures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from PIL import Image

from heritage_damage_seg.classes import (
    CLASS_NAMES,
    DAMAGE_CLASSES,
    IGNORE_INDEX,
    NUM_CLASSES,
    PALETTE_HEX,
    colour_lut,
)
from heritage_damage_seg.data.cache import load_cache
from heritage_damage_seg.data.geometry import cut_crop
from heritage_damage_seg.data.split import split_word
from heritage_damage_seg.io import atomic_path

PathLike = str | os.PathLike[str]

# Background (255) is drawn as a light checkerboard: not a class colour, plainly "not artwork".
BACKGROUND_LIGHT = np.array([225, 225, 225], dtype=np.uint8)
BACKGROUND_DARK = np.array([170, 170, 170], dtype=np.uint8)
# Colour-blind-safe (Okabe–Ito) colours for outcomes.
CORRECT = "#009E73"
WRONG = "#D55E00"
TP_COLOUR, FP_COLOUR, FN_COLOUR = "#009E73", "#E69F00", "#CC79A7"
LEVELS = (
    (0.5, "#009E73", "IoU ≥ 0.5"),
    (0.25, "#E69F00", "0.25 ≤ IoU < 0.5"),
    (0.0, "#CC3311", "IoU < 0.25"),
)

CELL_INCHES = 2.2  # one image panel in the sample figures
WIDE = (12.0, 7.0)


def figure_size(kind: str, rows: int = 1, columns: int = 1) -> tuple[float, float]:
    """Width and height in inches of each kind of figure (rows: samples, columns: models)."""
    if kind == "confusion_matrix":
        return (12.0, 10.5)
    if kind in ("per_class_iou", "class_distribution", "comparison_ci", "accuracy_vs_speed"):
        return WIDE
    if kind == "training_curves":
        return (15.0, 4.5)
    if kind == "prediction_grid":
        return (4 * CELL_INCHES + 0.6, rows * CELL_INCHES + 2.2)
    if kind in ("error_maps", "class_focus"):
        return (3 * CELL_INCHES + 0.6, rows * CELL_INCHES + 1.3)
    if kind == "iou_heatmap":
        return (13.0, 1.8 + 0.55 * max(columns, 1))
    raise ValueError(f"unknown figure kind {kind!r}")


def _new_figure(kind: str, rows: int = 1, columns: int = 1) -> Figure:
    return plt.figure(figsize=figure_size(kind, rows, columns), layout="constrained")


def _save(fig: Figure, path: PathLike, dpi: int) -> None:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Sample choice


def choose_samples(scored_ids: Sequence[str], n: int, seed: int) -> list[str]:
    """``n`` ids of the scored split (all if fewer), seeded, in sorted order; independent of any model."""
    ids = sorted(str(i) for i in scored_ids)
    if n >= len(ids):
        return ids
    rng = np.random.default_rng(seed)
    return sorted(ids[i] for i in rng.choice(len(ids), size=n, replace=False))


def validation_support(masks: np.ndarray) -> np.ndarray:
    """Ground-truth pixel count per class over a stack of validation masks (255 not counted)."""
    flat = masks.reshape(-1)
    return np.bincount(flat[flat != IGNORE_INDEX], minlength=NUM_CLASSES)[:NUM_CLASSES]


def focus_classes(
    masks: np.ndarray, configured: Sequence[int | str] | None, n: int = 6
) -> list[int]:
    """The classes for the TP/FP/FN views: the configured ones (ids or names), else the ``n`` damage
    classes with most validation pixels (ties and absent classes filled in by id)."""
    if configured:
        chosen = []
        for item in configured:
            if isinstance(item, str) and not item.isdigit():
                lookup = {name.lower(): i for i, name in enumerate(CLASS_NAMES)}
                if item.lower() not in lookup:
                    raise ValueError(
                        f"unknown class {item!r}; expected one of {', '.join(CLASS_NAMES)}"
                    )
                chosen.append(lookup[item.lower()])
            else:
                class_id = int(item)
                if not 0 <= class_id < NUM_CLASSES:
                    raise ValueError(f"class id {class_id} is outside 0–{NUM_CLASSES - 1}")
                chosen.append(class_id)
        return chosen
    support = validation_support(masks)
    ranked = sorted(DAMAGE_CLASSES, key=lambda c: (-int(support[c]), c))
    return ranked[:n]


def class_samples(
    masks: np.ndarray, ids: Sequence[str], class_id: int, n: int, seed: int
) -> list[str]:
    """Up to ``n`` scored (test) ids whose ground truth contains ``class_id`` (seeded); if none does,
    a seeded sample of all ids (the view then shows only false positives)."""
    present = [i for i, mask in zip(ids, masks) if (mask == class_id).any()]
    return choose_samples(present or list(ids), n, seed + class_id)


# ---------------------------------------------------------------------------------------------
# Rendering helpers


def checker(rgb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``rgb`` with the ``background`` pixels drawn as a light grey checkerboard (in place)."""
    if background.any():
        size = max(2, background.shape[0] // 16)
        yy, xx = np.indices(background.shape[:2])
        dark = ((yy // size + xx // size) % 2).astype(bool)
        rgb[background & dark] = BACKGROUND_DARK
        rgb[background & ~dark] = BACKGROUND_LIGHT
    return rgb


def colourise(mask: np.ndarray) -> np.ndarray:
    """An index mask as RGB in the ARTeFACT palette, Background (255) as a grey checkerboard."""
    return checker(colour_lut()[mask], mask == IGNORE_INDEX)


def overlay(
    image: np.ndarray, prediction: np.ndarray, truth: np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """The prediction blended onto the image where the artwork is (truth ≠ 255); Background left as is."""
    blended = image.astype(np.float32)
    colours = colour_lut()[prediction].astype(np.float32)
    scored = (truth != IGNORE_INDEX)[..., None]
    blended = np.where(scored, (1 - alpha) * blended + alpha * colours, blended)
    return blended.clip(0, 255).astype(np.uint8)


def _hex_rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float32)


def _paint(
    image: np.ndarray, layers: Sequence[tuple[np.ndarray, str]], alpha: float = 0.75
) -> np.ndarray:
    """A faded greyscale copy of ``image`` with each boolean layer painted in its colour."""
    grey = image.astype(np.float32).mean(axis=2, keepdims=True).repeat(3, axis=2)
    out = 0.35 * grey + 0.65 * 255.0 * 0.55
    for where, colour in layers:
        out = np.where(where[..., None], (1 - alpha) * out + alpha * _hex_rgb(colour), out)
    return out.clip(0, 255).astype(np.uint8)


def _show(ax: Any, picture: np.ndarray, title: str | None = None) -> None:
    ax.imshow(picture, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def _palette_legend() -> list[Patch]:
    handles = [
        Patch(facecolor=PALETTE_HEX[c], edgecolor="#555555", label=f"{c} {CLASS_NAMES[c]}")
        for c in range(NUM_CLASSES)
    ]
    handles.append(_background_patch())
    return handles


def _background_patch() -> Patch:
    return Patch(
        facecolor="#E1E1E1", edgecolor="#888888", hatch="++", label="Background (255, not scored)"
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------
# Per-model figures from metrics.json


def plot_confusion_matrix(metrics: dict[str, Any], path: PathLike, dpi: int = 100) -> None:
    """Row-normalised confusion matrix (rows: ground truth), percentages in the cells."""
    word = split_word(metrics)
    cm = np.asarray(metrics["confusion_matrix"], dtype=np.float64)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.where(
            support[:, None] > 0, cm / np.where(support[:, None] > 0, support[:, None], 1), np.nan
        )
    fig = plt.figure(figsize=figure_size("confusion_matrix"))
    ax = fig.add_axes((0.2, 0.13, 0.68, 0.8))
    colourbar_axes = fig.add_axes((0.9, 0.13, 0.02, 0.8))
    cmap = plt.get_cmap("Blues").with_extremes(bad="#EEEEEE")
    image = ax.imshow(np.ma.masked_invalid(normalised), cmap=cmap, vmin=0.0, vmax=1.0)
    for row in range(NUM_CLASSES):
        for col in range(NUM_CLASSES):
            value = normalised[row, col]
            if np.isfinite(value) and value >= 0.005:
                ax.text(
                    col,
                    row,
                    f"{100 * value:.0f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if value > 0.55 else "#222222",
                )
            elif not np.isfinite(value) and col == 0:
                ax.text(
                    NUM_CLASSES / 2 - 0.5,
                    row,
                    f"no pixels of this class in {word}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="#777777",
                )
    labels_y = [f"{CLASS_NAMES[c]} ({int(support[c]):,} px)" for c in range(NUM_CLASSES)]
    ax.set_xticks(range(NUM_CLASSES), CLASS_NAMES, rotation=45, ha="right", fontsize=9)
    ax.set_yticks(range(NUM_CLASSES), labels_y, fontsize=9)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel(f"Ground-truth class ({word} pixels)")
    ax.set_title(
        f"{metrics.get('encoder', '')}: confusion matrix, % of each ground-truth row\n"
        f"mIoU {_fmt(metrics.get('mIoU'))}, pixel accuracy {_fmt(metrics.get('pixel_accuracy'))}"
    )
    fig.colorbar(image, cax=colourbar_axes, label="share of the row's pixels")
    _save(fig, path, dpi)


def _level_colour(iou: float) -> str:
    return next(colour for threshold, colour, _ in LEVELS if iou >= threshold)


def plot_per_class_iou(metrics: dict[str, Any], path: PathLike, dpi: int = 100) -> None:
    """Horizontal IoU bars per class, coloured by level, with the mIoU and damage mIoU lines."""
    per_class = metrics["per_class"]
    names = list(CLASS_NAMES)
    ious = [per_class[name]["IoU"] for name in names]
    fig = _new_figure("per_class_iou")
    ax = fig.add_subplot()
    y = np.arange(len(names))
    ax.barh(
        y,
        [v or 0.0 for v in ious],
        color=[_level_colour(v) if v is not None else "#FFFFFF" for v in ious],
        edgecolor="#444444",
        linewidth=0.5,
    )
    for row, value in zip(y, ious):
        label = "n/a (absent)" if value is None else f"{value:.3f}"
        ax.text(
            (value or 0.0) + 0.01,
            row,
            label,
            va="center",
            fontsize=8,
            color="#777777" if value is None else "#222222",
        )
    handles = [Patch(facecolor=colour, label=label) for _, colour, label in LEVELS]
    if metrics.get("mIoU") is not None:
        handles.append(
            ax.axvline(
                metrics["mIoU"],
                color="#0072B2",
                linestyle="--",
                label=f"mIoU {metrics['mIoU']:.3f}",
            )
        )
    if metrics.get("damage_mIoU") is not None:
        handles.append(
            ax.axvline(
                metrics["damage_mIoU"],
                color="#56B4E9",
                linestyle=":",
                linewidth=2,
                label=f"damage mIoU {metrics['damage_mIoU']:.3f}",
            )
        )
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    ax.set_xlabel(f"IoU on the {split_word(metrics)} split (TP / (TP + FP + FN))")
    ax.set_title(f"{metrics.get('encoder', '')}: IoU per class")
    ax.legend(handles=handles, loc="lower right", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path, dpi)


def plot_class_distribution(metrics: dict[str, Any], path: PathLike, dpi: int = 100) -> None:
    """Ground-truth vs predicted share of the scored pixels per class, log scale."""
    cm = np.asarray(metrics["confusion_matrix"], dtype=np.float64)
    total = max(cm.sum(), 1.0)
    truth = 100.0 * cm.sum(axis=1) / total
    predicted = 100.0 * cm.sum(axis=0) / total
    fig = _new_figure("class_distribution")
    ax = fig.add_subplot()
    y = np.arange(NUM_CLASSES)
    height = 0.4
    floor = 1e-4
    ax.barh(y - height / 2, np.maximum(truth, floor), height, color="#0072B2", label="ground truth")
    ax.barh(
        y + height / 2, np.maximum(predicted, floor), height, color="#E69F00", label="prediction"
    )
    for row in y:
        for offset, value in ((-height / 2, truth[row]), (height / 2, predicted[row])):
            if value == 0:
                ax.text(floor * 1.3, row + offset, "0", va="center", fontsize=7, color="#555555")
    ax.set_xscale("log")
    ax.set_xlim(floor, 200)
    ax.set_yticks(y, CLASS_NAMES)
    ax.invert_yaxis()
    ax.set_xlabel(
        f"share of scored {split_word(metrics)} pixels (%, log scale; Background excluded)"
    )
    ax.set_title(f"{metrics.get('encoder', '')}: class distribution, ground truth vs prediction")
    ax.legend(loc="lower right")
    ax.grid(axis="x", which="major", alpha=0.3)
    _save(fig, path, dpi)


def plot_training_curves(
    history: pd.DataFrame, path: PathLike, encoder: str = "", dpi: int = 100
) -> None:
    """Training loss, validation mIoU / damage mIoU and learning rate per epoch."""
    fig = _new_figure("training_curves")
    axes = fig.subplots(1, 3)
    epoch = history["epoch"]
    style = {"marker": "o", "markersize": 4}
    axes[0].plot(epoch, history["train_loss"], color="#0072B2", **style)
    axes[0].set_title("training loss (weighted Dice)")
    axes[1].plot(epoch, history["val_mIoU"], color="#0072B2", label="val mIoU", **style)
    axes[1].plot(
        epoch, history["val_damage_mIoU"], color="#D55E00", label="val damage mIoU", **style
    )
    best = int(history["val_mIoU"].idxmax())
    axes[1].axvline(
        history["epoch"][best],
        color="#999999",
        linestyle=":",
        label=f"best epoch {history['epoch'][best]}",
    )
    axes[1].set_title("validation mIoU")
    axes[1].legend(fontsize=8)
    axes[2].plot(epoch, history["lr"], color="#009E73", **style)
    axes[2].set_title("learning rate (OneCycle)")
    axes[2].ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(history) == 1:
            ax.set_xlim(epoch.iloc[0] - 1, epoch.iloc[0] + 1)
    epochs = len(history)
    fig.suptitle(f"{encoder}: training curves ({epochs} epoch{'s' if epochs != 1 else ''})")
    _save(fig, path, dpi)


# ---------------------------------------------------------------------------------------------
# Per-model figures from the predictions


def plot_prediction_grid(
    ids: Sequence[str],
    images: np.ndarray,
    masks: np.ndarray,
    predictions: np.ndarray,
    path: PathLike,
    encoder: str = "",
    dpi: int = 100,
    split: str = "test",
) -> None:
    """One row per sample: Input | Ground truth | Prediction | Overlay, with the palette legend.
    ``split``: the word for the scored split the samples come from."""
    rows = len(ids)
    fig = _new_figure("prediction_grid", rows)
    axes = np.atleast_2d(fig.subplots(rows, 4, squeeze=False))
    for row, (sample_id, image, truth, prediction) in enumerate(
        zip(ids, images, masks, predictions)
    ):
        scored = truth != IGNORE_INDEX
        accuracy = (prediction[scored] == truth[scored]).mean() if scored.any() else float("nan")
        shown = np.where(scored, prediction, IGNORE_INDEX).astype(np.uint8)
        titles = ("Input", "Ground truth", "Prediction", "Overlay") if row == 0 else (None,) * 4
        _show(axes[row, 0], image, titles[0])
        _show(axes[row, 1], colourise(truth), titles[1])
        _show(axes[row, 2], colourise(shown), titles[2])
        _show(axes[row, 3], overlay(image, prediction, truth), titles[3])
        axes[row, 0].set_ylabel(f"{sample_id}\nacc {100 * accuracy:.0f}%", fontsize=8)
    fig.legend(
        handles=_palette_legend(), loc="outside lower center", ncol=3, fontsize=8, frameon=False
    )
    fig.suptitle(f"{encoder}: {rows} {split} samples (same for every encoder)", fontsize=11)
    _save(fig, path, dpi)


def plot_error_maps(
    ids: Sequence[str],
    images: np.ndarray,
    masks: np.ndarray,
    predictions: np.ndarray,
    path: PathLike,
    encoder: str = "",
    dpi: int = 100,
) -> None:
    """One row per sample: Input | Ground truth | where the prediction is correct, wrong or not scored."""
    rows = len(ids)
    fig = _new_figure("error_maps", rows)
    axes = fig.subplots(rows, 3, squeeze=False)
    for row, (sample_id, image, truth, prediction) in enumerate(
        zip(ids, images, masks, predictions)
    ):
        scored = truth != IGNORE_INDEX
        correct = scored & (prediction == truth)
        wrong = scored & (prediction != truth)
        error = np.empty((*truth.shape, 3), dtype=np.uint8)
        error[correct] = _hex_rgb(CORRECT).astype(np.uint8)
        error[wrong] = _hex_rgb(WRONG).astype(np.uint8)
        checker(error, ~scored)
        accuracy = correct.sum() / max(scored.sum(), 1)
        titles = ("Input", "Ground truth", "Errors") if row == 0 else (None,) * 3
        _show(axes[row, 0], image, titles[0])
        _show(axes[row, 1], colourise(truth), titles[1])
        _show(axes[row, 2], error, titles[2])
        axes[row, 0].set_ylabel(sample_id, fontsize=8)
        axes[row, 2].set_xlabel(
            f"{100 * accuracy:.1f}% of {int(scored.sum()):,} px correct", fontsize=8
        )
    legend = [("correct", CORRECT), ("wrong", WRONG)]
    _finish_panels(fig, legend, 3, f"{encoder}: error maps", path, dpi)


def plot_class_focus(
    class_id: int,
    ids: Sequence[str],
    images: np.ndarray,
    masks: np.ndarray,
    predictions: np.ndarray,
    path: PathLike,
    encoder: str = "",
    iou: float | None = None,
    dpi: int = 100,
) -> None:
    """One class on a few samples: Input | Ground truth of the class | TP / FP / FN."""
    rows = len(ids)
    name = CLASS_NAMES[class_id]
    fig = _new_figure("class_focus", rows)
    axes = fig.subplots(rows, 3, squeeze=False)
    for row, (sample_id, image, truth, prediction) in enumerate(
        zip(ids, images, masks, predictions)
    ):
        scored = truth != IGNORE_INDEX
        is_class, said_class = truth == class_id, scored & (prediction == class_id)
        tp, fp, fn = is_class & said_class, said_class & ~is_class, is_class & ~said_class
        titles = ("Input", f"Ground truth: {name}", "TP / FP / FN") if row == 0 else (None,) * 3
        _show(axes[row, 0], image, titles[0])
        _show(
            axes[row, 1],
            checker(_paint(image, [(is_class, PALETTE_HEX[class_id])], alpha=0.9), ~scored),
            titles[1],
        )
        _show(
            axes[row, 2],
            checker(
                _paint(image, [(tp, TP_COLOUR), (fp, FP_COLOUR), (fn, FN_COLOUR)], alpha=0.9),
                ~scored,
            ),
            titles[2],
        )
        axes[row, 0].set_ylabel(sample_id, fontsize=8)
        axes[row, 2].set_xlabel(
            f"TP {int(tp.sum())}  FP {int(fp.sum())}  FN {int(fn.sum())} px", fontsize=8
        )
    legend = [("TP", TP_COLOUR), ("FP", FP_COLOUR), ("FN (missed)", FN_COLOUR)]
    title = f"{encoder}: class {class_id} {name} (IoU {_fmt(iou)})"
    _finish_panels(fig, legend, 2, title, path, dpi)


def _finish_panels(
    fig: Figure, legend: Sequence[tuple[str, str]], ncol: int, title: str, path: PathLike, dpi: int
) -> None:
    """The legend (colours, then the checkered unscored background), the title, and the file."""
    handles = [Patch(facecolor=colour, label=label) for label, colour in legend]
    handles.append(_background_patch())
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    _save(fig, path, dpi)


# ---------------------------------------------------------------------------------------------
# Comparison figures from model_comparison.json


# long: one figure drawn top to bottom (panels, intervals, labels); split, it reads worse
def plot_comparison_ci(comparison: dict[str, Any], path: PathLike, dpi: int = 100) -> None:
    """mIoU and damage mIoU per encoder with bootstrap confidence intervals."""
    models = comparison["models"]
    fig = _new_figure("comparison_ci")
    ax = fig.add_subplot()
    x = np.arange(len(models))
    confidence = comparison.get("bootstrap", {}).get("confidence", 0.95)
    for offset, metric, colour, label in (
        (-0.12, "mIoU", "#0072B2", "mIoU"),
        (0.12, "damage_mIoU", "#D55E00", "damage mIoU"),
    ):
        values = np.array(
            [m[metric] if m[metric] is not None else np.nan for m in models], dtype=float
        )
        low = np.array(
            [
                m.get(f"{metric}_ci_low") if m.get(f"{metric}_ci_low") is not None else np.nan
                for m in models
            ],
            dtype=float,
        )
        high = np.array(
            [
                m.get(f"{metric}_ci_high") if m.get(f"{metric}_ci_high") is not None else np.nan
                for m in models
            ],
            dtype=float,
        )
        errors = np.nan_to_num(np.vstack([values - low, high - values]), nan=0.0).clip(min=0)
        ax.errorbar(
            x + offset,
            values,
            yerr=errors,
            fmt="o",
            color=colour,
            capsize=6,
            markersize=7,
            label=f"{label} ({100 * confidence:.0f}% bootstrap CI)",
        )
        for xi, value, hi in zip(x + offset, values, high):
            if np.isfinite(value):
                ax.annotate(
                    f"{value:.3f}",
                    (xi, hi if np.isfinite(hi) else value),
                    textcoords="offset points",
                    xytext=(0, 6),
                    ha="center",
                    fontsize=8,
                    color=colour,
                )
    baselines = [
        m["trivial_baseline_mIoU"] for m in models if m.get("trivial_baseline_mIoU") is not None
    ]
    if baselines:
        ax.axhline(
            baselines[0],
            color="#777777",
            linestyle=":",
            label=f"trivial 'all Clean' mIoU {baselines[0]:.3f} (its damage mIoU: 0)",
        )
    ax.set_xticks(x, [m["encoder"] for m in models])
    ax.set_xlim(-0.6, len(models) - 0.4)
    ax.set_ylabel(f"{split_word(comparison)} score")
    ax.set_ylim(bottom=0)
    n = comparison.get("bootstrap", {}).get("n_resamples")
    ax.set_title(
        "mIoU per encoder, best first"
        + (f" ({n} resamples of the {split_word(comparison)} artworks)" if n else "")
    )
    ax.legend(loc="best", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path, dpi)


def plot_iou_heatmap(comparison: dict[str, Any], path: PathLike, dpi: int = 100) -> None:
    """Models × classes IoU, annotated; grey where a class is absent (IoU undefined)."""
    models = comparison["models"]
    values = np.array(
        [
            [
                m["per_class_IoU"].get(name) if m["per_class_IoU"].get(name) is not None else np.nan
                for name in CLASS_NAMES
            ]
            for m in models
        ],
        dtype=float,
    ).reshape(len(models), NUM_CLASSES)
    fig = _new_figure("iou_heatmap", columns=len(models))
    ax = fig.add_subplot()
    cmap = plt.get_cmap("viridis").with_extremes(bad="#DDDDDD")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for row in range(values.shape[0]):
        for col in range(values.shape[1]):
            value = values[row, col]
            ax.text(
                col,
                row,
                "–" if not np.isfinite(value) else f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="#222222" if not np.isfinite(value) or value > 0.6 else "white",
            )
    ax.set_xticks(range(NUM_CLASSES), CLASS_NAMES, rotation=40, ha="right")
    ax.set_yticks(range(len(models)), [f"{m['encoder']} (mIoU {_fmt(m['mIoU'])})" for m in models])
    ax.set_title("IoU per class and encoder (– : class absent from truth and prediction)")
    fig.colorbar(image, ax=ax, fraction=0.03, label="IoU")
    _save(fig, path, dpi)


def plot_accuracy_vs_speed(comparison: dict[str, Any], path: PathLike, dpi: int = 100) -> None:
    """mIoU (with CI) against training throughput and against inference time, one point per encoder."""
    models = comparison["models"]
    fig = _new_figure("accuracy_vs_speed")
    axes = fig.subplots(1, 2, sharey=True)
    colours = plt.get_cmap("tab10")
    panels = (
        ("train_imgs_per_s", "training throughput (images/s, median over epochs ≥ 2) →  faster"),
        ("inference_ms_per_image", "inference time (ms per image) →  slower"),
    )
    for ax, (key, label) in zip(axes, panels):
        for i, m in enumerate(models):
            value = m["mIoU"] if m["mIoU"] is not None else np.nan
            low, high = m.get("mIoU_ci_low"), m.get("mIoU_ci_high")
            yerr = (
                None
                if low is None or high is None
                else [[max(value - low, 0)], [max(high - value, 0)]]
            )
            ax.errorbar(
                [m[key]],
                [value],
                yerr=yerr,
                fmt="o",
                color=colours(i),
                capsize=5,
                markersize=8,
                label=m["encoder"],
            )
            ax.annotate(
                m["encoder"], (m[key], value), textcoords="offset points", xytext=(8, 4), fontsize=9
            )
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        span = [m[key] for m in models]
        ax.set_xlim(0, max(span) * 1.35 if span and max(span) > 0 else 1)
    axes[0].set_ylabel(f"{split_word(comparison)} mIoU (bars: bootstrap CI)")
    axes[0].set_ylim(bottom=0)
    devices = sorted({str(m.get("device")) for m in models})
    fig.suptitle(f"accuracy vs speed (measured on {', '.join(devices)})")
    _save(fig, path, dpi)


# ---------------------------------------------------------------------------------------------
# Inputs


def load_samples(
    ids: Sequence[str], cache_dir: PathLike, predictions_dir: PathLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, ground-truth masks and predicted masks of ``ids`` (cache resolution), in that order.

    The samples are cache rows. Where the evaluation predicted whole scans instead (native mode),
    each row's prediction is brought to the row by nearest neighbour, as the cached mask was:
    resized to the cache size (resize view), or resized to the scale the crops were cut at and cut
    at the crop's position (crops view).
    """
    cache = load_cache(cache_dir)
    index, images, masks, size = cache.index, cache.images, cache.masks, cache.size
    position = {sample_id: i for i, sample_id in enumerate(index["id"])}
    rows = [position[str(sample_id)] for sample_id in ids]
    predictions = (
        np.stack([_row_prediction(index.iloc[row], Path(predictions_dir), size) for row in rows])
        if ids
        else np.zeros((0, *masks.shape[1:]), dtype=np.uint8)
    )
    return np.asarray(images[rows]), np.asarray(masks[rows]), predictions


def _row_prediction(row: pd.Series, predictions_dir: Any, size: int) -> np.ndarray:
    """The predicted mask of one cache row at the cache's ``size`` (see :func:`load_samples`)."""
    own = predictions_dir / f"{row['id']}.png"
    if own.is_file():
        with Image.open(own) as image:
            if image.size == (size, size):
                return np.asarray(image)
            return np.asarray(image.resize((size, size), Image.Resampling.NEAREST))
    scan = predictions_dir / f"{row['scan']}.png" if "scan" in row.index else None
    if scan is not None and scan.is_file():
        with Image.open(scan) as image:
            scaled = (int(row["scaled_width"]), int(row["scaled_height"]))
            whole = np.asarray(
                image if image.size == scaled else image.resize(scaled, Image.Resampling.NEAREST)
            )
        return cut_crop(whole, int(row["crop_x"]), int(row["crop_y"]), size, IGNORE_INDEX)
    raise FileNotFoundError(
        f"no prediction for {row['id']} in {predictions_dir}: rerun the evaluation"
    )
