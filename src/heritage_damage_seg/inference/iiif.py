"""IIIF export of a prediction run: static files any web server publishes, any IIIF client opens.

``iiif/`` holds, per predicted scan:

* ``<stem>/scan/``, ``<stem>/classes/``, ``<stem>/confidence/``: IIIF Image API 3 tile sets
  (level 0: static 512 px tiles, each with its ``info.json``), written by libvips' ``dzsave``
  (``layout=iiif3``), which streams a scan of any size. ``scan``: the scan as predict read it
  (JPEG tiles); ``classes``: the class map in the ARTeFACT palette (RGBA PNG, Clean and outside the
  artwork transparent, each level shrunk by nearest neighbour so no colour is invented);
  ``confidence``: the confidence map (grey PNG, 255 = sure).
* ``<stem>.annotations.json``: a W3C Web Annotation ``AnnotationPage``, one annotation per damage
  outline of :mod:`heritage_damage_seg.inference.outlines` (the polygons of
  ``outlines/<stem>.geojson``, in pixel coordinates x = column, y = row): an ``SvgSelector`` path
  with every ring (holes kept, ``fill-rule="evenodd"``), a body naming the class
  (``purpose: tagging``) and one describing the region as a machine prediction (class and ARTeFACT
  id, mean confidence, area in px and mm²), the same figures under ``hds:damage``, the software
  and model that made it as ``creator`` (``type: Software``) and the date as ``created``. This is
  the file ``import-corrections`` reads back.

and ``manifest.json``: one IIIF Presentation 3 manifest for the run, a canvas per scan at its
native size whose painting annotation is a ``Choice`` of the three layers (the scan first) and
whose ``annotations`` reference the scan's annotation page.

IIIF wants absolute ids: they are ``base_url`` + the file's path in ``iiif/``. Without a base URL
they are ``http://localhost:8000/…``, where ``python -m http.server 8000 --directory iiif``
serves the folder; give the address it is published at (``--iiif-base-url``) otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
import pyvips
import rasterio.features
from affine import Affine
from shapely.geometry import MultiPolygon, Polygon

from heritage_damage_seg import __version__
from heritage_damage_seg.classes import CLASS_NAMES, NUM_CLASSES, PALETTE_HEX
from heritage_damage_seg.inference.outlines import Outlines, Region, _area_mm2
from heritage_damage_seg.inference.viewer import _quiet_libvips, display_image, grey_image
from heritage_damage_seg.io import atomic_path

log = logging.getLogger(__name__)

TILE_SIZE = 512
LOCAL_BASE_URL = "http://localhost:8000/"
"""The ids' base without ``--iiif-base-url``: ``python -m http.server 8000`` in the folder."""
MANIFEST = "manifest.json"
PRESENTATION_CONTEXT = "http://iiif.io/api/presentation/3/context.json"
ANNOTATION_CONTEXT = "http://www.w3.org/ns/anno.jsonld"
SOFTWARE = "heritage-damage-seg"
MACHINE_NOTE = (
    "Machine prediction by a segmentation model, not a conservator's assessment: check it "
    "against the object."
)
# layer → (label, tile format, MIME type, how a level is shrunk)
LAYERS: dict[str, tuple[str, str, str, str]] = {
    "scan": ("Scan", "jpg", "image/jpeg", "mean"),
    "classes": ("Damage classes (model prediction)", "png", "image/png", "nearest"),
    "confidence": ("Model confidence (white = sure)", "png", "image/png", "mean"),
}


class IIIFError(ValueError):
    """A IIIF setting that cannot be used: the message names the option."""


def checked_base_url(url: str | None) -> str:
    """The base of every id, ending in ``/``: an absolute http(s) URL, or the local default."""
    if url is None:
        return LOCAL_BASE_URL
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise IIIFError(
            f"--iiif-base-url (predict.iiif_base_url) {url!r} must be an absolute http:// or "
            "https:// URL without query or fragment, the address the iiif/ folder is published "
            "at, e.g. https://example.org/damage/iiif/"
        )
    return str(url) if str(url).endswith("/") else f"{url}/"


def software_agent(model: Mapping[str, Any]) -> dict[str, Any]:
    """The W3C ``creator`` of the annotations: this software and the model it ran
    (``model``: :func:`heritage_damage_seg.inference.condition_report.model_record`)."""
    return {
        "id": f"urn:sha256:{model['checkpoint_sha256']}",
        "type": "Software",
        "name": f"{SOFTWARE} {__version__}, model {model['encoder']} ({model['checkpoint']}, "
        f"SHA-256 {model['checkpoint_sha256']})",
        "nickname": SOFTWARE,
        "hds:checkpoint": model["checkpoint"],
        "hds:checkpoint_sha256": model["checkpoint_sha256"],
        "hds:encoder": model["encoder"],
    }


