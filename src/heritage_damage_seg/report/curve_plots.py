"""The correction curve as a picture: mIoU and damage mIoU of the scored artworks against the
number of corrected artworks, one line per order with its bootstrap interval, the model before
any correction as a dashed line with its own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from heritage_damage_seg.metrics import HEADLINE_METRICS
from heritage_damage_seg.report.drawing import PathLike, new_figure, save_png

ORDER_COLOURS = {"uncertainty": "#0072B2", "random": "#E69F00"}


def plot_correction_curve(
    rows: Sequence[Mapping[str, Any]],
    before: Mapping[str, Any],
    path: PathLike,
    confidence: float,
    dpi: int = 100,
) -> None:
    """``rows``: :func:`~heritage_damage_seg.evaluation.correction_curve.curve_rows`; ``before``:
    the uncorrected model's figures ({metric: {estimate, low, high}})."""
    fig = new_figure("correction_curve")
    axes = fig.subplots(1, len(HEADLINE_METRICS), sharey=True)
    ks = sorted({int(row["k"]) for row in rows})
    for ax, metric in zip(axes, HEADLINE_METRICS):
        base = before[metric]
        ax.axhline(100 * base["estimate"], color="#555555", linestyle="--", label="before (k = 0)")
        if base["low"] is not None:
            ax.axhspan(100 * base["low"], 100 * base["high"], color="#555555", alpha=0.12)
        for order in dict.fromkeys(row["order"] for row in rows):
            mine = sorted((r for r in rows if r["order"] == order), key=lambda r: r["k"])
            x = [r["k"] for r in mine]
            colour = ORDER_COLOURS.get(order, "#009E73")
            ax.plot(x, [100 * r[f"{metric}_after"] for r in mine], "o-", color=colour, label=order)
            ax.fill_between(
                x,
                [100 * r[f"{metric}_after_low"] for r in mine],
                [100 * r[f"{metric}_after_high"] for r in mine],
                color=colour,
                alpha=0.15,
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("artworks corrected (k)")
        ax.set_title(f"{metric} of the scored artworks (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"%, with {confidence:.0%} bootstrap interval over scored artworks")
    axes[0].legend(loc="best")
    save_png(fig, path, dpi)
