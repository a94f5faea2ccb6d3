"""Corrected damage outlines read back: the GeoJSON and COCO files ``predict`` writes
(:mod:`heritage_damage_seg.inference.outlines`), what QGIS and CVAT give back after editing, and
W3C Web Annotations with SVG polygons. Each file becomes, per scan it describes, a list of
:class:`Piece` (a class and its polygons in pixel coordinates x = column, y = row, or a COCO RLE)
that :mod:`heritage_damage_seg.inference.rasterise` paints into a class mask.

* **GeoJSON** (``"type": "FeatureCollection"``): coordinates as QGIS shows a scan without
  georeferencing (x = column, y = −row, as ``predict`` writes them). Polygons and MultiPolygons,
  holes included; the class from the property ``class`` (a name) or ``class_id``; if a feature
  has both they must agree (QGIS lets one be edited without the other). Other properties are
  ignored. The scan: the collection's ``scan.file`` (``predict``'s), else its ``name`` (QGIS
  writes the layer's), else the file's name.
* **COCO** (``images``, ``annotations``, ``categories``): CVAT's "COCO 1.0" export or ``predict``'s
  own. Categories are matched to the ARTeFACT classes by name (CVAT numbers its labels its own
  way), polygons (a list of flat [x1, y1, …] rings, their union) or RLE (``counts`` a list, or
  COCO's compressed string) whose ``size`` must be the scan's; an annotation without a
  segmentation is its ``bbox`` (CVAT's rectangles). One file may hold several images.
* **W3C Web Annotation** (a list of annotations, an ``AnnotationPage``'s ``items`` or one
  ``Annotation``): the body names the class (a ``TextualBody`` ``value``), the target's
  ``SvgSelector`` holds ``<path d="M x y L … Z"/>`` or ``<polygon points="…"/>`` in pixel
  coordinates (x = column, y = row); several closed subpaths of one path combine even-odd (a ring
  inside another is a hole). The scan: the target's ``source`` where it names an image file, else
  the file's name.

Class names match case-insensitively. Anything that cannot be read as meant is refused with a
:class:`~heritage_damage_seg.data.sources.DatasetError` naming the file and the feature."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box, shape

from heritage_damage_seg.classes import CLASS_NAMES
from heritage_damage_seg.data.sources import DatasetError
from heritage_damage_seg.inference.outlines import _polygonal, _qgis_coordinates

Geometry = Polygon | MultiPolygon

_CLASS_BY_NAME = {name.casefold(): i for i, name in enumerate(CLASS_NAMES)}


@dataclass(frozen=True)
class Rle:
    """COCO run lengths: column-major, starting with a run of 0s, summing to height × width."""

    counts: tuple[int, ...]
    height: int
    width: int


@dataclass(frozen=True)
class Piece:
    class_id: int
    where: str
    """The feature as the messages name it, e.g. ``feature 3 (id 7)``."""
    geometry: Geometry | None = None
    """Pixel coordinates, x = column, y = row."""
    rle: Rle | None = None


@dataclass
class CorrectedImage:
    source: Path
    """The file the corrections were read from."""
    format: str
    scan_hint: str | None
    """The scan's file name (or stem) as the file states it, if it does."""
    size: tuple[int, int] | None
    """(height, width) as the file states it, if it does."""
    pieces: list[Piece] = field(default_factory=list)


def refuse(source: Path, where: str, problem: str) -> DatasetError:
    return DatasetError(f"{source}: {where}: {problem}")


def class_from_name(name: object, source: Path, where: str) -> int:
    if isinstance(name, str) and name.strip().casefold() in _CLASS_BY_NAME:
        return _CLASS_BY_NAME[name.strip().casefold()]
    raise refuse(source, where, f"unknown class {name!r}; the classes are {', '.join(CLASS_NAMES)}")


