"""The IIIF export of a prediction run (issue 25, parts 1 and 2): Image API 3 tiles the size of
each scan, one Presentation 3 manifest with a canvas per scan, the damage outlines as W3C Web
Annotations equal to the GeoJSON outlines and read back by ``import-corrections``, and the whole
folder served over loopback HTTP and opened in Mirador in headless chromium."""

from __future__ import annotations

import csv
import datetime
import functools
import hashlib
import http.server
import io
import json
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pytest
import shapely
from _checkpoints import save_random_checkpoint
from conftest import ROOT
from PIL import Image
from shapely.geometry import shape
from test_corrections import SIMPLIFIED_IOU, imported, iou, painted_mask, write_scan
from test_scan_view import painted_scan

from heritage_damage_seg.classes import CLASS_NAMES, NUM_CLASSES, PALETTE_HEX
from heritage_damage_seg.cli import main
from heritage_damage_seg.inference.corrections import Review, import_corrections
from heritage_damage_seg.inference.iiif import (
    LOCAL_BASE_URL,
    TILE_SIZE,
    IIIFError,
    annotation_page,
    checked_base_url,
    software_agent,
    write_json_file,
)
from heritage_damage_seg.inference.outlines import OutlineSettings, damage_regions
from heritage_damage_seg.inference.predict import predict_folder
from heritage_damage_seg.inference.products import ProductSettings
from heritage_damage_seg.inference.resolution import Resolution
from heritage_damage_seg.model.scan_view import ModelView

MIRADOR = ROOT / "tests" / "assets" / "mirador"
SCANS = {"big.png": (1300, 900), "small scan #2 (100%).jpg": (400, 300)}
DPI = 600.0  # big.png's, from a dpi table; the JPEG states none
LAYERS = {"scan": "jpg", "classes": "png", "confidence": "png"}


class Served:
    """A loopback HTTP server in a thread: the run's iiif/ at /, Mirador (scripts/fetch_mirador.sh) at /mirador/;
    it records every path asked for and sends CORS headers as a IIIF publisher should."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[str] = []
        served = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def translate_path(self, path: str) -> str:
                if path.startswith("/mirador/"):
                    return str(MIRADOR / unquote(path.split("?")[0].removeprefix("/mirador/")))
                return super().translate_path(path)

            def end_headers(self) -> None:
                self.send_header("Access-Control-Allow-Origin", "*")
                super().end_headers()

            def log_message(self, format: str, *args: object) -> None:
                served.requests.append(unquote(self.path.split("?")[0]))

        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
        )
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A prediction run with the IIIF export whose ids are the address of the server that
    serves it (bound first, so its random port is known)."""
    root = tmp_path_factory.mktemp("iiif_run")
    (root / "scans").mkdir()
    for seed, (name, size) in enumerate(SCANS.items()):
        painted_scan(*size, seed=seed).save(root / "scans" / name, quality=90)
    (root / "dpi.csv").write_text(f"image,dpi\nbig.png,{DPI}\n")
    checkpoint = save_random_checkpoint(
        root / "model.pt", scan_view=ModelView("resize", 64).record()
    )
    served = Served(root / "out" / "iiif")
    try:
        summary = predict_folder(
            root / "scans",
            root / "out",
            checkpoint=checkpoint,
            device_preference="cpu",
            products=ProductSettings(iiif=True, iiif_base_url=served.base_url),
            dpi_table=root / "dpi.csv",
        )
        assert summary.n_ok == len(SCANS)
        yield {"root": root, "out": root / "out", "served": served, "checkpoint": checkpoint}
    finally:
        served.close()


def local_file(run, url: str) -> Path:
    """The file of ``iiif/`` an id names (the ids are the server's URLs)."""
    base = run["served"].base_url
    assert url.startswith(base), url
    return run["out"] / "iiif" / unquote(url.removeprefix(base).split("#")[0])


def rows(run) -> dict[str, dict[str, str]]:
    with open(run["out"] / "damage_areas.csv", newline="") as handle:
        return {row["image"]: row for row in csv.DictReader(handle)}


def tile_file(folder: Path, x: int, y: int, width: int, height: int, fmt: str) -> Path:
    """A full-resolution tile's file as a client asks for it: region x,y,w,h (``full`` where the
    tile is the whole image), size w,h."""
    w, h = min(TILE_SIZE, width - x), min(TILE_SIZE, height - y)
    region = "full" if (w, h) == (width, height) else f"{x},{y},{w},{h}"
    return folder / region / f"{w},{h}" / "0" / f"default.{fmt}"


