"""The damage viewer of a prediction run: one folder, ``index.html`` opened from disk (no server).

Every predicted scan becomes three Deep Zoom pyramids written by libvips' ``dzsave``, which
streams a scan of any size in bounded memory:

* ``scan``: the scan itself as predict read it (EXIF orientation applied), JPEG tiles;
* ``classes``: the class map as grey PNG tiles whose value is the class id (255 outside the
  artwork), each level shrunk by the *mode* of its pixels so no class is invented by averaging;
* ``confidence``: the confidence map (:mod:`heritage_damage_seg.inference.confidence`), PNG, mean.

The page shows them with OpenSeadragon (vendored, see ``viewer_assets/openseadragon/SOURCE.txt``).
A page opened from ``file://`` may not read the pixels of its own images (the browser treats every
file as another origin), so the classes are coloured by an SVG filter instead of by script: the
overlay is a second OpenSeadragon viewer kept on the scan viewer's viewport, drawn without
smoothing, and a ``feComponentTransfer`` table maps each class id to its ARTeFACT colour and its
opacity (0 when the class is switched off). Tile sources are given inline (a ``file://`` page
cannot fetch the ``.dzi`` XML either) and tiles load as ``<img>`` from relative paths, so the
folder can be copied, zipped or put on any static web server as it is.

``data.js`` holds what the page lists: every scan's size, its row of ``damage_areas.csv`` (the
legend's areas are those numbers) and its tile sources.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pyvips

from heritage_damage_seg.classes import (
    CLASS_NAMES,
    IGNORE_HEX,
    IGNORE_INDEX,
    NUM_CLASSES,
    PALETTE_HEX,
    slug,
)
from heritage_damage_seg.data import decode
from heritage_damage_seg.io import atomic_path

log = logging.getLogger(__name__)

OPENSEADRAGON_VERSION = "6.1.1"
ASSETS = Path(__file__).with_name("viewer_assets")
PAGE_FILES = ("index.html", "viewer.js", "viewer.css")
TILE_SIZE, TILE_OVERLAP = 254, 1  # 256 px tiles with their 1 px overlap, the Deep Zoom default
DEEP_ZOOM_XMLNS = "http://schemas.microsoft.com/deepzoom/2008"


def display_image(path: Path, name: str) -> pyvips.Image:
    """The scan as 8-bit sRGB at full resolution in the orientation predict read it, lazily: libvips
    streams it where it can; an oriented or PIL-only file (camera photos, BMP, GIF) is decoded whole."""
    head = decode.header(path, name)
    if decode.decodes_streaming(head) and head.transform == 1:
        return decode.vips_scaled(path, head, head.width, head.height, name)
    picture, _ = decode.scaled_image(path, head.width, head.height, name)
    return pyvips.Image.new_from_array(picture, interpretation="srgb")


def grey_image(array: np.ndarray) -> pyvips.Image:
    """An H×W uint8 array as a one-band libvips image over the same memory (no copy)."""
    contiguous = np.ascontiguousarray(array)
    return pyvips.Image.new_from_memory(
        contiguous.data, contiguous.shape[1], contiguous.shape[0], 1, "uchar"
    )


@contextlib.contextmanager
def _quiet_libvips() -> Iterator[None]:
    """dzsave's thread pools each log an INFO line through pyvips ("threadpool completed"): dozens
    per scan in a job's log, saying nothing. Raised to WARNING while tiles are written."""
    vips_log = logging.getLogger("pyvips")
    level = vips_log.level
    vips_log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        vips_log.setLevel(level)


def deep_zoom(
    image: pyvips.Image, base: Path, relative_url: str, *, tile_format: str, region_shrink: str
) -> dict[str, Any]:
    """Writes ``base.dzi`` and ``base_files/`` and returns the inline tile source OpenSeadragon
    reads in place of the ``.dzi`` (``relative_url``: ``base``'s path from ``index.html``)."""
    suffix = {"jpeg": ".jpg[Q=88]", "png": ".png[compression=6]"}[tile_format]
    try:
        with _quiet_libvips():
            image.dzsave(
                str(base),
                layout="dz",
                tile_size=TILE_SIZE,
                overlap=TILE_OVERLAP,
                suffix=suffix,
                region_shrink=region_shrink,
                keep="none",
            )
    except pyvips.Error as err:
        raise OSError(
            f"cannot write the deep-zoom tiles {base}_files ({err.message.strip()}): check the free disk space "
            "and that the folder is writable"
        ) from err
    return {
        "Image": {
            "xmlns": DEEP_ZOOM_XMLNS,
            "Url": f"{relative_url}_files/",
            "Format": "jpg" if tile_format == "jpeg" else "png",
            "Overlap": str(TILE_OVERLAP),
            "TileSize": str(TILE_SIZE),
            "Size": {"Width": str(image.width), "Height": str(image.height)},
        }
    }


