"""The per-model figures: from metrics.json (confusion matrix, per-class IoU, class distribution),
history.csv (training curves) and the predictions (sample grid, error maps, class focus)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from heritage_damage_seg.classes import (
    CLASS_NAMES,
    IGNORE_INDEX,
    NUM_CLASSES,
    PALETTE_HEX,
)
from heritage_damage_seg.data.split import split_word
from heritage_damage_seg.report.drawing import (
    CORRECT,
    FN_COLOUR,
    FP_COLOUR,
    LEVELS,
    TP_COLOUR,
    WRONG,
    PathLike,
    background_patch,
    checker,
    colourise,
    figure_size,
    fmt,
    hex_rgb,
    new_figure,
    overlay,
    paint,
    palette_legend,
    save_png,
    show,
)

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
        f"mIoU {fmt(metrics.get('mIoU'))}, pixel accuracy {fmt(metrics.get('pixel_accuracy'))}"
    )
    fig.colorbar(image, cax=colourbar_axes, label="share of the row's pixels")
    save_png(fig, path, dpi)


def level_colour(iou: float) -> str:
    return next(colour for threshold, colour, _ in LEVELS if iou >= threshold)


def plot_per_class_iou(metrics: dict[str, Any], path: PathLike, dpi: int = 100) -> None:
    """Horizontal IoU bars per class, coloured by level, with the mIoU and damage mIoU lines."""
    per_class = metrics["per_class"]
    names = list(CLASS_NAMES)
    ious = [per_class[name]["IoU"] for name in names]
    fig = new_figure("per_class_iou")
    ax = fig.add_subplot()
    y = np.arange(len(names))
    ax.barh(
        y,
        [v or 0.0 for v in ious],
        color=[level_colour(v) if v is not None else "#FFFFFF" for v in ious],
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
    save_png(fig, path, dpi)


def plot_class_distribution(metrics: dict[str, Any], path: PathLike, dpi: int = 100) -> None:
    """Ground-truth vs predicted share of the scored pixels per class, log scale."""
    cm = np.asarray(metrics["confusion_matrix"], dtype=np.float64)
    total = max(cm.sum(), 1.0)
    truth = 100.0 * cm.sum(axis=1) / total
    predicted = 100.0 * cm.sum(axis=0) / total
    fig = new_figure("class_distribution")
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
    save_png(fig, path, dpi)


def plot_training_curves(
    history: pd.DataFrame, path: PathLike, encoder: str = "", dpi: int = 100
) -> None:
    """Training loss, validation mIoU / damage mIoU and learning rate per epoch."""
    fig = new_figure("training_curves")
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
    save_png(fig, path, dpi)


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
    fig = new_figure("prediction_grid", rows)
    axes = np.atleast_2d(fig.subplots(rows, 4, squeeze=False))
    for row, (sample_id, image, truth, prediction) in enumerate(
        zip(ids, images, masks, predictions)
    ):
        scored = truth != IGNORE_INDEX
        accuracy = (prediction[scored] == truth[scored]).mean() if scored.any() else float("nan")
        shown = np.where(scored, prediction, IGNORE_INDEX).astype(np.uint8)
        titles = ("Input", "Ground truth", "Prediction", "Overlay") if row == 0 else (None,) * 4
        show(axes[row, 0], image, titles[0])
        show(axes[row, 1], colourise(truth), titles[1])
        show(axes[row, 2], colourise(shown), titles[2])
        show(axes[row, 3], overlay(image, prediction, truth), titles[3])
        axes[row, 0].set_ylabel(f"{sample_id}\nacc {100 * accuracy:.0f}%", fontsize=8)
    fig.legend(
        handles=palette_legend(), loc="outside lower center", ncol=3, fontsize=8, frameon=False
    )
    fig.suptitle(f"{encoder}: {rows} {split} samples (same for every encoder)", fontsize=11)
    save_png(fig, path, dpi)


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
    fig = new_figure("error_maps", rows)
    axes = fig.subplots(rows, 3, squeeze=False)
    for row, (sample_id, image, truth, prediction) in enumerate(
        zip(ids, images, masks, predictions)
    ):
        scored = truth != IGNORE_INDEX
        correct = scored & (prediction == truth)
        wrong = scored & (prediction != truth)
        error = np.empty((*truth.shape, 3), dtype=np.uint8)
        error[correct] = hex_rgb(CORRECT).astype(np.uint8)
        error[wrong] = hex_rgb(WRONG).astype(np.uint8)
        checker(error, ~scored)
        accuracy = correct.sum() / max(scored.sum(), 1)
        titles = ("Input", "Ground truth", "Errors") if row == 0 else (None,) * 3
        show(axes[row, 0], image, titles[0])
        show(axes[row, 1], colourise(truth), titles[1])
        show(axes[row, 2], error, titles[2])
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
    fig = new_figure("class_focus", rows)
    axes = fig.subplots(rows, 3, squeeze=False)
    for row, (sample_id, image, truth, prediction) in enumerate(
        zip(ids, images, masks, predictions)
    ):
        scored = truth != IGNORE_INDEX
        is_class, said_class = truth == class_id, scored & (prediction == class_id)
        tp, fp, fn = is_class & said_class, said_class & ~is_class, is_class & ~said_class
        titles = ("Input", f"Ground truth: {name}", "TP / FP / FN") if row == 0 else (None,) * 3
        show(axes[row, 0], image, titles[0])
        show(
            axes[row, 1],
            checker(paint(image, [(is_class, PALETTE_HEX[class_id])], alpha=0.9), ~scored),
            titles[1],
        )
        show(
            axes[row, 2],
            checker(
                paint(image, [(tp, TP_COLOUR), (fp, FP_COLOUR), (fn, FN_COLOUR)], alpha=0.9),
                ~scored,
            ),
            titles[2],
        )
        axes[row, 0].set_ylabel(sample_id, fontsize=8)
        axes[row, 2].set_xlabel(
            f"TP {int(tp.sum())}  FP {int(fp.sum())}  FN {int(fn.sum())} px", fontsize=8
        )
    legend = [("TP", TP_COLOUR), ("FP", FP_COLOUR), ("FN (missed)", FN_COLOUR)]
    title = f"{encoder}: class {class_id} {name} (IoU {fmt(iou)})"
    _finish_panels(fig, legend, 2, title, path, dpi)


def _finish_panels(
    fig: Figure, legend: Sequence[tuple[str, str]], ncol: int, title: str, path: PathLike, dpi: int
) -> None:
    """The legend (colours, then the checkered unscored background), the title, and the file."""
    handles = [Patch(facecolor=colour, label=label) for label, colour in legend]
    handles.append(background_patch())
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    save_png(fig, path, dpi)
