"""Areas in cm²: the resolution read from each format's header (and the 72-dpi and missing cases),
the order of table, --dpi and file, the arithmetic against hand-made masks, and the refusals."""

import csv

import numpy as np
import pytest
from _checkpoints import save_random_checkpoint
from PIL import Image

from heritage_damage_seg.classes import NUM_CLASSES, slug
from heritage_damage_seg.inference.areas import PHYSICAL_COLUMNS, damage_areas
from heritage_damage_seg.inference.predict import PredictError, predict_folder
from heritage_damage_seg.inference.resolution import (
    Resolution,
    ResolutionError,
    file_resolution,
    read_dpi_table,
    scan_resolution,
)
from heritage_damage_seg.model.sliding import SlidingSettings

PIXELS = np.zeros((30, 40, 3), dtype=np.uint8)


def saved(path, **options):
    Image.fromarray(PIXELS).save(path, **options)
    return path


@pytest.mark.parametrize(
    ("name", "options", "dpi"),
    [
        ("phys.png", {"dpi": (300, 300)}, 300),
        ("inch.tif", {"dpi": (400, 400)}, 400),
        ("cm.tif", {"resolution": 236.22, "resolution_unit": "cm"}, 600),  # px/cm
        ("jfif.jpg", {"dpi": (1200, 1200)}, 1200),
        ("wide.png", {"dpi": (300, 600)}, (300, 600)),
    ],
)
def test_the_resolution_a_file_states_is_read_from_its_header(tmp_path, name, options, dpi):
    found = file_resolution(saved(tmp_path / name, **options))
    x, y = dpi if isinstance(dpi, tuple) else (dpi, dpi)
    assert found.source == "file"
    assert found.x_dpi == pytest.approx(x, rel=1e-3) and found.y_dpi == pytest.approx(y, rel=1e-3)


@pytest.mark.parametrize(
    ("name", "options", "why"),
    [
        ("none.png", {}, "states no resolution"),
        ("none.jpg", {}, "states no resolution"),  # JFIF density 1:1, unit 0 (aspect only)
        ("screen.png", {"dpi": (72, 72)}, "placeholder"),
        ("screen.jpg", {"dpi": (96, 96)}, "placeholder"),
        ("default.tif", {}, "placeholder"),  # Pillow's TIFF writer stamps 1 dpi
    ],
)
def test_a_missing_or_placeholder_resolution_is_unknown_and_gives_no_cm2(
    tmp_path, name, options, why
):
    found = file_resolution(saved(tmp_path / name, **options))
    assert not found.known and found.source.startswith("unknown") and why in found.source
    areas = damage_areas(np.ones((10, 10), dtype=np.uint8), found)
    assert all(areas[column] is None for column in PHYSICAL_COLUMNS if column.endswith("_cm2"))
    assert areas["resolution_source"] == found.source


def test_areas_in_cm2_of_a_hand_made_mask():
    """300 dpi: a 300×300 px square is one square inch, 6.4516 cm²."""
    mask = np.zeros((600, 900), dtype=np.uint8)
    mask[:300, :300] = 1  # one square inch of class 1
    mask[300:, 600:] = 255  # outside the artwork: not scored
    areas = damage_areas(mask, Resolution(300.0, 300.0, "--dpi"))
    assert areas[f"{slug(1)}_cm2"] == pytest.approx(2.54 * 2.54)
    assert areas["damaged_cm2"] == pytest.approx(2.54 * 2.54)
    scored_inches = (600 * 900 - 300 * 300) / 300**2
    assert areas["scored_cm2"] == pytest.approx(scored_inches * 2.54 * 2.54)
    assert sum(areas[f"{slug(c)}_cm2"] for c in range(NUM_CLASSES)) == pytest.approx(
        areas["scored_cm2"]
    )
    # 150 dpi across, 600 down: a pixel is 1/150 × 1/600 in.
    tall = damage_areas(mask, Resolution(150.0, 600.0, "table"))
    assert tall[f"{slug(1)}_cm2"] == pytest.approx(90_000 / (150 * 600) * 2.54 * 2.54)


def test_a_table_beats_dpi_which_beats_the_file(tmp_path):
    scan = saved(tmp_path / "a.png", dpi=(300, 300))
    assert scan_resolution(scan).x_dpi == pytest.approx(300, rel=1e-3)
    assert scan_resolution(scan, dpi=600.0).source == "--dpi"
    by_table = scan_resolution(scan, dpi=600.0, table={"a": 1200.0})
    assert (by_table.x_dpi, by_table.source) == (1200.0, "table")


def test_the_dpi_table_refuses_what_it_cannot_use(tmp_path):
    scans = [saved(tmp_path / "a.png"), saved(tmp_path / "b.png")]
    table = tmp_path / "dpi.csv"

    def write(rows, header=("image", "dpi")):
        with open(table, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)

    write([("a.png", "600"), ("b", "300")])
    assert read_dpi_table(table, scans) == {"a.png": 600.0, "b": 300.0}
    write([("a.png", "600"), ("missing.tif", "300")])
    with pytest.raises(ResolutionError, match="missing.tif"):
        read_dpi_table(table, scans)
    write([("a.png", "0")])
    with pytest.raises(ResolutionError, match=r"dpi\.csv line 2 \(a\.png\)"):
        read_dpi_table(table, scans)
    write([("a.png", "many")])
    with pytest.raises(ResolutionError, match="not a number"):
        read_dpi_table(table, scans)
    write([("a.png", "600")], header=("file", "resolution"))
    with pytest.raises(ResolutionError, match="columns image and dpi"):
        read_dpi_table(table, scans)