def write_scan_pyramids(
    viewer_dir: Path, scan: Path, mask: np.ndarray, confidence: np.ndarray
) -> dict[str, Any]:
    """The three pyramids of one scan in ``viewer_dir/scans/<stem>/``, written beside and renamed
    into place when complete (a killed run leaves no half pyramid that looks finished)."""
    height, width = mask.shape
    picture = display_image(scan, str(scan))
    if (picture.width, picture.height) != (width, height):
        raise ValueError(
            f"{scan}: the scan reads as {picture.width}×{picture.height} but its mask is {width}×{height}"
        )
    final = viewer_dir / "scans" / scan.stem
    partial = final.with_name(f".{scan.stem}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    url = f"scans/{quote(scan.stem)}"  # a stem may hold spaces, '#' or '%'

    tiles = {
        "scan": deep_zoom(
            picture, partial / "scan", f"{url}/scan", tile_format="jpeg", region_shrink="mean"
        ),
        "classes": deep_zoom(
            grey_image(mask),
            partial / "classes",
            f"{url}/classes",
            tile_format="png",
            region_shrink="mode",
        ),
        "confidence": deep_zoom(
            grey_image(confidence),
            partial / "confidence",
            f"{url}/confidence",
            tile_format="png",
            region_shrink="mean",
        ),
    }
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    return tiles


def _number(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def viewer_entry(
    row: Mapping[str, Any], tiles: Mapping[str, Any], files: Mapping[str, str]
) -> dict[str, Any]:
    """What the page knows of one scan: its ``damage_areas.csv`` row as written (the legend shows
    those numbers), its tile sources and the paths of its other outputs from ``index.html``."""
    classes = [
        {
            "id": c,
            "px": int(row[f"{slug(c)}_px"]),
            "pct": row[f"{slug(c)}_pct"],
            "mean_confidence": _number(row.get(f"{slug(c)}_mean_confidence")),
            "low_confidence_pct": _number(row.get(f"{slug(c)}_low_confidence_pct")),
        }
        for c in range(NUM_CLASSES)
    ]
    return {
        "name": row["image"],
        "stem": Path(row["image"]).stem,
        "width": int(row["width"]),
        "height": int(row["height"]),
        "scored_pixels": int(row["scored_pixels"]),
        "damaged_pixels": int(row["damaged_pixels"]),
        "damaged_pct": row["damaged_pct"],
        "outside_pixels": int(row["width"]) * int(row["height"]) - int(row["scored_pixels"]),
        "mean_confidence": _number(row.get("mean_confidence")),
        "low_confidence_pct": _number(row.get("low_confidence_pct")),
        "regions": row.get("regions"),
        "classes": classes,
        "tiles": dict(tiles),
        "files": dict(files),
    }


def write_viewer(
    viewer_dir: Path, entries: Sequence[Mapping[str, Any]], *, title: str, low_confidence: float
) -> Path:
    """The page of the run: the vendored OpenSeadragon, the page files and ``data.js`` in
    ``viewer_dir`` (the scans' pyramids are already there); returns ``index.html``."""
    viewer_dir.mkdir(parents=True, exist_ok=True)
    vendored = viewer_dir / "openseadragon"
    shutil.rmtree(vendored, ignore_errors=True)
    shutil.copytree(ASSETS / "openseadragon", vendored)
    for name in PAGE_FILES[1:]:
        shutil.copyfile(ASSETS / name, viewer_dir / name)
    data = {
        "title": title,
        "openseadragon": OPENSEADRAGON_VERSION,
        "low_confidence": low_confidence,
        "classes": [
            {"id": c, "name": CLASS_NAMES[c], "colour": PALETTE_HEX[c]} for c in range(NUM_CLASSES)
        ],
        "outside": {"id": IGNORE_INDEX, "name": "Outside the artwork", "colour": IGNORE_HEX},
        "scans": list(entries),
    }
    with atomic_path(viewer_dir / "data.js") as tmp:
        tmp.write_text("window.HDS_VIEWER = " + json.dumps(data, indent=1, allow_nan=False) + ";\n")
    with atomic_path(viewer_dir / "index.html") as tmp:  # last: the page exists only once it works
        shutil.copyfile(ASSETS / "index.html", tmp)
    log.info(
        "damage viewer of %d scan(s): %s (open it in a browser, no server needed)",
        len(entries),
        viewer_dir / "index.html",
    )
    return viewer_dir / "index.html"
