"""A condition report per object, as a conservator files one: ``reports/<stem>.html`` (print-ready)
for every predicted scan, ``reports/index.html`` over them, and ``reports/collection.csv``, the
run's damage summed per class.

Each report shows the scan with its overlay and, per class found, its area (px, and cm² where the
scan's resolution is known), its share of the artwork's scored surface, its outlined regions, the
share of its pixels the model was unsure of, and, beside it, that model's IoU for the class on the
split it was scored on (``metrics.json`` beside the checkpoint), so the reader knows which lines
to trust. The figures are the model's, not a survey: the page says so, and names the model, its
checkpoint (file and SHA-256) and the date.
"""

from __future__ import annotations

import csv
import datetime
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from heritage_damage_seg.classes import CLASS_NAMES, DAMAGE_CLASSES, PALETTE_HEX, slug
from heritage_damage_seg.io import atomic_path, read_json, sha256

# A class whose IoU on the scored split is below this is marked: its areas are rough at best.
TRUSTED_IOU = 0.25
COLLECTION_COLUMNS = (
    "class_id",
    "class",
    "scans_with_class",
    "area_px",
    "area_cm2",
    "scans_without_resolution",
    "model_iou",
)
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #111; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } .meta { color: #444; }
img { max-width: 100%; border: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; width: 100%; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border: 1px solid #000;
  margin-right: 0.4em; vertical-align: middle; }
.unsure { color: #a00; } .note { border-left: 4px solid #e69f00; padding-left: 0.8em; }
@media print { body { margin: 0; max-width: none; } a { color: inherit; text-decoration: none; } }
"""


def model_record(checkpoint: Path, encoder: str) -> dict[str, Any]:
    """Who made the figures: the encoder, the checkpoint's file and SHA-256, and its per-class IoU
    on the split it was scored on (``metrics.json`` beside it; empty without one)."""
    metrics_file = checkpoint.parent / "metrics.json"
    metrics = read_json(metrics_file) if metrics_file.is_file() else {}
    return {
        "encoder": encoder,
        "checkpoint": checkpoint.name,
        "checkpoint_sha256": sha256(checkpoint),
        "scored_split": metrics.get("scored_split"),
        "iou": {name: c.get("IoU") for name, c in metrics.get("per_class", {}).items()},
    }


def _number(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def _fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    return "—" if value is None else f"{value:,.{digits}f}{unit}"


def _regions_per_class(outlines_file: Path) -> dict[int, int]:
    if not outlines_file.is_file():
        return {}
    regions: dict[int, int] = {}
    for feature in json.loads(outlines_file.read_text())["features"]:
        class_id = int(feature["properties"]["class_id"])
        regions[class_id] = regions.get(class_id, 0) + 1
    return regions


def class_rows(
    row: Mapping[str, Any], regions: Mapping[int, int], iou: Mapping[str, float | None]
) -> list[dict[str, Any]]:
    """The report's table: one row per damage class present in the scan (an areas row as written
    to ``damage_areas.csv``), largest first."""
    rows = []
    for class_id in DAMAGE_CLASSES:
        pixels = int(row.get(f"{slug(class_id)}_px") or 0)
        if not pixels:
            continue
        name = CLASS_NAMES[class_id]
        rows.append(
            {
                "class_id": class_id,
                "class": name,
                "area_px": pixels,
                "area_cm2": _number(row.get(f"{slug(class_id)}_cm2")),
                "surface_pct": _number(row.get(f"{slug(class_id)}_pct")),
                "regions": regions.get(class_id, 0),
                "low_confidence_pct": _number(row.get(f"{slug(class_id)}_low_confidence_pct")),
                "model_iou": iou.get(name),
            }
        )
    return sorted(rows, key=lambda r: -r["area_px"])


def _report_page(
    row: Mapping[str, Any],
    classes: Sequence[Mapping[str, Any]],
    model: Mapping[str, Any],
    date: str,
) -> str:
    stem = Path(str(row["image"])).stem
    split = model["scored_split"] or "scored"
    resolution = (
        f"{float(row['dpi_x']):g} × {float(row['dpi_y']):g} dpi ({row['resolution_source']})"
        if row.get("dpi_x") not in (None, "")
        else f"unknown ({row.get('resolution_source') or 'not given'}): areas in px only; "
        "give --dpi or a dpi table for cm²"
    )
    body = []
    for c in classes:
        iou = c["model_iou"]
        unsure = iou is None or iou < TRUSTED_IOU
        body.append(
            "<tr>"
            f'<td><span class="swatch" style="background:{PALETTE_HEX[c["class_id"]]}"></span>'
            f"{html.escape(c['class'])}</td>"
            f"<td>{c['area_px']:,}</td><td>{_fmt(c['area_cm2'], 3)}</td>"
            f"<td>{_fmt(c['surface_pct'], 2, ' %')}</td><td>{c['regions']}</td>"
            f"<td>{_fmt(c['low_confidence_pct'], 1, ' %')}</td>"
            f'<td class="{"unsure" if unsure else ""}">{_fmt(iou, 3)}{" ⚠" if unsure else ""}</td>'
            "</tr>"
        )
    table = "\n".join(body) or '<tr><td colspan="7">no damage class predicted</td></tr>'
    damaged = (
        f"{_fmt(_number(row.get('damaged_pct')), 2, ' %')} of the scored surface"
        f" ({_fmt(_number(row.get('damaged_cm2')), 2, ' cm²')})"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Condition report: {html.escape(str(row["image"]))}</title><style>{STYLE}</style></head>
<body>
<h1>Condition report: {html.escape(str(row["image"]))}</h1>
<p class="meta">{html.escape(date)} · {int(row["width"]):,} × {int(row["height"]):,} px · resolution
{html.escape(resolution)} · damaged {html.escape(damaged)}</p>
<p class="note">Every figure here is a prediction by the segmentation model
<b>{html.escape(model["encoder"])}</b> (checkpoint {html.escape(model["checkpoint"])}, SHA-256
<code>{html.escape(model["checkpoint_sha256"][:16])}…</code>), not a conservator's survey. The last
column is that model's IoU for the class on its {html.escape(split)} split: under
{TRUSTED_IOU} (⚠) the class's areas are rough at best.</p>
<img src="../overlays/{quote(stem)}.png" alt="the scan with its predicted damage">
<table><caption>Damage by class, largest first</caption>
<tr><th>class</th><th>area (px)</th><th>area (cm²)</th><th>share of the surface</th>
<th>regions</th><th>unsure pixels</th><th>model's IoU ({html.escape(split)})</th></tr>
{table}
</table>
<p class="meta">Files: <a href="../masks/{quote(stem)}.png">class mask</a> ·
<a href="../confidence/{quote(stem)}.png">confidence map</a> ·
<a href="../outlines/{quote(stem)}.geojson">outlines (GeoJSON)</a> ·
<a href="../outlines/{quote(stem)}.coco.json">outlines (COCO)</a></p>
</body></html>
"""