def test_every_scan_has_iiif_tile_sets_of_its_own_size(run):
    base = run["served"].base_url
    for name, (width, height) in SCANS.items():
        stem = Path(name).stem
        mask = np.asarray(Image.open(run["out"] / "masks" / f"{stem}.png"))
        for layer, fmt in LAYERS.items():
            folder = run["out"] / "iiif" / stem / layer
            info = json.loads((folder / "info.json").read_text())
            assert (info["width"], info["height"]) == (width, height) == mask.shape[::-1]
            assert (
                info["id"] == f"{base}{quote(stem)}/{layer}"
                and local_file(run, info["id"]) == folder
            )
            assert info["type"] == "ImageService3" and info["profile"] == "level0"
            assert info["@context"] == "http://iiif.io/api/image/3/context.json"
            assert info["tiles"][0]["width"] == TILE_SIZE
            assert info.get("preferredFormats", ["jpg"]) == [fmt]
            for size in info["sizes"]:  # the full images the info says exist do
                assert (
                    folder / "full" / f"{size['width']},{size['height']}/0/default.{fmt}"
                ).is_file()
            # every full-resolution tile, as a client computes its URL from the info
            for y in range(0, height, TILE_SIZE):
                for x in range(0, width, TILE_SIZE):
                    tile = tile_file(folder, x, y, width, height, fmt)
                    assert tile.is_file(), tile
        # the classes' top-left tile: each pixel its class's ARTeFACT colour, Clean transparent
        folder = run["out"] / "iiif" / stem
        tile = np.asarray(Image.open(tile_file(folder / "classes", 0, 0, width, height, "png")))
        block = mask[:512, :512]
        palette = np.array(
            [[int(PALETTE_HEX[c][i : i + 2], 16) for i in (1, 3, 5)] for c in range(NUM_CLASSES)]
        )
        damaged = (block > 0) & (block < NUM_CLASSES)
        assert damaged.any() and tile.shape == (*block.shape, 4)
        assert np.array_equal(tile[damaged][:, :3], palette[block[damaged]])
        assert (tile[damaged][:, 3] == 255).all() and (tile[~damaged][:, 3] == 0).all()
        scan_tile = np.asarray(Image.open(tile_file(folder / "scan", 0, 0, width, height, "jpg")))
        scan = np.asarray(Image.open(run["root"] / "scans" / name).convert("RGB"))[:512, :512]
        assert np.abs(scan_tile.astype(int) - scan).mean() < 6  # the scan itself, as JPEG keeps it


def test_the_manifest_has_a_canvas_per_scan_with_its_layers_and_outlines(run):
    base = run["served"].base_url
    manifest = json.loads((run["out"] / "iiif" / "manifest.json").read_text())
    assert manifest["@context"] == "http://iiif.io/api/presentation/3/context.json"
    assert manifest["type"] == "Manifest" and manifest["id"] == f"{base}manifest.json"
    assert "not a conservator's" in manifest["summary"]["en"][0]
    sha = hashlib.sha256(run["checkpoint"].read_bytes()).hexdigest()
    metadata = {m["label"]["en"][0]: m["value"]["none"][0] for m in manifest["metadata"]}
    assert metadata["Checkpoint SHA-256"] == sha and metadata["Checkpoint"] == "model.pt"
    assert [c["label"]["none"][0] for c in manifest["items"]] == list(rows(run)) == list(SCANS)
    for canvas, (name, (width, height)) in zip(manifest["items"], SCANS.items()):
        stem = Path(name).stem
        assert canvas["type"] == "Canvas" and (canvas["width"], canvas["height"]) == (width, height)
        assert canvas["id"] == f"{base}{quote(stem)}/canvas"
        (page,) = canvas["items"]
        (painting,) = page["items"]
        assert page["type"] == "AnnotationPage" and painting["motivation"] == "painting"
        assert painting["target"] == canvas["id"] and painting["body"]["type"] == "Choice"
        images = painting["body"]["items"]
        assert [i["service"][0]["id"] for i in images] == [
            f"{base}{quote(stem)}/{layer}" for layer in LAYERS
        ]
        for image in images + canvas["thumbnail"]:
            assert image["type"] == "Image" and image["service"][0]["type"] == "ImageService3"
            assert local_file(run, image["id"]).is_file()  # an image that exists
            info = json.loads(
                (local_file(run, image["service"][0]["id"]) / "info.json").read_text()
            )
            assert (info["width"], info["height"]) == (width, height)
        (outlines,) = canvas["annotations"]
        assert outlines["type"] == "AnnotationPage" and "items" not in outlines  # referenced
        assert local_file(run, outlines["id"]) == run["out"] / "iiif" / f"{stem}.annotations.json"
    # every id of the manifest is absolute and under the base URL
    ids = re.findall(r'"id": "([^"]+)"', json.dumps(manifest))
    assert ids and all(i.startswith(base) for i in ids)