def class_from_id(value: object, source: Path, where: str) -> int:
    """``class_id`` as QGIS may give it back: an int, a float such as 9.0 or a string."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if number.is_integer() and 0 <= number < len(CLASS_NAMES):
        return int(number)
    raise refuse(source, where, f"unknown class_id {value!r}; the ids are 0–{len(CLASS_NAMES) - 1}")


def area_geometry(geometry: shapely.Geometry, source: Path, where: str) -> Geometry:
    """A valid polygonal geometry with an area (edited outlines may self-intersect)."""
    fixed = _polygonal(geometry)
    if fixed.is_empty or fixed.area == 0:
        raise refuse(source, where, "the outline has no area: delete the feature or redraw it")
    return fixed


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: cannot read it as JSON ({err})") from err


# GeoJSON ------------------------------------------------------------------------------------


def _feature_name(index: int, feature: dict[str, Any]) -> str:
    return f"feature {index}" + (f" (id {feature['id']})" if "id" in feature else "")


def _geojson_class(properties: dict[str, Any], source: Path, where: str) -> int:
    by_name = properties.get("class")
    by_id = properties.get("class_id")
    if by_name in (None, "") and by_id in (None, ""):
        raise refuse(source, where, "no class: give it a 'class' (name) or 'class_id' property")
    named = None if by_name in (None, "") else class_from_name(by_name, source, where)
    numbered = None if by_id in (None, "") else class_from_id(by_id, source, where)
    if named is not None and numbered is not None and named != numbered:
        raise refuse(
            source,
            where,
            f"class {by_name!r} and class_id {by_id!r} disagree: correct one to match the other "
            "or delete one of the two fields",
        )
    return named if named is not None else numbered  # type: ignore[return-value]


def _geojson_piece(index: int, feature: dict[str, Any], source: Path) -> Piece:
    where = _feature_name(index, feature)
    geometry = feature.get("geometry")
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind not in ("Polygon", "MultiPolygon"):
        raise refuse(source, where, f"a {kind or 'missing'} geometry: only polygons carry damage")
    class_id = _geojson_class(feature.get("properties") or {}, source, where)
    try:
        outline = shape(geometry)
    except (ValueError, TypeError, AttributeError, shapely.errors.ShapelyError) as err:
        raise refuse(source, where, f"unreadable coordinates ({err})") from err
    # y = −row in the file: the flip is its own inverse, so outlines.py's helper undoes it
    return Piece(class_id, where, area_geometry(_qgis_coordinates(outline), source, where))


def read_geojson(document: dict[str, Any], source: Path) -> list[CorrectedImage]:
    scan = document.get("scan") if isinstance(document.get("scan"), dict) else {}
    size = (scan["height"], scan["width"]) if "height" in scan and "width" in scan else None
    image = CorrectedImage(source, "geojson", scan.get("file") or document.get("name"), size)
    features = document.get("features") or []
    image.pieces = [_geojson_piece(i, f, source) for i, f in enumerate(features, start=1)]
    return [image]


# COCO ---------------------------------------------------------------------------------------


def decode_rle_string(counts: str) -> list[int]:
    """COCO's compressed RLE (pycocotools' ``rleFrString``): each count in 5-bit groups, low
    first, as characters from '0' (48); 0x20 says another group follows, 0x10 in the last group
    is the sign; from the third count on, each is stored as its difference to the one two back."""
    values: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            chunk = ord(counts[position]) - 48
            value |= (chunk & 0x1F) << shift
            more = bool(chunk & 0x20)
            position, shift = position + 1, shift + 5
            if not more and chunk & 0x10:
                value |= -1 << shift
        if len(values) > 2:
            value += values[-2]
        values.append(value)
    return values


def _coco_rle(segmentation: dict[str, Any], source: Path, where: str) -> Rle:
    """The RLE of an annotation; its size is checked against the image and the scan later."""
    size = segmentation.get("size")
    if not isinstance(size, list) or len(size) != 2:
        raise refuse(source, where, f"RLE size {size!r} is not [height, width]")
    raw = segmentation.get("counts")
    try:
        height, width = int(size[0]), int(size[1])
        counts = decode_rle_string(raw) if isinstance(raw, str) else [int(c) for c in raw]
    except (TypeError, ValueError, IndexError) as err:
        raise refuse(source, where, f"unreadable RLE ({err})") from err
    if any(c < 0 for c in counts) or sum(counts) != height * width:
        raise refuse(
            source,
            where,
            f"RLE counts sum to {sum(counts)}, not its height × width = {height * width}",
        )
    return Rle(tuple(counts), height, width)


def _coco_polygons(
    segmentation: list[Any], bbox: list[float] | None, source: Path, where: str
) -> Geometry:
    if not segmentation:
        if not bbox or len(bbox) != 4:
            raise refuse(source, where, "neither a segmentation nor a bbox")
        x, y, w, h = (float(v) for v in bbox)
        return area_geometry(box(x, y, x + w, y + h), source, where)
    rings = []
    for flat in segmentation:
        if not isinstance(flat, list) or len(flat) < 6 or len(flat) % 2:
            raise refuse(source, where, "a polygon needs at least 3 (x, y) points as a flat list")
        rings.append(_polygonal(Polygon(np.asarray(flat, dtype=float).reshape(-1, 2))))
    return area_geometry(shapely.union_all(rings), source, where)


def _coco_piece(annotation: dict[str, Any], categories: dict[Any, str], source: Path) -> Piece:
    where = f"annotation {annotation.get('id', '?')}"
    category = annotation.get("category_id")
    if category not in categories:
        raise refuse(source, where, f"category_id {category!r} is not among the file's categories")
    class_id = class_from_name(categories[category], source, where + f" (category {category})")
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict):
        return Piece(class_id, where, rle=_coco_rle(segmentation, source, where))
    return Piece(
        class_id, where, _coco_polygons(segmentation or [], annotation.get("bbox"), source, where)
    )


def read_coco(document: dict[str, Any], source: Path) -> list[CorrectedImage]:
    categories = {c.get("id"): c.get("name") for c in document.get("categories") or []}
    annotations = document.get("annotations") or []
    images = []
    for entry in document.get("images") or []:
        stated = entry.get("height"), entry.get("width")
        size = None if None in stated else (int(stated[0]), int(stated[1]))
        image = CorrectedImage(source, "coco", entry.get("file_name"), size)
        image.pieces = [
            _coco_piece(a, categories, source)
            for a in annotations
            if a.get("image_id") == entry.get("id")
        ]
        images.append(image)
    known = {entry.get("id") for entry in document.get("images") or []}
    stray = [a.get("id") for a in annotations if a.get("image_id") not in known]
    if stray:
        raise refuse(
            source, f"annotation {stray[0]}", "its image_id is not among the file's images"
        )
    return images


# W3C Web Annotation -------------------------------------------------------------------------

_SVG_SHAPE = re.compile(r"<(path|polygon)\b[^>]*?\b(d|points)\s*=\s*(['\"])(.*?)\3", re.S)
_PATH_TOKEN = re.compile(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_IMAGE_NAME = re.compile(r"[^/?#]+\.(?:png|jpe?g|tiff?|bmp|webp)$", re.I)


def _path_rings(d: str) -> list[list[tuple[float, float]]]:
    """The subpaths of an SVG path of straight lines (M, L, H, V, Z, absolute or relative)."""
    rings: list[list[tuple[float, float]]] = []
    x = y = 0.0
    command = ""
    tokens = _PATH_TOKEN.findall(d)
    position = 0
    while position < len(tokens):
        token = tokens[position]
        if token.isalpha():
            if token not in "MmLlHhVvZz":
                raise ValueError(
                    f"path command {token!r}: only straight lines (M L H V Z) are read"
                )
            command, position = token, position + 1
            if command in "Zz":
                x, y = rings[-1][0] if rings and rings[-1] else (x, y)
            continue
        relative = command.islower()
        if command in "Hh" or command in "Vv":
            value = float(token)
            position += 1
            if command in "Hh":
                x = x + value if relative else value
            else:
                y = y + value if relative else value
        else:
            dx, dy = float(tokens[position]), float(tokens[position + 1])
            position += 2
            x, y = (x + dx, y + dy) if relative else (dx, dy)
        if command in "Mm":
            rings.append([])
            command = "l" if relative else "L"  # pairs after a move are lines
        if not rings:
            raise ValueError("the path does not start with M")
        rings[-1].append((x, y))
    return rings


def svg_geometry(value: str) -> shapely.Geometry:
    """The area of an SvgSelector's shapes: each path's subpaths even-odd, the shapes' union."""
    shapes = []
    for element, _, _, data in _SVG_SHAPE.findall(value):
        if element == "polygon":
            numbers = [float(n) for n in _PATH_TOKEN.findall(data)]
            rings = [list(zip(numbers[::2], numbers[1::2]))]
        else:
            rings = _path_rings(data)
        if not rings or any(len(ring) < 3 for ring in rings):
            raise ValueError("a ring with fewer than 3 points")
        parts = [_polygonal(Polygon(ring)) for ring in rings]
        even_odd = parts[0]
        for part in parts[1:]:
            even_odd = shapely.symmetric_difference(even_odd, part)
        shapes.append(even_odd)
    if not shapes:
        raise ValueError("no <path d=…> or <polygon points=…> in the SVG")
    return shapely.union_all(shapes)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _w3c_class(annotation: dict[str, Any], source: Path, where: str) -> int:
    bodies = [b for b in _as_list(annotation.get("body")) if isinstance(b, dict)]
    tagging = [b for b in bodies if b.get("purpose") in (None, "tagging", "classifying")]
    names = {b.get("value") for b in tagging if isinstance(b.get("value"), str)}
    if len(names) != 1:
        found = sorted(names) or "none"
        raise refuse(
            source, where, f"the body must name one class (a TextualBody value), found {found}"
        )
    return class_from_name(names.pop(), source, where)


