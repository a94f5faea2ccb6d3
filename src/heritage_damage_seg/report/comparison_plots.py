"""The comparison figures across models, from model_comparison.json: intervals, the per-class IoU
heatmap, accuracy against speed."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from heritage_damage_seg.classes import (
    CLASS_NAMES,
    NUM_CLASSES,
)
from heritage_damage_seg.data.split import split_word
from heritage_damage_seg.report.drawing import (
    PathLike,
    fmt,
    new_figure,
    save_png,
)

# ---------------------------------------------------------------------------------------------
# Comparison figures from model_comparison.json


# long: one figure drawn top to bottom (panels, intervals, labels); split, it reads worse
def plot_comparison_ci(comparison: dict[str, Any], path: PathLike, dpi: int = 100) -> None:
    """mIoU and damage mIoU per encoder with bootstrap confidence intervals."""
    models = comparison["models"]
    fig = new_figure("comparison_ci")
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
    save_png(fig, path, dpi)


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
    fig = new_figure("iou_heatmap", columns=len(models))
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
    ax.set_yticks(range(len(models)), [f"{m['encoder']} (mIoU {fmt(m['mIoU'])})" for m in models])
    ax.set_title("IoU per class and encoder (– : class absent from truth and prediction)")
    fig.colorbar(image, ax=ax, fraction=0.03, label="IoU")
    save_png(fig, path, dpi)


def plot_accuracy_vs_speed(comparison: dict[str, Any], path: PathLike, dpi: int = 100) -> None:
    """mIoU (with CI) against training throughput and against inference time, one point per encoder."""
    models = comparison["models"]
    fig = new_figure("accuracy_vs_speed")
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
    save_png(fig, path, dpi)
