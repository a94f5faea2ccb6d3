"""The damage viewer of a prediction run, opened from disk in a real headless browser (Debian's
chromium via chromedriver), and the outlines and confidence of the same run."""

import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from _checkpoints import save_random_checkpoint
from PIL import Image
from shapely.geometry import shape
from test_scan_view import painted_scan

from heritage_damage_seg.classes import NUM_CLASSES, slug
from heritage_damage_seg.inference.predict import predict_folder
from heritage_damage_seg.inference.products import ProductSettings
from heritage_damage_seg.model.scan_view import ModelView

BIG = (3000, 2000)  # a 6 MP scan: a pyramid of 5 levels above the overview


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A prediction run with the viewer over a multi-megapixel scan and a small JPEG whose name
    needs escaping in a URL."""
    root = tmp_path_factory.mktemp("viewer_run")
    (root / "scans").mkdir()
    painted_scan(*BIG).save(root / "scans" / "big.png")
    painted_scan(640, 480, seed=1).save(root / "scans" / "small scan #2 (100%).jpg", quality=90)
    checkpoint = save_random_checkpoint(
        root / "model.pt", scan_view=ModelView("resize", 64).record()
    )
    summary = predict_folder(
        root / "scans",
        root / "out",
        checkpoint=checkpoint,
        device_preference="cpu",
        products=ProductSettings(viewer=True),
    )
    assert summary.n_ok == 2
    return root / "out"


def wait_until_drawn(browser, timeout: float = 60.0) -> None:
    """Every tile the two viewers need for their current view is loaded and drawn."""
    deadline = time.monotonic() + timeout
    while not browser.execute_script("return !!window.hdsViewer && window.hdsViewer.fullyLoaded()"):
        assert time.monotonic() < deadline, "the viewer did not finish loading its tiles"
        time.sleep(0.2)
    time.sleep(0.5)  # the next animation frames draw them


def problems(browser) -> list[str]:
    """Failed tile or image loads and console errors since the last call."""
    stats = browser.execute_script("return window.hdsViewer.stats")
    found = [f"tile failed: {f}" for f in stats["failures"]] + [
        f"open failed: {f}" for f in stats["openFailures"]
    ]
    return found + [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] in ("SEVERE", "WARNING")
    ]


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        return {row["image"]: row for row in csv.DictReader(handle)}


def screen_colour(browser, x: int, y: int) -> np.ndarray:
    """The colour the page shows over scan pixel (x, y), from a screenshot of the window."""
    point = browser.execute_script(
        "const p = window.hdsViewer.screenPoint(arguments[0], arguments[1]);"
        "const box = document.getElementById('scan-view').getBoundingClientRect();"
        "return [Math.floor(box.left + p.x), Math.floor(box.top + p.y)];",
        x + 0.5,
        y + 0.5,
    )
    shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB"))
    return shot[point[1], point[0]].astype(int)


def interior_pixel(mask: np.ndarray, class_id: int, margin: int = 12) -> tuple[int, int]:
    """(x, y) of a pixel of ``class_id`` whose whole (2·margin+1)² neighbourhood is that class."""
    inside = (mask == class_id).astype(np.int32)
    summed = np.pad(inside, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    side = 2 * margin + 1
    window = (
        summed[side:, side:]
        - summed[:-side, side:]
        - summed[side:, :-side]
        + summed[:-side, :-side]
    )
    ys, xs = np.nonzero(window == side * side)
    assert len(ys), f"no {side}×{side} block of class {class_id}"
    return int(xs[len(xs) // 2]) + margin, int(ys[len(ys) // 2]) + margin


def toggle_class(browser, class_id: int) -> None:
    browser.find_element(
        "css selector", f'#legend tr[data-class="{class_id}"] input[type=checkbox]'
    ).click()
    time.sleep(0.5)


@pytest.mark.slow
def test_the_viewer_opens_from_disk_and_shows_each_class_on_and_off(run, browser):
    browser.get((run / "viewer" / "index.html").as_uri())
    wait_until_drawn(browser)
    assert problems(browser) == []
    assert browser.execute_script("return window.hdsViewer.stats.tilesLoaded") > 0

    # The legend's areas are damage_areas.csv's, class by class.
    row = read_rows(run / "damage_areas.csv")["big.png"]
    for c in range(NUM_CLASSES):
        cells = browser.find_elements("css selector", f'#legend tr[data-class="{c}"] td')
        assert (
            cells[3].find_element("css selector", ".px").get_attribute("data-px")
            == row[f"{slug(c)}_px"]
        )
        assert (
            cells[4].find_element("css selector", ".pct").get_attribute("data-pct")
            == row[f"{slug(c)}_pct"]
        )
        assert cells[3].text.replace(",", "") == row[f"{slug(c)}_px"]

    # Zoomed in on a region of the most frequent damage class, switching it off changes the pixels there.
    mask = np.asarray(Image.open(run / "masks" / "big.png"))
    counts = np.bincount(mask.ravel(), minlength=256)[1:NUM_CLASSES]
    class_id = int(counts.argmax()) + 1
    x, y = interior_pixel(mask, class_id)
    browser.execute_script(
        "const v = window.hdsViewer.scanViewer.viewport;"
        "v.fitBounds(v.imageToViewportRectangle(arguments[0] - 60, arguments[1] - 40, 120, 80), true);",
        x,
        y,
    )
    wait_until_drawn(browser)
    shown = screen_colour(browser, x, y)
    toggle_class(browser, class_id)
    hidden = screen_colour(browser, x, y)
    assert np.abs(shown - hidden).sum() > 60, (shown, hidden)
    scan_pixel = np.asarray(Image.open(run.parent / "scans" / "big.png").convert("RGB"))[
        y, x
    ].astype(int)
    assert np.abs(hidden - scan_pixel).max() <= 12  # the scan itself, as JPEG tiles keep it
    toggle_class(browser, class_id)
    assert np.abs(screen_colour(browser, x, y) - shown).max() <= 2

    # The confidence layer replaces the classes; then the other scan, from the list.
    browser.find_element("css selector", "input[name=layer][value=confidence]").click()
    wait_until_drawn(browser)
    assert np.abs(screen_colour(browser, x, y) - shown).sum() > 30
    browser.find_element("partial link text", "small scan #2").click()  # a name to escape in URLs
    wait_until_drawn(browser)
    assert browser.find_element("id", "scan-name").text == "small scan #2 (100%).jpg"
    assert problems(browser) == []


@pytest.mark.slow
def test_the_outlines_of_a_predicted_scan_match_its_mask_and_load_as_coco(run):
    mask = np.asarray(Image.open(run / "masks" / "big.png"))
    counts = np.bincount(mask.ravel(), minlength=256)
    collection = json.loads((run / "outlines" / "big.geojson").read_text())
    exact = np.zeros(NUM_CLASSES, dtype=np.int64)
    outline = np.zeros(NUM_CLASSES)
    for feature in collection["features"]:
        geometry = shape(feature["geometry"])
        assert geometry.is_valid, feature["properties"]
        exact[feature["properties"]["class_id"]] += feature["properties"]["area_px"]
        outline[feature["properties"]["class_id"]] += geometry.area
    dropped = collection["outlines"]["small_region_pixels_dropped"]
    assert exact[1:].sum() + dropped == counts[1:NUM_CLASSES].sum()
    for c in range(1, NUM_CLASSES):
        if counts[c] >= 20_000:  # a 1 px tolerance is small against these classes' regions
            assert outline[c] == pytest.approx(counts[c], rel=0.01), slug(c)
    rows = read_rows(run / "damage_areas.csv")["big.png"]
    assert int(rows["regions"]) == len(collection["features"])
    coco = pytest.importorskip("pycocotools.coco").COCO(str(run / "outlines" / "big.coco.json"))
    assert len(coco.getAnnIds()) == len(collection["features"])
    assert coco.loadImgs(1)[0]["width"] == BIG[0]
    confidence = np.asarray(Image.open(run / "confidence" / "big.png"))
    assert confidence.shape == mask.shape and confidence.min() >= 255 // NUM_CLASSES
    assert float(rows["mean_confidence"]) == pytest.approx(confidence.mean() / 255, abs=1e-4)