def _w3c_selector(annotation: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the target's source, its SvgSelector's value)."""
    for target in _as_list(annotation.get("target")):
        if not isinstance(target, dict):
            continue
        for selector in _as_list(target.get("selector")):
            if isinstance(selector, dict) and selector.get("type") == "SvgSelector":
                target_source = target.get("source")
                if isinstance(target_source, dict):
                    target_source = target_source.get("id")
                return target_source, selector.get("value")
    return None, None


def _w3c_piece(index: int, annotation: dict[str, Any], source: Path) -> tuple[Piece, str | None]:
    where = f"annotation {index}" + (f" ({annotation['id']})" if "id" in annotation else "")
    target_source, svg = _w3c_selector(annotation)
    if not isinstance(svg, str):
        raise refuse(source, where, "no target with an SvgSelector")
    class_id = _w3c_class(annotation, source, where)
    try:
        geometry = svg_geometry(svg)
    except (ValueError, IndexError, shapely.errors.ShapelyError) as err:
        raise refuse(source, where, f"unreadable SvgSelector ({err})") from err
    scan = _IMAGE_NAME.search(target_source) if isinstance(target_source, str) else None
    return Piece(class_id, where, area_geometry(geometry, source, where)), (
        scan.group(0) if scan else None
    )


def _w3c_annotations(document: Any) -> Iterator[dict[str, Any]]:
    if isinstance(document, list):
        yield from (a for a in document if isinstance(a, dict))
    elif document.get("type") == "Annotation":
        yield document
    else:
        page = document.get("first") if isinstance(document.get("first"), dict) else document
        yield from (a for a in page.get("items") or [] if isinstance(a, dict))


def read_w3c(document: Any, source: Path) -> list[CorrectedImage]:
    read = [_w3c_piece(i, a, source) for i, a in enumerate(_w3c_annotations(document), start=1)]
    scans = {scan for _, scan in read if scan}
    if len(scans) > 1:
        raise refuse(
            source, "the annotations", f"target several images {sorted(scans)}: one file per scan"
        )
    image = CorrectedImage(source, "w3c", scans.pop() if scans else None, None)
    image.pieces = [piece for piece, _ in read]
    return [image]


def _reader(document: Any) -> Callable[[Any, Path], list[CorrectedImage]] | None:
    if isinstance(document, list):
        return read_w3c
    if not isinstance(document, dict):
        return None
    if document.get("type") == "FeatureCollection":
        return read_geojson
    if "annotations" in document and "images" in document:
        return read_coco
    if document.get("type") in ("AnnotationPage", "AnnotationCollection", "Annotation"):
        return read_w3c
    return None


def read_corrections(path: Path) -> list[CorrectedImage]:
    """Every scan's corrections in the file at ``path`` (GeoJSON, COCO or W3C, by its content)."""
    document = load_json(path)
    reader = _reader(document)
    if reader is None:
        raise DatasetError(
            f"{path}: neither a GeoJSON FeatureCollection, a COCO file (images, annotations) "
            "nor W3C Web Annotations (a list, an AnnotationPage or an Annotation)"
        )
    return reader(document, path)
