"""Corrected outlines imported as a dataset in the folder format, which the pipeline trains on
with ``dataset.format: folder`` (:mod:`heritage_damage_seg.data.folder`):

* ``images/<scan>``: the scan, copied as it is;
* ``masks/<stem>.png``: its class mask at the scan's native size (as ``predict`` reads it, EXIF
  orientation applied), painted by :mod:`heritage_damage_seg.inference.rasterise`;
* ``metadata.csv``: one row per scan (``id``, the scan, the corrections' file and format, the
  reviewer, the date, what unreviewed pixels became, the number of outlines). A later import of
  the same scan replaces its row, so corrections can be imported review session by session.

Every file is read and checked before anything is written: unknown classes, coordinates outside
the scan, a size the file states that is not the scan's, a scan found in no input, or two files
correcting the same scan are refused with a message naming the file and the feature. Each mask and
image is then written to a temporary name and renamed into place, the metadata last."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from PIL import Image

from heritage_damage_seg.data import decode
from heritage_damage_seg.data.folder import image_files
from heritage_damage_seg.data.sources import DatasetError
from heritage_damage_seg.inference.corrected_outlines import (
    CorrectedImage,
    Piece,
    read_corrections,
    refuse,
)
from heritage_damage_seg.inference.rasterise import UNREVIEWED, paint
from heritage_damage_seg.io import atomic_path

IMAGES_DIR, MASKS_DIR, METADATA = "images", "masks", "metadata.csv"
"""The dataset's layout: a config reads it with ``dataset.images_dir: images``,
``dataset.masks_dir: masks``, ``dataset.metadata: metadata.csv``."""
METADATA_COLUMNS = (
    "id",
    "scan",
    "source_file",
    "source_format",
    "reviewer",
    "date",
    "unreviewed",
    "outlines",
)
OUTSIDE_TOLERANCE = 1e-3
"""Pixels an outline may reach past the scan's edge (rounding in an editor), not more."""


@dataclass(frozen=True)
class Review:
    reviewer: str
    unreviewed: str
    """``clean`` or ``ignore``: :data:`heritage_damage_seg.inference.rasterise.UNREVIEWED`."""
    date: str = ""
    """ISO date of the review; empty: today (UTC)."""


@dataclass(frozen=True)
class CorrectedScan:
    scan: Path
    height: int
    width: int
    corrections: CorrectedImage

    @property
    def id(self) -> str:
        return self.scan.stem


def scan_index(inputs: Sequence[str | Path]) -> dict[str, Path]:
    """Scan files (and the images of folders) by stem; two scans with one stem are refused."""
    scans: dict[str, Path] = {}
    for item in map(Path, inputs):
        if not item.exists():
            raise DatasetError(f"{item}: no such scan file or folder")
        for path in image_files(item) if item.is_dir() else [item]:
            if path.stem in scans and scans[path.stem] != path:
                raise DatasetError(
                    f"two scans with the stem {path.stem!r}: {scans[path.stem]} and {path}"
                )
            scans[path.stem] = path
    return scans


def _stems(name: str) -> list[str]:
    """``a.b.coco.json`` → ``a.b.coco``, ``a.b``, ``a``: where a scan's stem may end."""
    stems = []
    while "." in name:
        name = name.rsplit(".", 1)[0]
        stems.append(name)
    return stems


def find_scan(corrections: CorrectedImage, scans: dict[str, Path]) -> Path:
    hint = (
        [Path(corrections.scan_hint).stem, Path(corrections.scan_hint).name]
        if corrections.scan_hint
        else []
    )
    for stem in [*hint, *_stems(corrections.source.name)]:
        if stem in scans:
            return scans[stem]
    named = f"{corrections.scan_hint!r} or " if corrections.scan_hint else ""
    raise DatasetError(
        f"{corrections.source}: no scan {named}with a stem the file's name starts with among the "
        f"{len(scans)} scans given: pass the scan (--scans) or name the file <scan stem>.geojson"
    )


def check_inside(piece: Piece, height: int, width: int, source: Path) -> None:
    """Refuses a piece reaching past the scan (a GeoJSON with y > 0 lies above it: QGIS's y is
    −row), or an RLE of another size."""
    if piece.rle is not None and (piece.rle.height, piece.rle.width) != (height, width):
        raise refuse(
            source,
            piece.where,
            f"RLE size {piece.rle.width}×{piece.rle.height} is not that of the {width}×{height} scan",
        )
    if piece.geometry is None:
        return
    x0, y0, x1, y1 = piece.geometry.bounds
    t = OUTSIDE_TOLERANCE
    if x0 < -t or y0 < -t or x1 > width + t or y1 > height + t:
        raise refuse(
            source,
            piece.where,
            f"coordinates outside the {width}×{height} scan (x {x0:g}…{x1:g}, rows {y0:g}…{y1:g}; "
            "x = column from 0 to the width, and in GeoJSON y = −row from 0 to −height)",
        )


