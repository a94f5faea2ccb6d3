"""How large a scan's pixels are on the object, so that damage can be stated in cm².

Where it comes from, first match wins:

1. a per-scan table (``--dpi-table`` / ``predict.dpi_table``: a CSV with columns ``image`` and
   ``dpi``), for collections scanned at several resolutions or files that state a wrong one;
2. one value for the run (``--dpi`` / ``predict.dpi``), which overrides what every file says;
3. the file's own header: PNG ``pHYs``, TIFF ``XResolution``/``YResolution`` with
   ``ResolutionUnit`` inch or cm, JPEG JFIF density or EXIF resolution (as Pillow reads them);
4. otherwise the resolution is unknown, and so is every area in physical units: the cells stay
   empty rather than hold a made-up cm².

A file's own value of 72 or 96 dpi, or under 10 dpi, counts as unknown: those are the screen
defaults that cameras, screenshots and many editors stamp without measuring anything (and TIFF
writers' 1 dpi placeholder); a heritage scan is made at 300 dpi and up. Give ``--dpi`` for a
collection really scanned at 72 or 96 dpi.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

MM_PER_INCH = 25.4
# What a file's header may say without meaning it (see the module docstring).
PLACEHOLDER_DPI = (72.0, 96.0)
MIN_FILE_DPI = 10.0


class ResolutionError(ValueError):
    """A resolution the user gave that cannot be used: the message names it and the fix."""


@dataclass(frozen=True)
class Resolution:
    """Pixels per inch across (x) and down (y), and where they come from; None: unknown."""

    x_dpi: float | None
    y_dpi: float | None
    source: str  # "table", "--dpi", "file", or "unknown: <why>"

    @property
    def known(self) -> bool:
        return self.x_dpi is not None and self.y_dpi is not None

    @property
    def mm2_per_pixel(self) -> float | None:
        """The area one pixel covers on the object, in mm²."""
        if not self.known:
            return None
        return MM_PER_INCH * MM_PER_INCH / (self.x_dpi * self.y_dpi)  # type: ignore[operator]

    def record(self) -> dict[str, object]:
        return {
            "dpi_x": None if self.x_dpi is None else round(self.x_dpi, 2),
            "dpi_y": None if self.y_dpi is None else round(self.y_dpi, 2),
            "resolution_source": self.source,
        }


def _is_placeholder(dpi: float) -> bool:
    return dpi < MIN_FILE_DPI or any(abs(dpi - p) < 0.5 for p in PLACEHOLDER_DPI)


def file_resolution(path: str | os.PathLike[str]) -> Resolution:
    """What the scan's own header says (header only: the pixels are not decoded)."""
    try:
        with Image.open(path) as image:
            dpi = image.info.get("dpi")
    except (OSError, SyntaxError, Image.DecompressionBombError):
        return Resolution(None, None, "unknown: the header could not be read")
    if not dpi:
        return Resolution(None, None, "unknown: the file states no resolution")
    x, y = float(dpi[0]), float(dpi[1])
    if _is_placeholder(x) or _is_placeholder(y):
        return Resolution(
            None, None, f"unknown: the file says {x:g}×{y:g} dpi, a placeholder (give --dpi)"
        )
    return Resolution(x, y, "file")


def checked_dpi(value: float, what: str) -> float:
    """A dpi the user gave, refused where it cannot be a scan's resolution."""
    if not value > 0:
        raise ResolutionError(
            f"{what}: a dpi must be a positive number of pixels per inch, got {value}"
        )
    return float(value)


def read_dpi_table(
    path: str | os.PathLike[str], scans: Sequence[str | os.PathLike[str]]
) -> dict[str, float]:
    """The ``image`` → ``dpi`` rows of a per-scan table; ``image`` is a scan's file name or stem.
    Refuses a table without those columns, a bad dpi, and rows naming scans not in the run."""
    path = Path(path)
    if not path.is_file():
        raise ResolutionError(
            f"dpi table {path} does not exist: fix --dpi-table (predict.dpi_table)"
        )
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"image", "dpi"} <= set(rows[0]):
        raise ResolutionError(
            f"{path}: a dpi table needs the columns image and dpi (one row per scan)"
        )
    names = {Path(scan).name for scan in scans} | {Path(scan).stem for scan in scans}
    table: dict[str, float] = {}
    for number, row in enumerate(rows, start=2):
        image = row["image"].strip()
        try:
            dpi = float(row["dpi"])
        except ValueError:
            raise ResolutionError(
                f"{path} line {number}: dpi {row['dpi']!r} is not a number"
            ) from None
        table[image] = checked_dpi(dpi, f"{path} line {number} ({image})")
    unknown = sorted(set(table) - names)
    if unknown:
        raise ResolutionError(
            f"{path} names scans that are not in this run: {', '.join(unknown[:5])}"
            f"{' …' if len(unknown) > 5 else ''}: fix the names (file name or stem) or remove the rows"
        )
    return table


def scan_resolution(
    path: str | os.PathLike[str], dpi: float | None = None, table: Mapping[str, float] | None = None
) -> Resolution:
    """The resolution a scan's areas are stated at (see the module docstring for the order)."""
    path = Path(path)
    for key in (path.name, path.stem):
        if table and key in table:
            return Resolution(table[key], table[key], "table")
    if dpi is not None:
        return Resolution(dpi, dpi, "--dpi")
    return file_resolution(path)