def canonical_rings(
    rings: list[list[tuple[float, float]]],
) -> list[tuple[tuple[float, float], ...]]:
    """Rings without their closing point, each started at its smallest vertex and in the
    direction of its smaller second vertex: equal lists ⇔ the same rings with the same vertices."""
    result = []
    for ring in rings:
        points = [tuple(map(float, p)) for p in ring]
        if points[0] == points[-1]:
            points = points[:-1]
        start = points.index(min(points))
        forward = points[start:] + points[:start]
        backward = [forward[0], *forward[:0:-1]]
        result.append(tuple(min(forward, backward)))
    return sorted(result)


def svg_rings(value: str) -> list[list[tuple[float, float]]]:
    (d,) = re.findall(r'<path d="([^"]+)"', value)
    return [
        [tuple(map(float, pair.split())) for pair in subpath.strip().removeprefix("M").split("L")]
        for subpath in d.split("Z")
        if subpath.strip()
    ]


def geojson_rings(geometry: dict) -> list[list[tuple[float, float]]]:
    polygons = (
        [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    )
    return [[(x, -y) for x, y in ring] for polygon in polygons for ring in polygon]


def mean_confidence(
    geometry: dict, mask: np.ndarray, confidence: np.ndarray, class_id: int
) -> float:
    """The class's pixels whose centre lies in the outline, by shapely (not as iiif.py rasterises)."""
    outline = shapely.transform(shape(geometry), lambda xy: xy * np.array([1.0, -1.0]))
    x0, y0, x1, y1 = (int(v) for v in np.floor(outline.bounds))
    ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
    ys, xs = ys.clip(0, mask.shape[0] - 1), xs.clip(0, mask.shape[1] - 1)
    inside = shapely.contains_xy(outline, xs + 0.5, ys + 0.5) & (mask[ys, xs] == class_id)
    return float(confidence[ys[inside], xs[inside]].mean()) / 255


def test_the_annotations_are_the_geojson_outlines_with_class_confidence_area_and_maker(run):
    sha = hashlib.sha256(run["checkpoint"].read_bytes()).hexdigest()
    areas = rows(run)
    mm2_per_pixel = Resolution(DPI, DPI, "table").mm2_per_pixel
    assert areas["big.png"]["resolution_source"] == "table"
    assert areas["small scan #2 (100%).jpg"]["resolution_source"].startswith("unknown")
    for name in SCANS:
        stem = Path(name).stem
        page = json.loads((run["out"] / "iiif" / f"{stem}.annotations.json").read_text())
        features = json.loads((run["out"] / "outlines" / f"{stem}.geojson").read_text())["features"]
        mask = np.asarray(Image.open(run["out"] / "masks" / f"{stem}.png"))
        confidence = np.asarray(Image.open(run["out"] / "confidence" / f"{stem}.png"))
        assert page["type"] == "AnnotationPage" and len(page["items"]) == len(features) > 0
        assert int(areas[name]["regions"]) == len(features)
        for annotation, feature in zip(page["items"], features):
            properties, damage = feature["properties"], annotation["hds:damage"]
            tag, description = annotation["body"]
            assert tag["purpose"] == "tagging" and tag["value"] == properties["class"]
            assert damage["class_id"] == properties["class_id"]
            assert CLASS_NAMES[damage["class_id"]] == damage["class"]
            assert f"ARTeFACT class {damage['class_id']}" in description["value"]
            assert "machine prediction" in description["value"]
            assert "Not a conservator's assessment" in description["value"]
            selector = annotation["target"]["selector"]
            assert selector["type"] == "SvgSelector" and 'fill-rule="evenodd"' in selector["value"]
            assert canonical_rings(svg_rings(selector["value"])) == canonical_rings(
                geojson_rings(feature["geometry"])
            )
            assert annotation["target"]["source"]["id"].endswith(f"{quote(stem)}/canvas")
            assert damage["area_px"] == properties["area_px"]
            if name == "big.png":
                assert damage["area_mm2"] == pytest.approx(
                    damage["area_px"] * mm2_per_pixel, abs=1e-4
                )
                assert damage["area_mm2"] == properties["area_mm2"]
            else:
                assert damage["area_mm2"] is None and "mm² unknown" in description["value"]
            # pixel centres on a simplified edge count in GDAL's rasteriser, not in shapely's
            # strict "contains": a few boundary pixels apart
            assert damage["mean_confidence"] == pytest.approx(
                mean_confidence(feature["geometry"], mask, confidence, damage["class_id"]), abs=5e-3
            )
            creator = annotation["creator"]
            assert creator["type"] == "Software" and creator["hds:checkpoint_sha256"] == sha
            assert "model.pt" in creator["name"] and sha in creator["name"]
            made = datetime.datetime.fromisoformat(annotation["created"])
            assert abs(datetime.datetime.now(datetime.UTC) - made) < datetime.timedelta(hours=1)


def test_the_exact_outlines_as_w3c_annotations_import_back_pixel_for_pixel(tmp_path):
    mask = painted_mask()  # holes, a region in a hole, a hairline, corner-touching pixels
    write_scan(tmp_path / "scans")
    outlines = damage_regions(mask, OutlineSettings(tolerance=0, min_area=1))
    page = annotation_page(
        "scan",
        outlines,
        mask,
        np.full(mask.shape, 200, dtype=np.uint8),
        mm2_per_pixel=None,
        creator=software_agent(
            {"encoder": "convnext_tiny", "checkpoint": "m.pt", "checkpoint_sha256": "0" * 64}
        ),
        created="2026-12-04T00:00:00+00:00",
        base_url=LOCAL_BASE_URL,
    )
    path = tmp_path / "scan.annotations.json"
    write_json_file(path, page)
    assert np.array_equal(imported(tmp_path, path), mask)


def test_the_run_s_annotation_pages_import_as_its_geojson_does(run, tmp_path):
    """predict's annotation page → import-corrections: the GeoJSON's mask, and predict's mask
    within the outlines' simplification (regions under the min area have no outline)."""
    scans = run["root"] / "scans"
    predicted = np.asarray(Image.open(run["out"] / "masks" / "big.png"))
    back = {}
    for kind, path in (
        ("w3c", run["out"] / "iiif" / "big.annotations.json"),
        ("geojson", run["out"] / "outlines" / "big.geojson"),
    ):
        (written,) = import_corrections(
            [path],
            [scans / "big.png"],
            tmp_path / kind,
            Review("A. Restorer", "clean", "2026-12-04"),
        )
        assert written.corrections.format == kind
        back[kind] = np.asarray(Image.open(tmp_path / kind / "masks" / "big.png"))
    assert np.array_equal(back["w3c"], back["geojson"])
    counts = np.bincount(predicted.ravel(), minlength=256)
    large = [c for c in range(1, NUM_CLASSES) if counts[c] >= 5000]
    assert large
    for c in large:
        assert iou(back["w3c"] == c, predicted == c) >= SIMPLIFIED_IOU, CLASS_NAMES[c]


@pytest.mark.parametrize(
    "url",
    ["file:///srv/iiif/", "ftp://example.org/iiif/", "example.org/iiif", "https://x.org/?a=1"],
)
def test_a_base_url_that_is_not_http_is_refused_naming_the_option(url, tmp_path, capsys):
    with pytest.raises(IIIFError, match=r"--iiif-base-url \(predict\.iiif_base_url\)"):
        ProductSettings(iiif=True, iiif_base_url=url)
    painted_scan(64, 48).save(tmp_path / "scan.png")
    code = main(
        ["predict", str(tmp_path / "scan.png"), "-o", str(tmp_path / "out"), "--checkpoint",
         str(tmp_path / "missing.pt"), "--iiif", "--iiif-base-url", url]
    )  # fmt: skip
    assert code == 2 and "--iiif-base-url" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_a_base_url_gets_its_slash_and_none_is_the_local_server():
    assert checked_base_url("https://example.org/damage/iiif") == "https://example.org/damage/iiif/"
    assert checked_base_url(None) == LOCAL_BASE_URL == "http://localhost:8000/"


# Messages Mirador 4.0.0 logs on every page whatever it shows, allowed by their exact text:
# React 19 deprecating element.ref, which a Mirador dependency still reads (console.error), and
# reselect's development check that a Mirador selector returns its input (console.warn).
MIRADOR_NOISE = (
    "Accessing element.ref was removed in React 19. ref is now a regular prop. It will be "
    "removed from the JSX Element type in a future release.",
    "The result function returned its own inputs without modification.",
)


def console_problems(browser) -> list[str]:
    return [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] in ("SEVERE", "WARNING")
        and not any(noise in entry["message"] for noise in MIRADOR_NOISE)
    ]


