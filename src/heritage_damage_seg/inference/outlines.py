"""Damage outlines for correction: each connected damage region as a polygon with its class and area.

Regions are the 8-connected components of each damage class (1–15) of the mask, so a diagonal
hairline crack stays one region. They are vectorised by GDAL's polygonize (through
``rasterio.features.shapes``): pixel-edge polygons whose area is exactly the region's pixel
count, holes included. Self-touching rings (pixels that meet at a corner) are split by shapely's
``make_valid``; each region is then simplified with shapely's topology-preserving Douglas–Peucker
at ``tolerance`` px (0: the exact pixel edges). Regions under ``min_area`` pixels are dropped and
counted per class.

Two files per scan:

* ``<stem>.geojson``: a FeatureCollection in the scan's pixel coordinates as QGIS opens a scan
  without georeferencing (x = column, y = −row: the top-left corner at (0, 0), rows going down to
  y = −height), exterior rings counter-clockwise (RFC 7946). Properties: ``class_id``, ``class``,
  ``area_px`` (pixels of the region), ``area_mm2`` (on the object, where the scan's resolution is
  known: :mod:`heritage_damage_seg.inference.resolution`; else null), ``outline_area_px`` (area
  of the simplified polygon), ``colour`` (the ARTeFACT palette).
* ``<stem>.coco.json``: COCO instance annotations (what CVAT's "COCO 1.0" import and most
  annotation tools read), one image, categories = the 15 damage classes with their ids; a region
  without holes as polygon(s) in pixel coordinates (x = column, y = row), a region with holes as
  uncompressed RLE of the simplified outline (COCO polygons cannot carry holes; ``iscrowd`` 1, as
  the format asks for RLE).
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.polygon import orient

from heritage_damage_seg.classes import CLASS_NAMES, DAMAGE_CLASSES, NUM_CLASSES, PALETTE_HEX
from heritage_damage_seg.io import atomic_path

GDAL_CACHE_MB = 32
"""GDAL's block cache while a mask file is polygonised (its default is 5 % of the RAM)."""


@dataclass(frozen=True)
class OutlineSettings:
    tolerance: float = 1.0
    """Douglas–Peucker tolerance in pixels (0: exact pixel edges)."""
    min_area: int = 16
    """Regions of fewer pixels are dropped (and counted)."""

    def __post_init__(self) -> None:
        if self.tolerance < 0:
            raise ValueError(
                f"outline tolerance {self.tolerance} px must be 0 or more (0 = exact pixel edges)"
            )
        if self.min_area < 1:
            raise ValueError(f"outline min_area {self.min_area} px must be at least 1")


@dataclass(frozen=True)
class Region:
    class_id: int
    pixels: int
    outline: Polygon | MultiPolygon
    """Simplified, valid, in pixel coordinates (x = column, y = row)."""


@dataclass
class Outlines:
    regions: list[Region] = field(default_factory=list)
    dropped: Counter[int] = field(default_factory=Counter)
    """Regions dropped for being under ``min_area``, per class."""
    dropped_pixels: Counter[int] = field(default_factory=Counter)

    def record(self) -> dict[str, Any]:
        """What the files and the log say about the dropped regions."""
        return {
            "regions": len(self.regions),
            "small_regions_dropped": sum(self.dropped.values()),
            "small_region_pixels_dropped": sum(self.dropped_pixels.values()),
            "dropped_per_class": {CLASS_NAMES[c]: n for c, n in sorted(self.dropped.items())},
        }


def _polygonal(geometry: shapely.Geometry) -> Polygon | MultiPolygon:
    """A valid polygonal geometry: ``make_valid`` may return a collection with lines or points
    (zero-area slivers), which are no part of a region."""
    if geometry.is_valid and isinstance(geometry, (Polygon, MultiPolygon)):
        return geometry
    fixed = shapely.make_valid(geometry)
    parts = [
        g
        for g in getattr(fixed, "geoms", [fixed])
        if isinstance(g, (Polygon, MultiPolygon)) and not g.is_empty
    ]
    polygons = [p for g in parts for p in getattr(g, "geoms", [g])]
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


