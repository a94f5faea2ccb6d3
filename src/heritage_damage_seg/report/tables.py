"""Metrics as small standalone HTML tables: the Snakemake report shows HTML inline (a JSON file
is only a download there)."""

from __future__ import annotations

import html
import os
from typing import Any

from heritage_damage_seg.data.split import split_word
from heritage_damage_seg.io import atomic_path
from heritage_damage_seg.metrics import HEADLINE_METRICS

STYLE = """<style>
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 12px; color: #222; }
table { border-collapse: collapse; margin: 0 0 18px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
.na { color: #999; }
</style>"""


def _cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return '<td class="na">n/a</td>'
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"<td>{html.escape(str(value))}</td>"
    if isinstance(value, int):
        return f"<td>{value:,}</td>"
    return f"<td>{value:.{digits}f}</td>"


def _table(caption: str, header: list[str], rows: list[list[Any]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return (
        f'<table id="{table_id}"><caption>{html.escape(caption)}</caption>\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>"
    )


def _page(title: str, tables: list[str]) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"{STYLE}</head>\n<body>\n" + "\n".join(tables) + "\n</body></html>\n"
    )


def _write(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def metrics_html(metrics: dict[str, Any]) -> str:
    """One encoder's summary and per-class figures."""
    baseline = metrics.get("trivial_baseline", {})
    word = split_word(metrics)
    summary = [
        [
            "scored split",
            f"{metrics.get('scored_split', 'val')} (best epoch selected on {metrics.get('selected_on', 'val')})",
        ],
        *(
            [["protocol", metrics["protocol_note"]]]
            if word == "validation" and metrics.get("protocol_note")
            else []
        ),
        ["mIoU", metrics.get("mIoU")],
        ["damage mIoU (classes 1–15)", metrics.get("damage_mIoU")],
        ["pixel accuracy", metrics.get("pixel_accuracy")],
        ["trivial 'all Clean' mIoU", baseline.get("mIoU")],
        [f"{word} images", metrics.get("n_images")],
        # Crops view: rows are crops (cache mode) or scans (native mode).
        *([[f"{word} scans", metrics.get("n_scans")]] if metrics.get("view") == "crops" else []),
        ["scored at", metrics.get("resolution")],
        ["inference ms / image", metrics.get("inference_ms_per_image")],
        ["parameters", metrics.get("parameters")],
        ["checkpoint epoch", metrics.get("checkpoint_epoch")],
        *_seed_rows(metrics.get("seeds")),
        ["device", metrics.get("device")],
    ]
    per_class = [
        [f"{c['id']} {name}", c["IoU"], c["precision"], c["recall"], c["F1"], c["support"]]
        for name, c in metrics["per_class"].items()
    ]
    encoder = str(metrics.get("encoder", ""))
    return _page(
        f"{encoder} metrics",
        [
            _table(f"{encoder}: {word} summary", ["metric", "value"], summary, "summary"),
            _table(
                "per class (n/a: 0/0, class absent from truth and prediction)",
                ["class", "IoU", "precision", "recall", "F1", "support (px)"],
                per_class,
                "per-class",
            ),
        ],
    )


def _seed_rows(seeds: dict[str, Any] | None) -> list[list[Any]]:
    """metrics.json's seeds block as summary rows: the seeds, and mean ± std with every seed's mIoU."""
    if not seeds or seeds.get("n_seeds", 1) < 2:
        return []
    miou = seeds["mIoU"]
    return [
        [
            "training seeds (figures above: seed " + str(seeds["figures_of_seed"]) + ")",
            ", ".join(map(str, seeds["seeds"])),
        ],
        ["mIoU over seeds: mean / std", f"{miou['mean']} / {miou['std']}"],
        *[[f"mIoU, seed {s}", v] for s, v in miou["per_seed"].items()],
    ]


def comparison_html(comparison: dict[str, Any]) -> str:
    """The ranking with confidence intervals, the spread over seeds and the pairwise differences."""
    tables = []
    if split_word(comparison) == "validation" and comparison.get("protocol_note"):
        tables.append(_table("protocol", ["note"], [[comparison["protocol_note"]]], "protocol"))
    tables.append(_ranking_table(comparison))
    if any(len(m.get("seeds") or []) > 1 for m in comparison["models"]):
        tables.append(_seed_table(comparison))
    if comparison.get("pairwise"):
        tables.append(_pairwise_table(comparison))
    return _page("model comparison", tables)


def _level(comparison: dict[str, Any]) -> str:
    return f"{100 * comparison.get('bootstrap', {}).get('confidence', 0.95):.0f}%"


def _ranking_table(comparison: dict[str, Any]) -> str:
    level = _level(comparison)
    columns = {
        "encoder": "encoder",
        "mIoU": "mIoU",
        "mIoU_ci_low": f"{level} low",
        "mIoU_ci_high": f"{level} high",
        "damage_mIoU": "damage mIoU",
        "damage_mIoU_ci_low": f"{level} low",
        "damage_mIoU_ci_high": f"{level} high",
        "pixel_accuracy": "pixel acc.",
        "trivial_baseline_mIoU": "trivial mIoU",
        "train_imgs_per_s": "train img/s",
        "inference_ms_per_image": "infer ms/img",
        "parameters": "parameters",
    }
    rows = [[m.get(key) for key in columns] for m in comparison["models"]]
    title = (
        f"encoders ranked by {split_word(comparison)} mIoU (predict's best encoder, chosen on "
        f"validation: {comparison.get('best_encoder')})"
    )
    return _table(title, list(columns.values()), rows, "ranking")


def _seed_table(comparison: dict[str, Any]) -> str:
    seeds = comparison["models"][0].get("seeds") or []
    rows = [
        [
            m["encoder"],
            ", ".join(map(str, m.get("seeds") or [])),
            m["mIoU"],
            m.get("mIoU_seed_std"),
            *[(m.get("mIoU_per_seed") or {}).get(str(s)) for s in seeds],
        ]
        for m in comparison["models"]
    ]
    header = ["encoder", "seeds", "mean mIoU", "std across seeds", *[f"seed {s}" for s in seeds]]
    title = "spread over training seeds (mIoU: mean over seeds; std: n − 1)"
    return _table(title, header, rows, "seeds")


def _pairwise_table(comparison: dict[str, Any]) -> str:
    boot, level = comparison.get("bootstrap", {}), _level(comparison)
    rows = [
        [f"{p['a']} − {p['b']}", metric, *(p[metric][k] for k in PAIR_FIELDS)]
        for p in comparison["pairwise"]
        for metric in HEADLINE_METRICS
    ]
    title = (
        f"pairwise differences ({boot.get('n_resamples')} paired bootstrap resamples of "
        f"{boot.get('n_units', boot.get('n_images'))} {split_word(comparison)} "
        f"{boot.get('unit', 'scan')}s; an interval containing 0 means no clear winner)"
    )
    header = [
        "pair (a − b)",
        "metric",
        "difference",
        f"{level} low",
        f"{level} high",
        "share a wins",
    ]
    return _table(title, header, rows, "pairwise")


PAIR_FIELDS = ("difference", "low", "high", "a_wins_share")


def write_metrics_html(metrics: dict[str, Any], path: str | os.PathLike[str]) -> None:
    _write(path, metrics_html(metrics))


def write_comparison_html(comparison: dict[str, Any], path: str | os.PathLike[str]) -> None:
    _write(path, comparison_html(comparison))


def modes_html(encoder: str, rows: list[dict[str, Any]]) -> str:
    """Per-class IoU scored on the cache vs. at native resolution (rows from evaluate.mode_difference)."""
    body = [
        [
            r["class"],
            "thin" if r["thin"] else "",
            r["IoU_cache"],
            r["IoU_native"],
            r["difference_pp"],
        ]
        for r in rows
    ]
    table = _table(
        f"{encoder}: the same predictions scored on training-size masks vs. native-resolution masks",
        ["class", "", "IoU cache", "IoU native", "native − cache (pp)"],
        body,
        "evaluation_modes",
    )
    return _page(f"{encoder} evaluation modes", [table])


def write_modes_html(
    encoder: str, rows: list[dict[str, Any]], path: str | os.PathLike[str]
) -> None:
    _write(path, modes_html(encoder, rows))


def loo_summary_html(summary: dict[str, Any]) -> str:
    """A leave-one-out family: per encoder the mean, std and worst fold, then mIoU per fold."""
    family = summary["family"]
    overview = [
        [
            e["encoder"],
            e["mIoU_mean"],
            e["mIoU_std"],
            e["damage_mIoU_mean"],
            e["damage_mIoU_std"],
            e["worst_fold"]["held_out"] if e["worst_fold"] else None,
            e["worst_fold"]["mIoU"] if e["worst_fold"] else None,
        ]
        for e in summary["encoders"]
    ]
    encoders = [e["encoder"] for e in summary["encoders"]]
    per_fold = []
    for i, fold in enumerate(summary["folds"]):
        cells: list[Any] = [
            fold["held_out"],
            fold["n_train"],
            fold.get("n_val"),
            fold.get("n_test"),
        ]
        for e in summary["encoders"]:
            cells += [e["folds"][i]["mIoU"], e["folds"][i]["damage_mIoU"]]
        per_fold.append(cells)
    return _page(
        f"leave-one-{family}-out",
        [
            _table(
                f"leave-one-{family}-out over {summary['n_folds']} folds (std: n − 1)",
                [
                    "encoder",
                    "mean mIoU",
                    "std",
                    "mean damage mIoU",
                    "std",
                    f"worst {family}",
                    "its mIoU",
                ],
                overview,
                "overview",
            ),
            _table(
                f"per held-out {family}: training / inner validation / held-out (test) images and test scores",
                [f"held-out {family}", "train images", "inner val images", "held-out images"]
                + [f"{e} {m}" for e in encoders for m in ("mIoU", "damage mIoU")],
                per_fold,
                "per-fold",
            ),
        ],
    )


def write_loo_summary_html(summary: dict[str, Any], path: str | os.PathLike[str]) -> None:
    _write(path, loo_summary_html(summary))
