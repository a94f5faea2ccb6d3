"""What a prediction run writes beside the masks for the people who use it: per scan the confidence
map (``confidence/<stem>.png``) and its summary columns, the damage outlines
(``outlines/<stem>.geojson``, ``outlines/<stem>.coco.json``) and, when asked for, the scan's
pyramids in the damage viewer (``viewer/``), whose page is written once every scan is done."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from heritage_damage_seg.inference.confidence import (
    CONFIDENCE_COLUMNS,
    confidence_summary,
    save_grey_png,
)
from heritage_damage_seg.inference.outlines import (
    OutlineSettings,
    damage_regions,
    write_coco,
    write_geojson,
)
from heritage_damage_seg.inference.progress import RunProgress
from heritage_damage_seg.inference.viewer import viewer_entry, write_scan_pyramids, write_viewer

log = logging.getLogger(__name__)

PRODUCT_COLUMNS: list[str] = CONFIDENCE_COLUMNS + ["regions", "small_regions_dropped"]
"""The columns these outputs add to ``damage_areas.csv``."""


@dataclass(frozen=True)
class ProductSettings:
    viewer: bool = False
    """Write the damage viewer (``viewer/index.html``)."""
    low_confidence: float = 0.5
    """Pixels whose confidence is below this count as low-confidence (``*_low_confidence_pct``)."""
    outlines: OutlineSettings = field(default_factory=OutlineSettings)

    def __post_init__(self) -> None:
        if not 0.0 < self.low_confidence <= 1.0:
            raise ValueError(
                f"low-confidence threshold {self.low_confidence} must be within (0, 1], e.g. 0.5"
            )

    def record(self) -> dict[str, Any]:
        return asdict(self)


class RunProducts:
    """The outputs of one prediction run in ``out_dir``: :meth:`add_scan` per scan, then :meth:`finish`."""

    def __init__(
        self, out_dir: Path, settings: ProductSettings, *, progress: RunProgress | None = None
    ) -> None:
        self.out_dir = out_dir
        self.settings = settings
        self.progress = progress
        self.tiles: dict[str, dict[str, Any]] = {}
        for folder in ("confidence", "outlines") + (("viewer",) if settings.viewer else ()):
            (out_dir / folder).mkdir(parents=True, exist_ok=True)

    def add_scan(
        self,
        scan: Path,
        mask: np.ndarray,
        confidence: np.ndarray,
        mask_file: Path,
        mm2_per_pixel: float | None = None,
    ) -> dict[str, Any]:
        """Writes the scan's confidence map, outlines (from ``mask_file``, the PNG of ``mask``:
        read line by line) and pyramids; returns its new CSV columns."""
        timings: list[str] = []
        with self._step(scan, "confidence map", timings):
            save_grey_png(confidence, self.out_dir / "confidence" / f"{scan.stem}.png")
            row: dict[str, Any] = dict(
                confidence_summary(mask, confidence, self.settings.low_confidence)
            )
        with self._step(scan, "outlines", timings):
            row |= self._write_outlines(scan, mask_file, mask.shape, mm2_per_pixel)
        if self.settings.viewer:
            with self._step(scan, "viewer tiles", timings):
                self.tiles[scan.name] = write_scan_pyramids(
                    self.out_dir / "viewer", scan, mask, confidence
                )
        log.info(
            "  %s: %d outline(s), %d region(s) under %d px dropped; %s",
            scan.name,
            row["regions"],
            row["small_regions_dropped"],
            self.settings.outlines.min_area,
            ", ".join(timings),
        )
        return row

    @contextlib.contextmanager
    def _step(self, scan: Path, what: str, timings: list[str]) -> Iterator[None]:
        if self.progress is not None:
            self.progress.step(scan.name, what)
        started = time.perf_counter()
        yield
        timings.append(f"{what} {time.perf_counter() - started:.1f}s")

    def _write_outlines(
        self, scan: Path, mask_file: Path, shape: tuple[int, int], mm2_per_pixel: float | None
    ) -> dict[str, int]:
        height, width = shape
        outlines = damage_regions(mask_file, self.settings.outlines)
        for writer, suffix in ((write_geojson, ".geojson"), (write_coco, ".coco.json")):
            path = self.out_dir / "outlines" / f"{scan.stem}{suffix}"
            writer(
                path,
                outlines,
                scan=scan.name,
                width=width,
                height=height,
                mm2_per_pixel=mm2_per_pixel,
            )
        return {
            "regions": len(outlines.regions),
            "small_regions_dropped": sum(outlines.dropped.values()),
        }

    def finish(self, csv_rows: Sequence[Mapping[str, Any]], *, encoder: str) -> Path | None:
        """The viewer's page over the scans that were predicted (``csv_rows``: as written to
        ``damage_areas.csv``; ``encoder``: the model's, for the title), or None without a viewer."""
        if not self.settings.viewer:
            return None
        entries = [
            viewer_entry(row, self.tiles[row["image"]], self._files(Path(row["image"]).stem))
            for row in csv_rows
            if row["image"] in self.tiles
        ]
        return write_viewer(
            self.out_dir / "viewer",
            entries,
            title=f"Damage viewer: {self.out_dir.resolve().name} ({encoder})",
            low_confidence=self.settings.low_confidence,
        )

    @staticmethod
    def _files(name: str) -> dict[str, str]:
        """The scan's other outputs, from ``viewer/index.html`` (as URLs)."""
        stem = quote(name)
        return {
            "mask": f"../masks/{stem}.png",
            "confidence": f"../confidence/{stem}.png",
            "overlay": f"../overlays/{stem}.png",
            "outlines (GeoJSON)": f"../outlines/{stem}.geojson",
            "outlines (COCO)": f"../outlines/{stem}.coco.json",
        }