def checked_scan(corrections: CorrectedImage, scans: dict[str, Path]) -> CorrectedScan:
    scan = find_scan(corrections, scans)
    head = decode.header(scan, str(scan))  # the size predict's masks and outlines have
    if corrections.size is not None and corrections.size != (head.height, head.width):
        stated_h, stated_w = corrections.size
        raise refuse(
            corrections.source,
            f"image {corrections.scan_hint or scan.name}",
            f"size {stated_w}×{stated_h} is not that of the scan {scan} ({head.width}×{head.height})",
        )
    for piece in corrections.pieces:
        check_inside(piece, head.height, head.width, corrections.source)
    return CorrectedScan(scan, head.height, head.width, corrections)


def plan(outline_files: Sequence[str | Path], scans: dict[str, Path]) -> list[CorrectedScan]:
    """Every corrected scan of ``outline_files``, read and checked (nothing written)."""
    planned: dict[str, CorrectedScan] = {}
    for path in map(Path, outline_files):
        for corrections in read_corrections(path):
            corrected = checked_scan(corrections, scans)
            if corrected.id in planned:
                earlier = planned[corrected.id].corrections.source
                raise DatasetError(
                    f"{path}: corrects the scan {corrected.scan}, which {earlier} corrects too: "
                    "import one file per scan (merge them in the editor first)"
                )
            planned[corrected.id] = corrected
    return list(planned.values())


def _write_scan(corrected: CorrectedScan, out_dir: Path, unreviewed: str) -> None:
    mask = paint(corrected.corrections.pieces, corrected.height, corrected.width, unreviewed)
    image_target = out_dir / IMAGES_DIR / corrected.scan.name
    with ExitStack() as stack:  # the two renames come together, after both are written
        mask_tmp = stack.enter_context(atomic_path(out_dir / MASKS_DIR / f"{corrected.id}.png"))
        Image.fromarray(mask, mode="L").save(mask_tmp, format="PNG")
        if image_target.resolve() != corrected.scan.resolve():
            image_tmp = stack.enter_context(atomic_path(image_target))
            shutil.copyfile(corrected.scan, image_tmp)


def _metadata_rows(planned: Sequence[CorrectedScan], review: Review) -> pd.DataFrame:
    date = review.date or datetime.now(UTC).date().isoformat()
    rows = [
        {
            "id": c.id,
            "scan": c.scan.name,
            "source_file": c.corrections.source.name,
            "source_format": c.corrections.format,
            "reviewer": review.reviewer,
            "date": date,
            "unreviewed": review.unreviewed,
            "outlines": len(c.corrections.pieces),
        }
        for c in planned
    ]
    return pd.DataFrame(rows, columns=list(METADATA_COLUMNS))


def _write_metadata(out_dir: Path, new: pd.DataFrame) -> None:
    path = out_dir / METADATA
    if path.is_file():
        old = pd.read_csv(path, dtype=str, keep_default_na=False)
        new = pd.concat([old[~old["id"].isin(new["id"])], new.astype(str)], ignore_index=True)
    with atomic_path(path) as tmp:
        new.sort_values("id").to_csv(tmp, index=False)


def import_corrections(
    outline_files: Sequence[str | Path],
    scans: Sequence[str | Path],
    out_dir: str | Path,
    review: Review,
) -> list[CorrectedScan]:
    """Reads and checks every file of ``outline_files``, then writes the corrected scans of
    ``scans`` into the dataset ``out_dir`` (see the module docstring); returns what it wrote."""
    if review.unreviewed not in UNREVIEWED:
        raise ValueError(
            f"unreviewed must be one of {sorted(UNREVIEWED)}, got {review.unreviewed!r}"
        )
    if not review.reviewer.strip():
        raise ValueError("name the reviewer: the dataset records who corrected each scan")
    planned = plan(outline_files, scan_index(scans))
    out_dir = Path(out_dir)
    for corrected in planned:
        _write_scan(corrected, out_dir, review.unreviewed)
    _write_metadata(out_dir, _metadata_rows(planned, review))
    return planned
