"""Damage outlines: polygons per connected region, in GeoJSON (QGIS) and COCO (CVAT)."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw
from shapely.geometry import shape

from heritage_damage_seg.classes import IGNORE_INDEX, NUM_CLASSES
from heritage_damage_seg.inference.outlines import (
    OutlineSettings,
    coco_rle,
    damage_regions,
    write_coco,
    write_geojson,
)

HEIGHT, WIDTH = 300, 420


def painted_mask() -> np.ndarray:
    """Blobs, a ring (a region with a hole), a diagonal hairline crack, corner-touching pixels,
    specks under the minimum area, and 255 outside the artwork."""
    image = Image.new("L", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(image)
    draw.ellipse((20, 20, 140, 120), fill=1)
    draw.ellipse((200, 30, 330, 160), fill=10)
    draw.ellipse((235, 65, 295, 125), fill=0)  # the hole of the stain
    draw.ellipse((255, 85, 275, 105), fill=6)  # dirt inside the hole
    draw.line((160, 290, 390, 175), fill=9, width=1)  # hairline crack
    draw.rectangle((60, 180, 150, 260), fill=2)
    draw.rectangle((400, 0, 419, 299), fill=IGNORE_INDEX)
    mask = np.array(image)
    for k in range(6):  # a staircase of pixels touching at corners: one 8-connected region
        mask[200 + k, 300 + k] = 4
        mask[200 + k, 301 + k] = 4
    mask[5, 5] = mask[5, 9] = mask[290, 200] = 13  # specks
    return mask


def class_pixels(mask: np.ndarray) -> np.ndarray:
    return np.bincount(mask.ravel(), minlength=256)[:NUM_CLASSES]


def outline_areas(outlines) -> np.ndarray:
    areas = np.zeros(NUM_CLASSES)
    for region in outlines.regions:
        areas[region.class_id] += region.outline.area
    return areas


def test_exact_outlines_cover_every_damage_pixel_and_small_regions_are_counted():
    mask = painted_mask()
    outlines = damage_regions(mask, OutlineSettings(tolerance=0, min_area=4))
    counts = class_pixels(mask)
    assert outlines.dropped == {13: 3} and outlines.dropped_pixels == {13: 3}
    counts[13] -= 3
    assert np.array_equal(outline_areas(outlines)[1:], counts[1:])
    assert all(region.pixels == round(region.outline.area) for region in outlines.regions)
    by_class = {c: [r for r in outlines.regions if r.class_id == c] for c in (4, 9, 10)}
    assert len(by_class[9]) == 1 and len(by_class[4]) == 1  # diagonal steps stay one region
    assert len(by_class[10]) == 1 and by_class[10][0].outline.interiors  # the ring keeps its hole
    assert all(region.outline.is_valid for region in outlines.regions)


def test_simplified_outlines_stay_valid_and_within_one_percent_of_the_pixel_counts():
    mask = painted_mask()
    outlines = damage_regions(mask, OutlineSettings(tolerance=1.0, min_area=16))
    counts = class_pixels(mask)
    areas = outline_areas(outlines)
    for c in (
        1,
        2,
        10,
    ):  # regions a 1 px tolerance is small against (not the 20 px dirt disc: 1.7 %)
        assert areas[c] == pytest.approx(counts[c], rel=0.01)
    exact_vertices = sum(
        len(r.outline.exterior.coords)
        for r in damage_regions(mask, OutlineSettings(0, 16)).regions
        if r.outline.geom_type == "Polygon"
    )
    vertices = sum(
        len(r.outline.exterior.coords) for r in outlines.regions if r.outline.geom_type == "Polygon"
    )
    assert vertices < exact_vertices / 2
    assert all(region.outline.is_valid for region in outlines.regions)


def test_geojson_is_valid_closed_and_in_qgis_pixel_coordinates(tmp_path):
    mask = painted_mask()
    outlines = damage_regions(mask, OutlineSettings(tolerance=1.0, min_area=4))
    write_geojson(tmp_path / "scan.geojson", outlines, scan="scan.png", width=WIDTH, height=HEIGHT)
    document = json.loads((tmp_path / "scan.geojson").read_text())
    assert document["type"] == "FeatureCollection" and len(document["features"]) == len(
        outlines.regions
    )
    assert document["outlines"]["small_regions_dropped"] == 3
    for feature in document["features"]:
        geometry = feature["geometry"]
        polygons = (
            [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
        )
        for rings in polygons:
            for ring in rings:
                assert ring[0] == ring[-1] and len(ring) >= 4
                xs, ys = zip(*ring)
                assert 0 <= min(xs) and max(xs) <= WIDTH and -HEIGHT <= min(ys) and max(ys) <= 0
        polygon = shape(geometry)
        assert polygon.is_valid, feature["properties"]
        assert polygon.area == pytest.approx(feature["properties"]["outline_area_px"], abs=0.1)
    stain = [f for f in document["features"] if f["properties"]["class"] == "Staining"]
    assert len(stain) == 1 and stain[0]["properties"]["area_px"] == (mask == 10).sum()
    # The stain's centre of mass lies where it is painted: row ~95 of the scan is y = -95.
    centre = shape(stain[0]["geometry"]).centroid
    assert centre.x == pytest.approx(265, abs=2) and centre.y == pytest.approx(-95, abs=2)


def test_coco_loads_with_pycocotools_and_its_masks_are_the_regions(tmp_path):
    coco_module = pytest.importorskip("pycocotools.coco")
    mask = painted_mask()
    outlines = damage_regions(mask, OutlineSettings(tolerance=0.5, min_area=4))
    write_coco(tmp_path / "scan.coco.json", outlines, scan="scan.png", width=WIDTH, height=HEIGHT)
    coco = coco_module.COCO(str(tmp_path / "scan.coco.json"))
    assert coco.getImgIds() == [1] and len(coco.getAnnIds()) == len(outlines.regions)
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} >= {"Cracks", "Staining", "Peel"}
    for class_id in (1, 2, 10):
        annotations = coco.loadAnns(coco.getAnnIds(catIds=[class_id]))
        painted = np.zeros((HEIGHT, WIDTH), dtype=bool)
        for annotation in annotations:
            painted |= coco.annToMask(annotation).astype(bool)
        truth = mask == class_id
        iou = (painted & truth).sum() / (painted | truth).sum()
        assert iou > 0.97, (class_id, iou)
    ring = coco.loadAnns(coco.getAnnIds(catIds=[10]))[0]
    assert isinstance(ring["segmentation"], dict) and ring["iscrowd"] == 1  # a hole: RLE
    assert coco.annToMask(ring)[95, 265] == 0  # the hole is not part of the stain


def test_bad_settings_and_inputs_say_what_to_change():
    with pytest.raises(ValueError, match="tolerance"):
        OutlineSettings(tolerance=-1)
    with pytest.raises(ValueError, match="min_area"):
        OutlineSettings(min_area=0)
    with pytest.raises(ValueError, match="uint8"):
        damage_regions(np.zeros((4, 4), dtype=np.int32))


def test_rle_in_bands_of_rows_equals_pycocotools_encoding_of_the_whole_mask():
    mask_utils = pytest.importorskip("pycocotools.mask")
    from shapely.geometry import box

    height, width = 60, 50
    ring = box(5, 0, 45, 60).difference(
        box(15, 10, 35, 50)
    )  # spans every row: runs join across columns
    expected = np.zeros((height, width), dtype=np.uint8, order="F")
    expected[:, 5:45] = 1
    expected[10:50, 15:35] = 0
    for block in (7 * width, 2**24):  # 7 rows a band, or all at once
        rle = coco_rle(ring, height, width, block_pixels=block)
        assert sum(rle["counts"]) == height * width
        decoded = mask_utils.decode(mask_utils.frPyObjects(rle, height, width))
        assert np.array_equal(decoded, expected)


def test_outlines_read_from_the_mask_png_equal_those_of_the_array(tmp_path):
    from heritage_damage_seg.inference.confidence import save_grey_png

    mask = painted_mask()
    save_grey_png(mask, tmp_path / "mask.png")
    settings = OutlineSettings(tolerance=1.0, min_area=4)
    from_file, from_array = (
        damage_regions(tmp_path / "mask.png", settings),
        damage_regions(mask, settings),
    )
    assert [(r.class_id, r.pixels, r.outline.wkt) for r in from_file.regions] == [
        (r.class_id, r.pixels, r.outline.wkt) for r in from_array.regions
    ]
    assert from_file.dropped == from_array.dropped
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="one-band 8-bit class map"):
        damage_regions(tmp_path / "rgb.png")