def _polygonised(
    source: np.ndarray | rasterio.Band,
) -> Iterator[tuple[int, Polygon | MultiPolygon]]:
    for geometry, value in rasterio.features.shapes(source, connectivity=8):
        if 0 < value < NUM_CLASSES:
            yield int(value), _polygonal(shape(geometry))


def _raw_regions(mask: np.ndarray | Path) -> Iterator[tuple[int, Polygon | MultiPolygon]]:
    """(class id, exact pixel-edge outline) of every 8-connected damage region. The whole map is
    polygonised and the regions of Clean and 255 skipped (a boolean mask of the damage would be
    another full-size array). An array is copied once by rasterio; a mask file (PNG) is read
    line by line through a small GDAL cache, so the memory hardly depends on the scan's size."""
    if isinstance(mask, np.ndarray):
        yield from _polygonised(mask)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a scan's mask has no map
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), rasterio.open(mask) as dataset:
            if dataset.count != 1 or dataset.dtypes[0] != "uint8":
                raise ValueError(f"{mask}: expected a one-band 8-bit class map (masks/<stem>.png)")
            yield from _polygonised(rasterio.band(dataset, 1))


def damage_regions(
    mask: np.ndarray | str | os.PathLike[str], settings: OutlineSettings = OutlineSettings()
) -> Outlines:
    """The outlines of every damage region of ``mask``: H×W uint8 class ids, or the PNG of them
    that predict writes (read in bounded memory); 0 and 255 are no damage."""
    if isinstance(mask, np.ndarray) and (mask.dtype != np.uint8 or mask.ndim != 2):
        raise ValueError(f"expected an H×W uint8 class map, got {mask.shape} {mask.dtype}")
    mask = mask if isinstance(mask, np.ndarray) else Path(mask)
    outlines = Outlines()
    for class_id, outline in _raw_regions(mask):
        pixels = round(outline.area)
        if pixels < settings.min_area:
            outlines.dropped[class_id] += 1
            outlines.dropped_pixels[class_id] += pixels
            continue
        if settings.tolerance > 0:
            outline = _polygonal(outline.simplify(settings.tolerance, preserve_topology=True))
        outlines.regions.append(Region(class_id, pixels, outline))
    return outlines


def _qgis_coordinates(outline: Polygon | MultiPolygon) -> Polygon | MultiPolygon:
    """(column, row) → (column, −row), exterior rings counter-clockwise."""
    flipped = shapely.transform(outline, lambda xy: xy * np.array([1.0, -1.0]))
    if isinstance(flipped, Polygon):
        return orient(flipped, 1.0)
    return MultiPolygon([orient(p, 1.0) for p in flipped.geoms])


def _area_mm2(pixels: int, mm2_per_pixel: float | None) -> float | None:
    """A region's area on the object (None where the scan's resolution is unknown)."""
    return None if mm2_per_pixel is None else round(pixels * mm2_per_pixel, 4)


def write_geojson(
    path: str | os.PathLike[str],
    outlines: Outlines,
    *,
    scan: str,
    width: int,
    height: int,
    mm2_per_pixel: float | None = None,
) -> None:
    features = [
        {
            "type": "Feature",
            "id": i,
            "properties": {
                "class_id": r.class_id,
                "class": CLASS_NAMES[r.class_id],
                "area_px": r.pixels,
                "area_mm2": _area_mm2(r.pixels, mm2_per_pixel),
                "outline_area_px": round(r.outline.area, 1),
                "colour": PALETTE_HEX[r.class_id],
            },
            "geometry": mapping(_qgis_coordinates(r.outline)),
        }
        for i, r in enumerate(outlines.regions, start=1)
    ]
    collection = {
        "type": "FeatureCollection",
        "name": Path(scan).stem,
        "scan": {
            "file": scan,
            "width": width,
            "height": height,
            "coordinates": "pixels as QGIS opens the scan: x = column, y = -row",
            "mm2_per_pixel": mm2_per_pixel,
        },
        "outlines": outlines.record(),
        "features": features,
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(collection, separators=(",", ":")) + "\n")


def _coco_polygons(outline: Polygon | MultiPolygon) -> list[list[float]]:
    """Exterior rings as COCO's flat [x1, y1, x2, y2, …] lists (closing point left out)."""
    polygons = [outline] if isinstance(outline, Polygon) else list(outline.geoms)
    return [np.asarray(p.exterior.coords)[:-1].ravel().tolist() for p in polygons]