def test_a_dpi_of_zero_stops_the_run_before_any_scan(tmp_path):
    scan = saved(tmp_path / "a.png")
    with pytest.raises(PredictError, match=r"--dpi \(predict\.dpi\).*positive"):
        predict_folder([scan], tmp_path / "out", dpi=0)
    assert not (tmp_path / "out").exists()


def test_predict_writes_cm2_from_the_files_resolution(tmp_path):
    checkpoint = save_random_checkpoint(tmp_path / "model_best.pt")
    scans = tmp_path / "scans"
    scans.mkdir()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(scans / "measured.png", dpi=(300, 300))
    Image.fromarray(pixels).save(scans / "unmeasured.png")
    predict_folder(
        scans, tmp_path / "out", checkpoint=checkpoint, settings=SlidingSettings(batch_size=4)
    )
    with open(tmp_path / "out" / "damage_areas.csv", newline="") as handle:
        rows = {row["image"]: row for row in csv.DictReader(handle)}
    measured, unmeasured = rows["measured.png"], rows["unmeasured.png"]
    mm2 = (25.4 / float(measured["dpi_x"])) * (25.4 / float(measured["dpi_y"]))
    assert measured["resolution_source"] == "file"
    assert float(measured["scored_cm2"]) == pytest.approx(90 * 130 * mm2 / 100, abs=1e-4)
    for c in range(NUM_CLASSES):
        pixels_c = int(measured[f"{slug(c)}_px"])
        assert float(measured[f"{slug(c)}_cm2"]) == pytest.approx(pixels_c * mm2 / 100, abs=1e-4)
    assert unmeasured["scored_cm2"] == "" and unmeasured["resolution_source"].startswith("unknown")


def test_the_outlines_state_each_regions_area_in_mm2(tmp_path):
    """GeoJSON and COCO carry area_mm2 = area_px × the pixel's mm² (null when unknown)."""
    import json

    checkpoint = save_random_checkpoint(tmp_path / "model_best.pt")
    scans = tmp_path / "scans"
    scans.mkdir()
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(scans / "scan.png")
    predict_folder(
        scans,
        tmp_path / "out",
        checkpoint=checkpoint,
        settings=SlidingSettings(batch_size=4),
        dpi=600.0,
    )
    mm2 = (25.4 / 600) ** 2
    geojson = json.loads((tmp_path / "out/outlines/scan.geojson").read_text())
    coco = json.loads((tmp_path / "out/outlines/scan.coco.json").read_text())
    assert geojson["scan"]["mm2_per_pixel"] == pytest.approx(mm2)
    assert geojson["features"], "a random model should outline some damage"
    for feature in geojson["features"]:
        properties = feature["properties"]
        assert properties["area_mm2"] == pytest.approx(properties["area_px"] * mm2, abs=1e-4)
    for annotation in coco["annotations"]:
        attributes = annotation["attributes"]
        assert attributes["area_mm2"] == pytest.approx(attributes["area_px"] * mm2, abs=1e-4)


def test_each_scan_gets_a_condition_report_with_every_class_row(tmp_path):
    """reports/<stem>.html: a row per damage class the scan holds, with its areas as in
    damage_areas.csv and the model's IoU from the metrics.json beside the checkpoint; the
    collection CSV sums the classes over the scans."""
    import json

    from heritage_damage_seg.classes import CLASS_NAMES, DAMAGE_CLASSES

    (tmp_path / "run").mkdir()
    checkpoint = save_random_checkpoint(tmp_path / "run" / "model_best.pt")
    iou = {name: 0.1 * (i % 10) for i, name in enumerate(CLASS_NAMES)}
    (checkpoint.parent / "metrics.json").write_text(
        json.dumps({"scored_split": "test", "per_class": {n: {"IoU": v} for n, v in iou.items()}})
    )
    scans = tmp_path / "scans"
    scans.mkdir()
    rng = np.random.default_rng(2)
    for stem, dpi in (("a", (300, 300)), ("b", None)):
        pixels = rng.integers(0, 256, (80, 112, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(scans / f"{stem}.png", **({"dpi": dpi} if dpi else {}))
    out = tmp_path / "out"
    predict_folder(scans, out, checkpoint=checkpoint, settings=SlidingSettings(batch_size=4))
    with open(out / "damage_areas.csv", newline="") as handle:
        rows = {row["image"]: row for row in csv.DictReader(handle)}
    totals = {c: 0 for c in DAMAGE_CLASSES}
    for name, row in rows.items():
        page = (out / "reports" / f"{name[:-4]}.html").read_text()
        present = [c for c in DAMAGE_CLASSES if int(row[f"{slug(c)}_px"])]
        assert present, "a random model should predict some damage"
        assert page.count('<span class="swatch"') == len(present)
        for c in present:
            totals[c] += int(row[f"{slug(c)}_px"])
            assert f"{CLASS_NAMES[c]}</td><td>{int(row[f'{slug(c)}_px']):,}</td>" in page
            assert f"{iou[CLASS_NAMES[c]]:.3f}" in page
        assert "checkpoint model_best.pt" in page and "not a conservator" in page
    assert "resolution\n300 × 300 dpi" in (out / "reports/a.html").read_text().replace(
        "299.99", "300"
    )
    assert "unknown" in (out / "reports/b.html").read_text()
    with open(out / "reports" / "collection.csv", newline="") as handle:
        collection = {int(r["class_id"]): r for r in csv.DictReader(handle)}
    assert {c: int(r["area_px"]) for c, r in collection.items()} == {
        c: n for c, n in totals.items() if n
    }
    assert all(r["scans_without_resolution"] in ("0", "1") for r in collection.values())
    assert (out / "reports" / "index.html").is_file()