def class_colours(mask: np.ndarray) -> pyvips.Image:
    """The class map in the ARTeFACT palette as RGBA, Clean (0) and 255 transparent, lazily."""
    lut = np.zeros((1, 256, 4), dtype=np.uint8)
    for c in range(1, NUM_CLASSES):
        lut[0, c, :3] = [int(PALETTE_HEX[c][i : i + 2], 16) for i in (1, 3, 5)]
        lut[0, c, 3] = 255
    table = pyvips.Image.new_from_array(lut, interpretation="srgb")
    return grey_image(mask).maplut(table).copy(interpretation="srgb")


def _tile_set(image: pyvips.Image, base: Path, service_id: str, layer: str) -> dict[str, Any]:
    """``base/`` as a level-0 IIIF Image API 3 tile set whose ``info.json`` has ``service_id``."""
    _, fmt, _, shrink = LAYERS[layer]
    suffix = {"jpg": ".jpg[Q=88]", "png": ".png[compression=6]"}[fmt]
    try:
        with _quiet_libvips():
            image.dzsave(
                str(base),
                layout="iiif3",
                tile_size=TILE_SIZE,
                overlap=0,
                suffix=suffix,
                id=service_id.rsplit("/", 1)[0],
                region_shrink=shrink,
                keep="none",
            )
    except pyvips.Error as err:
        raise OSError(
            f"cannot write the IIIF tiles {base} ({err.message.strip()}): check the free disk "
            "space and that the folder is writable"
        ) from err
    (base.parent / "vips-properties.xml").unlink(missing_ok=True)
    info = json.loads((base / "info.json").read_text())
    if info["id"] != service_id:
        raise AssertionError(f"dzsave wrote the id {info['id']}, expected {service_id}")
    smallest = sorted((base / "full").iterdir())
    sizes = [dict(zip(("width", "height"), map(int, p.name.split(",")))) for p in smallest]
    info["sizes"] = sorted(sizes, key=lambda s: s["width"])
    if fmt != "jpg":  # level 0's default format is jpg: say which one the tiles are
        info["preferredFormats"] = info["extraFormats"] = [fmt]
    (base / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def write_scan_tiles(
    iiif_dir: Path, scan: Path, mask: np.ndarray, confidence: np.ndarray, base_url: str
) -> dict[str, dict[str, Any]]:
    """The three tile sets of one scan in ``iiif_dir/<stem>/``, written beside and renamed into
    place when complete; returns each layer's ``info.json``."""
    height, width = mask.shape
    picture = display_image(scan, str(scan))
    if (picture.width, picture.height) != (width, height):
        raise ValueError(
            f"{scan}: the scan reads as {picture.width}×{picture.height} but its mask is {width}×{height}"
        )
    final = iiif_dir / scan.stem
    partial = iiif_dir / f".{scan.stem}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    url = f"{base_url}{quote(scan.stem)}"
    images = {"scan": picture, "classes": class_colours(mask), "confidence": grey_image(confidence)}
    infos = {
        layer: _tile_set(image, partial / layer, f"{url}/{layer}", layer)
        for layer, image in images.items()
    }
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    return infos


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def svg_path(outline: Polygon | MultiPolygon) -> str:
    """Every ring of the outline (exteriors and holes) as closed subpaths of one path."""
    polygons = [outline] if isinstance(outline, Polygon) else list(outline.geoms)
    rings = [ring for p in polygons for ring in (p.exterior, *p.interiors)]
    return " ".join(
        "M "
        + " L ".join(f"{_number(x)} {_number(y)}" for x, y in np.asarray(ring.coords)[:-1])
        + " Z"
        for ring in rings
    )


def svg_selector(region: Region) -> dict[str, str]:
    colour = PALETTE_HEX[region.class_id]
    return {
        "type": "SvgSelector",
        "value": '<svg xmlns="http://www.w3.org/2000/svg">'
        f'<path d="{svg_path(region.outline)}" fill="none" fill-rule="evenodd" '
        f'stroke="{colour}" stroke-width="2"/></svg>',
    }


def region_confidence(region: Region, mask: np.ndarray, confidence: np.ndarray) -> float | None:
    """The mean confidence (0–1) of the region's class pixels inside its outline."""
    height, width = mask.shape
    x0, y0, x1, y1 = (int(v) for v in np.floor(region.outline.bounds))
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1 + 1), min(height, y1 + 1)
    inside = rasterio.features.rasterize(
        [region.outline],
        out_shape=(y1 - y0, x1 - x0),
        transform=Affine.translation(x0, y0),
        fill=0,
        default_value=1,
        dtype="uint8",
    ).astype(bool)
    inside &= mask[y0:y1, x0:x1] == region.class_id
    if not inside.any():
        return None
    return round(float(confidence[y0:y1, x0:x1][inside].mean()) / 255, 4)


def _describe(damage: Mapping[str, Any]) -> str:
    """The region in words, as an annotation panel lists it."""
    confidence, mm2 = damage["mean_confidence"], damage["area_mm2"]
    return (
        f"{damage['class']} (ARTeFACT class {damage['class_id']}), machine prediction: mean "
        f"confidence {'unknown' if confidence is None else f'{confidence:.2f}'}, "
        f"{damage['area_px']:,} px, "
        + (f"{mm2:,.2f} mm²" if mm2 is not None else "mm² unknown (no resolution)")
        + ". Not a conservator's assessment."
    )