def _column_runs(
    outline: Polygon | MultiPolygon, left: int, top: int, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of pixels (centre inside ``outline``) down each column of the box ``left, top,
    width × height``: (column, first row, end row) arrays in box coordinates."""
    inside = rasterio.features.rasterize(
        [outline],
        out_shape=(height, width),
        transform=Affine.translation(left, top),
        fill=0,
        default_value=1,
        dtype="uint8",
    )
    change = np.diff(inside.astype(np.int8), axis=0, prepend=0, append=0)
    columns, first_rows = np.nonzero(change.T == 1)  # column by column, so the n-th end …
    _, end_rows = np.nonzero(change.T == -1)  # … closes the n-th start
    return columns, first_rows, end_rows


def coco_rle(
    outline: Polygon | MultiPolygon, height: int, width: int, *, block_pixels: int = 2**22
) -> dict[str, Any]:
    """Uncompressed COCO RLE (column-major run lengths over the whole image, starting with a run
    of 0s) of the pixels whose centre lies in ``outline``: rasterised in its bounding box, a band
    of rows at a time (``block_pixels``; GDAL fills row by row), so a region the size of the scan
    costs no full-size array. Runs cut by a band's edge, or going on from the bottom of a column
    to the top of the next, are joined."""
    x0, y0, x1, y1 = (int(v) for v in np.floor(outline.bounds))
    x1, y1 = min(width, x1 + 1), min(height, y1 + 1)
    step = max(1, block_pixels // max(1, x1 - x0))
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    for top in range(y0, y1, step):
        columns, first, end = _column_runs(outline, x0, top, x1 - x0, min(step, y1 - top))
        offset = (columns + x0).astype(np.int64) * height + top
        starts.append(offset + first)
        ends.append(offset + end)
    order = np.argsort(np.concatenate(starts), kind="stable")
    start, stop = np.concatenate(starts)[order], np.concatenate(ends)[order]
    if start.size == 0:
        return {"counts": [height * width], "size": [height, width]}
    joined = np.flatnonzero(start[1:] == stop[:-1])
    start, stop = np.delete(start, joined + 1), np.delete(stop, joined)
    counts = np.empty(2 * len(start) + 1, dtype=np.int64)
    counts[0] = start[0]
    counts[1:-1:2] = stop - start
    counts[2:-1:2] = start[1:] - stop[:-1]
    counts[-1] = height * width - stop[-1]
    return {"counts": counts.tolist(), "size": [height, width]}


def _coco_annotation(
    i: int, region: Region, height: int, width: int, mm2_per_pixel: float | None
) -> dict[str, Any]:
    outline = region.outline
    x0, y0, x1, y1 = outline.bounds
    polygons = [outline] if isinstance(outline, Polygon) else list(outline.geoms)
    has_holes = any(p.interiors for p in polygons)
    return {
        "id": i,
        "image_id": 1,
        "category_id": region.class_id,
        "segmentation": coco_rle(outline, height, width) if has_holes else _coco_polygons(outline),
        "area": round(outline.area, 1),
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "iscrowd": 1 if has_holes else 0,
        "attributes": {
            "area_px": region.pixels,
            "area_mm2": _area_mm2(region.pixels, mm2_per_pixel),
        },
    }


def write_coco(
    path: str | os.PathLike[str],
    outlines: Outlines,
    *,
    scan: str,
    width: int,
    height: int,
    mm2_per_pixel: float | None = None,
) -> None:
    document = {
        "info": {
            "description": f"damage outlines of {scan} predicted by heritage-damage-seg",
            "version": "1.0",
            "outlines": outlines.record(),
        },
        "licenses": [],
        "images": [{"id": 1, "file_name": scan, "width": width, "height": height}],
        "categories": [
            {"id": c, "name": CLASS_NAMES[c], "supercategory": "damage"} for c in DAMAGE_CLASSES
        ],
        "annotations": [
            _coco_annotation(i, r, height, width, mm2_per_pixel)
            for i, r in enumerate(outlines.regions, start=1)
        ],
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, separators=(",", ":")) + "\n")
