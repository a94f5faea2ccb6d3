"""What a prediction run writes beside the masks for the people who use it: per scan the confidence
map (``confidence/<stem>.png``) and its summary columns, the damage outlines
(``outlines/<stem>.geojson``, ``outlines/<stem>.coco.json``) and, when asked for, the scan's
pyramids in the damage viewer (``viewer/``), whose page is written once every scan is done, and,
when asked for, the IIIF export (``iiif/``: :mod:`heritage_damage_seg.inference.iiif`), whose
manifest is written last too."""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from heritage_damage_seg.inference import iiif
from heritage_damage_seg.inference.confidence import (
    CONFIDENCE_COLUMNS,
    confidence_summary,
    save_grey_png,
)
from heritage_damage_seg.inference.outlines import (
    Outlines,
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
    iiif: bool = False
    """Write the IIIF export (``iiif/manifest.json``, tiles and annotation pages)."""
    iiif_base_url: str | None = None
    """Where ``iiif/`` is published (the ids' base); None: ``iiif.LOCAL_BASE_URL``."""

    def __post_init__(self) -> None:
        iiif.checked_base_url(self.iiif_base_url)
        if not 0.0 < self.low_confidence <= 1.0:
            raise ValueError(
                f"low-confidence threshold {self.low_confidence} must be within (0, 1], e.g. 0.5"
            )

    def record(self) -> dict[str, Any]:
        return asdict(self)


class RunProducts:
    """The outputs of one prediction run in ``out_dir``: :meth:`add_scan` per scan, then :meth:`finish`."""

    def __init__(
        self,
        out_dir: Path,
        settings: ProductSettings,
        *,
        progress: RunProgress | None = None,
        model: Mapping[str, Any] | None = None,
    ) -> None:
        """``model``: who predicts (``condition_report.model_record``), for the IIIF annotations."""
        self.out_dir = out_dir
        self.settings = settings
        self.progress = progress
        self.tiles: dict[str, dict[str, Any]] = {}
        self.canvases: dict[str, dict[str, Any]] = {}
        self.model = dict(model or {})
        self.created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.base_url = iiif.checked_base_url(settings.iiif_base_url)
        if settings.iiif and not model:
            raise ValueError(
                "the IIIF export needs the model's record (condition_report.model_record)"
            )
        folders = ("confidence", "outlines") + (("viewer",) if settings.viewer else ())
        for folder in folders + (("iiif",) if settings.iiif else ()):
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
            outlines = self._write_outlines(scan, mask_file, mask.shape, mm2_per_pixel)
            row["regions"] = len(outlines.regions)
            row["small_regions_dropped"] = sum(outlines.dropped.values())
        if self.settings.iiif:
            with self._step(scan, "IIIF tiles", timings):
                self._write_iiif(scan, mask, confidence, outlines, mm2_per_pixel)
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
    ) -> Outlines:
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
        return outlines

    def _write_iiif(
        self,
        scan: Path,
        mask: np.ndarray,
        confidence: np.ndarray,
        outlines: Outlines,
        mm2_per_pixel: float | None,
    ) -> None:
        """The scan's tile sets and annotation page; its canvas goes into the manifest at the end."""
        iiif_dir = self.out_dir / "iiif"
        infos = iiif.write_scan_tiles(iiif_dir, scan, mask, confidence, self.base_url)
        page = iiif.annotation_page(
            scan.stem,
            outlines,
            mask,
            confidence,
            mm2_per_pixel=mm2_per_pixel,
            creator=iiif.software_agent(self.model),
            created=self.created,
            base_url=self.base_url,
        )
        iiif.write_json_file(iiif_dir / f"{scan.stem}.annotations.json", page)
        self.canvases[scan.name] = iiif.canvas(scan.name, scan.stem, infos, self.base_url)

    def finish(self, csv_rows: Sequence[Mapping[str, Any]], *, encoder: str) -> Path | None:
        """The viewer's page and the IIIF manifest over the scans that were predicted
        (``csv_rows``: as written to ``damage_areas.csv``; ``encoder``: the model's, for the
        titles); returns the viewer's page, or None without a viewer."""
        if self.settings.iiif:
            iiif.write_manifest(
                self.out_dir / "iiif",
                [self.canvases[row["image"]] for row in csv_rows if row["image"] in self.canvases],
                label=f"Damage predicted in {self.out_dir.resolve().name} ({encoder})",
                model=self.model,
                created=self.created,
                base_url=self.base_url,
            )
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