@pytest.mark.slow
def test_mirador_shows_the_scan_from_its_tiles_and_lists_the_outlines(run, browser):
    Keys = pytest.importorskip("selenium.webdriver.common.keys").Keys
    if not (MIRADOR / "mirador.min.js").exists():
        if os.environ.get("CI"):
            pytest.fail("CI must fetch Mirador first: bash scripts/fetch_mirador.sh (needs npm)")
        pytest.skip("needs Mirador: bash scripts/fetch_mirador.sh (needs npm)")
    served = run["served"]
    page = json.loads((run["out"] / "iiif" / "big.annotations.json").read_text())
    manifest_url = f"{served.base_url}manifest.json"
    served.requests.clear()
    browser.get(f"{served.base_url}mirador/index.html?manifest={quote(manifest_url, safe='')}")
    expected = f"Showing {len(page['items'])} annotations"
    deadline = time.monotonic() + 60
    while expected not in browser.execute_script("return document.body.innerText"):
        assert time.monotonic() < deadline, browser.execute_script(
            "return document.body.innerText"
        )[:2000]
        time.sleep(0.3)
    deadline = time.monotonic() + 30
    tiles = []
    while not tiles:  # full-resolution tiles of the scan, as OpenSeadragon asks for them
        tiles = [
            p
            for p in served.requests
            if re.fullmatch(r"/big/scan/\d+,\d+,\d+,\d+/\d+,\d+/0/default\.jpg", p)
        ]
        assert time.monotonic() < deadline, served.requests
        time.sleep(0.3)
    time.sleep(2)  # the tiles are drawn in the next frames
    assert "/manifest.json" in served.requests and "/big.annotations.json" in served.requests
    assert "/big/scan/info.json" in served.requests

    # the panel lists every outline, each with its class (a tag chip) and its description
    panel = browser.execute_script("return document.body.innerText")
    for annotation in page["items"]:
        assert annotation["body"][1]["value"] in panel
    listed = {chip.text for chip in browser.find_elements("css selector", ".MuiChip-label")}
    assert listed == {a["body"][0]["value"] for a in page["items"]}

    # the canvas shows the scan: not blank, and like the scan where nothing covers it
    shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB"))
    box = browser.execute_script(
        "const r = document.querySelector('.openseadragon-canvas').getBoundingClientRect();"
        "return [Math.ceil(r.left), Math.ceil(r.top), Math.floor(r.right), Math.floor(r.bottom)];"
    )
    view = shot[box[1] : box[3], box[0] : box[2]]
    assert view.std() > 20, "the canvas is blank"

    # the layers panel lists the Choice's three images; showing the classes draws their tiles
    browser.find_element("css selector", "button[aria-label=Layers]").click()
    time.sleep(0.5)
    layers = browser.execute_script(
        "return [...document.querySelectorAll('li')].map(l => l.innerText.split('\\n')[0])"
    )
    assert layers[:3] == [image["label"]["en"][0] for image in manifest_images(run)]
    served.requests.clear()
    browser.find_elements("css selector", "button[aria-label='Show layer']")[0].click()  # classes
    deadline = time.monotonic() + 30
    while not any(re.fullmatch(r"/big/classes/.+/default\.png", p) for p in served.requests):
        assert time.monotonic() < deadline, served.requests
        time.sleep(0.3)
    time.sleep(2)
    shown = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB"))
    assert np.abs(shown[box[1] : box[3], box[0] : box[2]].astype(int) - view).mean() > 5
    assert console_problems(browser) == []

    # the screenshot of docs/images/mirador.png: the classes at half opacity over the scan, the
    # outlines listed
    opacity = browser.find_elements("css selector", "li input[aria-label='Layer opacity']")[1]
    opacity.send_keys(Keys.BACKSPACE * 3 + "50")
    time.sleep(1)
    browser.find_element("css selector", "button[aria-label=Annotations]").click()
    time.sleep(2)
    assert console_problems(browser) == []
    target = Path(os.environ.get("HDS_DOCS_SCREENSHOT_DIR", run["root"])) / "mirador.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(target))


def manifest_images(run) -> list[dict]:
    manifest = json.loads((run["out"] / "iiif" / "manifest.json").read_text())
    return manifest["items"][0]["items"][0]["items"][0]["body"]["items"]