def annotation_page(
    stem: str,
    outlines: Outlines,
    mask: np.ndarray,
    confidence: np.ndarray,
    *,
    mm2_per_pixel: float | None,
    creator: Mapping[str, Any],
    created: str,
    base_url: str,
) -> dict[str, Any]:
    """The scan's damage outlines as a W3C ``AnnotationPage`` on its canvas."""
    url = f"{base_url}{quote(stem)}"
    page_id = f"{url}.annotations.json"
    items = []
    for i, region in enumerate(outlines.regions, start=1):
        damage = {
            "class_id": region.class_id,
            "class": CLASS_NAMES[region.class_id],
            "mean_confidence": region_confidence(region, mask, confidence),
            "area_px": region.pixels,
            "area_mm2": _area_mm2(region.pixels, mm2_per_pixel),
            "machine_prediction": True,
        }
        items.append(
            {
                "id": f"{page_id}#outline-{i}",
                "type": "Annotation",
                "motivation": ["tagging", "assessing"],
                "created": created,
                "creator": dict(creator),
                "body": [
                    {
                        "type": "TextualBody",
                        "purpose": "tagging",
                        "value": damage["class"],
                        "format": "text/plain",
                        "language": "en",
                    },
                    {
                        "type": "TextualBody",
                        "purpose": "describing",
                        "value": _describe(damage),
                        "format": "text/plain",
                        "language": "en",
                    },
                ],
                "target": {
                    "type": "SpecificResource",
                    "source": {
                        "id": f"{url}/canvas",
                        "type": "Canvas",
                        "partOf": [{"id": f"{base_url}{MANIFEST}", "type": "Manifest"}],
                    },
                    "selector": svg_selector(region),
                },
                "hds:damage": damage,
            }
        )
    return {
        "@context": [ANNOTATION_CONTEXT, PRESENTATION_CONTEXT],
        "id": page_id,
        "type": "AnnotationPage",
        "label": {"en": [f"Damage outlines of {stem} (machine prediction)"]},
        "items": items,
    }


def write_json_file(path: Path, document: Mapping[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n")


def _image(info: Mapping[str, Any], layer: str) -> dict[str, Any]:
    label, fmt, mime, _ = LAYERS[layer]
    small = info["sizes"][0]
    return {
        # level 0 has no full/max: the smallest full image the tile set holds
        "id": f"{info['id']}/full/{small['width']},{small['height']}/0/default.{fmt}",
        "type": "Image",
        "format": mime,
        "width": small["width"],
        "height": small["height"],
        "label": {"en": [label]},
        "service": [{"id": info["id"], "type": "ImageService3", "profile": "level0"}],
    }


def canvas(
    name: str, stem: str, infos: Mapping[str, Mapping[str, Any]], base_url: str
) -> dict[str, Any]:
    """A scan's canvas at its native size: the scan and its layers painted, its outlines referenced."""
    url = f"{base_url}{quote(stem)}"
    width, height = infos["scan"]["width"], infos["scan"]["height"]
    return {
        "id": f"{url}/canvas",
        "type": "Canvas",
        "label": {"none": [name]},
        "width": width,
        "height": height,
        "thumbnail": [_image(infos["scan"], "scan")],
        "items": [
            {
                "id": f"{url}/canvas/page",
                "type": "AnnotationPage",
                "items": [
                    {
                        "id": f"{url}/canvas/page/painting",
                        "type": "Annotation",
                        "motivation": "painting",
                        "body": {
                            "type": "Choice",
                            "items": [_image(infos[layer], layer) for layer in LAYERS],
                        },
                        "target": f"{url}/canvas",
                    }
                ],
            }
        ],
        "annotations": [
            {
                "id": f"{url}.annotations.json",
                "type": "AnnotationPage",
                "label": {"en": [f"Damage outlines of {name} (machine prediction)"]},
            }
        ],
    }


def write_manifest(
    iiif_dir: Path,
    canvases: Sequence[Mapping[str, Any]],
    *,
    label: str,
    model: Mapping[str, Any],
    created: str,
    base_url: str,
) -> Path:
    """``iiif_dir/manifest.json`` over the run's canvases (in the order of the scans)."""
    manifest = {
        "@context": PRESENTATION_CONTEXT,
        "id": f"{base_url}{MANIFEST}",
        "type": "Manifest",
        "label": {"en": [label]},
        "summary": {"en": [MACHINE_NOTE]},
        "metadata": [
            {"label": {"en": [key]}, "value": {"none": [str(value)]}}
            for key, value in (
                ("Software", f"{SOFTWARE} {__version__}"),
                ("Model", model["encoder"]),
                ("Checkpoint", model["checkpoint"]),
                ("Checkpoint SHA-256", model["checkpoint_sha256"]),
                ("Predicted", created),
            )
        ],
        "items": list(canvases),
    }
    write_json_file(iiif_dir / MANIFEST, manifest)
    log.info(
        "IIIF manifest of %d scan(s): %s (ids under %s)",
        len(canvases),
        iiif_dir / MANIFEST,
        base_url,
    )
    return iiif_dir / MANIFEST