def collection_rows(
    per_scan: Mapping[str, Sequence[Mapping[str, Any]]], iou: Mapping[str, float | None]
) -> list[dict[str, Any]]:
    """The run summed per damage class (cm² over the scans whose resolution is known; the others
    are counted in ``scans_without_resolution``)."""
    rows = []
    for class_id in DAMAGE_CLASSES:
        found = [c for classes in per_scan.values() for c in classes if c["class_id"] == class_id]
        if not found:
            continue
        measured = [c["area_cm2"] for c in found if c["area_cm2"] is not None]
        rows.append(
            {
                "class_id": class_id,
                "class": CLASS_NAMES[class_id],
                "scans_with_class": len(found),
                "area_px": sum(c["area_px"] for c in found),
                "area_cm2": round(sum(measured), 4) if measured else None,
                "scans_without_resolution": len(found) - len(measured),
                "model_iou": iou.get(CLASS_NAMES[class_id]),
            }
        )
    return rows


def write_condition_reports(
    out_dir: Path, csv_rows: Sequence[Mapping[str, Any]], model: Mapping[str, Any]
) -> Path:
    """``out_dir/reports/``: a page per predicted scan, an index, and ``collection.csv``
    (``csv_rows``: the rows of ``damage_areas.csv``; ``model``: :func:`model_record`)."""
    reports = out_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    date = datetime.date.today().isoformat()
    per_scan: dict[str, list[dict[str, Any]]] = {}
    for row in csv_rows:
        if row.get("status") != "ok":
            continue
        stem = Path(str(row["image"])).stem
        classes = class_rows(
            row, _regions_per_class(out_dir / "outlines" / f"{stem}.geojson"), model["iou"]
        )
        per_scan[str(row["image"])] = classes
        with atomic_path(reports / f"{stem}.html") as tmp:
            tmp.write_text(_report_page(row, classes, model, date))
    with atomic_path(reports / "collection.csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLLECTION_COLUMNS)
        writer.writeheader()
        writer.writerows(collection_rows(per_scan, model["iou"]))
    links = "\n".join(
        f'<li><a href="{quote(Path(name).stem)}.html">{html.escape(name)}</a>: '
        f"{len(classes)} damage class(es)</li>"
        for name, classes in per_scan.items()
    )
    index = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Condition reports'
        f"</title><style>{STYLE}</style></head><body><h1>Condition reports ({len(per_scan)} "
        f"scans, {html.escape(model['encoder'])})</h1><ul>\n{links}\n</ul>"
        '<p><a href="collection.csv">collection.csv</a>: the run summed per class.</p></body></html>\n'
    )
    with atomic_path(reports / "index.html") as tmp:
        tmp.write_text(index)
    return reports / "index.html"
