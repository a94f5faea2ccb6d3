"""Damage maps for new scans at native resolution, the model applied as it was trained.

Each scan goes through the checkpoint's :class:`~heritage_damage_seg.model.scan_view.ModelView`: a
resize-view model sees the whole scan squeezed to its training size (as its training cache did)
and its logits are brought back to the scan's size; a crops-view model sees the scan downscaled
by its ``input_scale`` through the sliding window. Either way the scan is decoded by libvips at the
model's input size, never whole, and the class map is written at the scan's own resolution.

For every image of a folder (or list): the index mask PNG (class ids 0–15 at the scan's own
resolution), a colour overlay in the ARTeFACT palette with a legend (drawn on a copy of the scan
downscaled to at most ``overlay_max_side``; areas from the full mask), and a row of damaged area
per class in ``damage_areas.csv``. A file that cannot be read or predicted is reported (log,
``status`` column, ``prediction.json``) and the rest carry on.

There is no background model: the network was trained with Background (255) ignored, so it
predicts a damage class or Clean for every pixel. Pixels outside the artwork become 255 only
when the caller supplies where the artwork is (``artwork_masks``: a folder of masks with the
scans' stems, 0 = outside); those pixels are then left out of the areas.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from heritage_damage_seg import device as devices
from heritage_damage_seg.classes import (
    IGNORE_INDEX,
)
from heritage_damage_seg.data import decode
from heritage_damage_seg.data.folder import IMAGE_SUFFIXES, image_files
from heritage_damage_seg.inference.areas import damage_areas, write_areas
from heritage_damage_seg.inference.condition_report import model_record, write_condition_reports
from heritage_damage_seg.inference.confidence import predict_with_confidence, save_grey_png
from heritage_damage_seg.inference.overlay import overlay_image
from heritage_damage_seg.inference.products import ProductSettings, RunProducts
from heritage_damage_seg.inference.progress import RunProgress
from heritage_damage_seg.inference.resolution import (
    Resolution,
    ResolutionError,
    checked_dpi,
    read_dpi_table,
    scan_resolution,
)
from heritage_damage_seg.io import atomic_path, read_json, write_json
from heritage_damage_seg.logs import format_duration
from heritage_damage_seg.model.models import load_checkpoint
from heritage_damage_seg.model.scan_view import ModelView, resized_nearest
from heritage_damage_seg.model.sliding import SlidingSettings, megapixels

log = logging.getLogger(__name__)
# The overlays' longest side in px (predict.overlay_max_side; the full mask keeps the scan's size).
OVERLAY_MAX_SIDE = 2048


class PredictError(ValueError):
    """A problem with the inputs of a prediction run: the message says what to fix."""


def best_checkpoint(results_dir: str | os.PathLike[str] = "results") -> Path:
    """``results/<best encoder>/model_best.pt``, the best encoder of the last model comparison
    (chosen there on validation mIoU, never on the test figures it reports)."""
    results_dir = Path(results_dir)
    comparison = results_dir / "model_comparison.json"
    if not comparison.is_file():
        raise PredictError(
            f"{comparison} does not exist: run the comparison first (snakemake "
            "results/model_comparison.json) or name a checkpoint"
        )
    best = read_json(comparison).get("best_encoder")
    if not best:
        raise PredictError(f"{comparison} names no best encoder")
    checkpoint = results_dir / best / "model_best.pt"
    if not checkpoint.is_file():
        raise PredictError(
            f"the best encoder's checkpoint {checkpoint} does not exist: rerun its training"
        )
    return checkpoint


def list_images(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image files of the given folders (sorted, hidden files skipped) and files, in order."""
    images: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            images.extend(image_files(item))
        elif item.is_file():
            images.append(item)
        else:
            raise PredictError(f"{item} is neither an image file nor a folder")
    if not images:
        raise PredictError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, inputs))}"
        )
    stems = [p.stem for p in images]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise PredictError(
            f"several inputs share the file stem(s) {duplicates[:5]}: their outputs would collide"
        )
    return images


def _artwork_mask(folder: Path | None, stem: str, shape: tuple[int, int]) -> np.ndarray | None:
    if folder is None:
        return None
    for path in sorted(folder.glob(f"{stem}.*")):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            with Image.open(path) as im:
                inside = np.asarray(im.convert("L")) > 0
            if inside.shape != shape:
                raise PredictError(
                    f"artwork mask {path} is {inside.shape[::-1]} but the scan is {shape[::-1]}"
                )
            return inside
    log.warning("no artwork mask for %s in %s: every pixel is scored", stem, folder)
    return None


@dataclass
class PredictSummary:
    checkpoint: str
    encoder: str
    tile: int
    n_images: int
    n_ok: int
    failed: dict[str, str]
    seconds: float
    device: str
    precision: str
    settings: dict[str, Any]


def predict_folder(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    results_dir: str | os.PathLike[str] = "results",
    settings: SlidingSettings = SlidingSettings(),
    artwork_masks: str | os.PathLike[str] | None = None,
    overlay_max_side: int = OVERLAY_MAX_SIDE,
    mixed_precision: bool = True,
    device_preference: str = "auto",
    products: ProductSettings = ProductSettings(),
    dpi: float | None = None,
    dpi_table: str | os.PathLike[str] | None = None,
) -> PredictSummary:
    """Predicts every image of ``inputs`` into ``out_dir``: ``masks/<stem>.png``,
    ``overlays/<stem>.png``, ``damage_areas.csv``, ``prediction.json`` (the run's summary), the
    condition reports ``reports/`` (:mod:`heritage_damage_seg.inference.condition_report`) and
    the outputs of :mod:`heritage_damage_seg.inference.products` (confidence maps, outlines,
    with ``products.viewer`` the damage viewer ``viewer/index.html``, with ``products.iiif`` the
    IIIF export ``iiif/manifest.json``)."""
    images = list_images([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs)
    try:  # the resolutions the user gave, checked before any scan is predicted
        run_dpi = None if dpi is None else checked_dpi(dpi, "--dpi (predict.dpi)")
        table = {} if dpi_table is None else read_dpi_table(dpi_table, images)
    except ResolutionError as err:
        raise PredictError(str(err)) from None
    device = devices.pick_device(device_preference)
    checkpoint = Path(checkpoint) if checkpoint else best_checkpoint(results_dir)
    model, meta = load_checkpoint(checkpoint, device)
    run = PredictRun(
        checkpoint=checkpoint,
        model=model,
        meta=meta,
        view=ModelView.from_checkpoint(meta, str(checkpoint)),
        device=device,
        amp_dtype=devices.autocast_dtype(device, mixed_precision),
        out_dir=Path(out_dir),
        settings=settings,
        artwork_dir=Path(artwork_masks) if artwork_masks else None,
        overlay_max_side=overlay_max_side,
        products=products,
        dpi=run_dpi,
        dpi_table=table,
        model_info=model_record(checkpoint, str(meta["encoder"])),
    )
    run.masks_dir.mkdir(parents=True, exist_ok=True)
    run.overlays_dir.mkdir(parents=True, exist_ok=True)
    log.info(
        "predicting %d image(s) with %s (%s) as it was trained: %s%s; on %s",
        len(images),
        checkpoint,
        meta["encoder"],
        run.view.describe(),
        ", 8-view TTA" if settings.tta_flip else "",
        devices.describe(device),
    )
    started = time.perf_counter()
    rows, failed, run_products = _predict_all(run, images, started)
    csv_rows = write_areas(run.out_dir / "damage_areas.csv", rows)
    run_products.finish(csv_rows, encoder=str(meta["encoder"]))
    write_condition_reports(run.out_dir, csv_rows, run.model_info)
    summary = _summary(run, len(images), failed, time.perf_counter() - started)
    write_json(run.out_dir / "prediction.json", asdict(summary))
    if failed:
        log.error("%d of %d image(s) failed: %s", len(failed), len(images), ", ".join(failed))
    log.info("done: %d image(s) in %s", summary.n_ok, format_duration(summary.seconds))
    return summary


@dataclass
class PredictRun:
    """One prediction run: the model as it was trained, where it runs, where outputs go."""

    checkpoint: Path
    model: torch.nn.Module
    meta: dict[str, Any]
    view: ModelView
    device: torch.device
    amp_dtype: torch.dtype | None
    out_dir: Path
    settings: SlidingSettings
    artwork_dir: Path | None
    overlay_max_side: int
    products: ProductSettings
    dpi: float | None = None  # --dpi: every scan's resolution
    dpi_table: dict[str, float] = field(default_factory=dict)  # file name or stem → dpi
    model_info: dict[str, Any] = field(default_factory=dict)  # condition_report.model_record

    @property
    def masks_dir(self) -> Path:
        return self.out_dir / "masks"

    @property
    def overlays_dir(self) -> Path:
        return self.out_dir / "overlays"


class ScanOutOfMemory(MemoryError):
    """A scan that ran out of device memory even one tile at a time."""


# What one scan may fail with while the rest carry on: ValueError covers DatasetError and
# PredictError, MemoryError host memory and ScanOutOfMemory, DecompressionBombError a scan above
# dataset.Image.MAX_IMAGE_PIXELS (250 MP). Other RuntimeErrors are not among them: a CUDA error
# (device-side assert, illegal address) leaves the GPU unusable for the rest of the process, and
# every later scan would fail with it too; the run stops with its message instead.
SCAN_ERRORS = (OSError, ValueError, MemoryError, Image.DecompressionBombError)


def _predict_all(
    run: PredictRun, images: list[Path], started: float
) -> tuple[list[dict[str, Any]], dict[str, str], RunProducts]:
    """Every scan in turn, with progress; a scan that fails is recorded and skipped."""
    rows: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    megapixels_done = 0.0
    with RunProgress(images) as run_progress:
        run_products = RunProducts(
            run.out_dir, run.products, progress=run_progress, model=run.model_info
        )
        for i, path in enumerate(images, start=1):
            scan_start = time.perf_counter()
            try:
                with run_progress.scan(i - 1, path.name) as tile_rows:
                    row = _predict_with_retries(run, path, run_products, tile_rows)
            except SCAN_ERRORS as err:
                failed[path.name] = f"{type(err).__name__}: {err}"
                log.error("[%d/%d] %s FAILED, skipped: %s", i, len(images), path.name, err)
                rows.append({"image": path.name, "status": f"error: {err}"})
                continue
            row["seconds"] = round(time.perf_counter() - scan_start, 3)
            rows.append(row)
            megapixels_done += megapixels(row["height"], row["width"])
            _log_scan(i, len(images), path, row, megapixels_done, time.perf_counter() - started)
    return rows, failed, run_products


def is_out_of_memory(err: BaseException) -> bool:
    """An allocation that failed: on the GPU (torch.OutOfMemoryError) or in torch's CPU allocator
    (a plain RuntimeError)."""
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(err)
    )


def tile_batches(batch_size: int) -> list[int]:
    """The tile batches a scan is tried with after running out of device memory: halved down to
    one tile (8 → 8, 4, 2, 1)."""
    sizes = [batch_size]
    while sizes[-1] > 1:
        sizes.append(sizes[-1] // 2)
    return sizes


def _predict_with_retries(
    run: PredictRun, path: Path, run_products: RunProducts, progress: Callable[[int, int], None]
) -> dict[str, Any]:
    """One scan; an out-of-memory on the device retries it with half the tile batch, down to
    one tile, then fails that scan clearly (:class:`ScanOutOfMemory`)."""
    sizes = tile_batches(run.settings.batch_size)
    for attempt, batch_size in enumerate(sizes):
        try:
            return _predict_one(
                run.model,
                run.view,
                path,
                run.masks_dir,
                run.overlays_dir,
                settings=replace(run.settings, batch_size=batch_size),
                device=run.device,
                amp_dtype=run.amp_dtype,
                artwork_dir=run.artwork_dir,
                overlay_max_side=run.overlay_max_side,
                products=run_products,
                progress=progress,
                resolution=scan_resolution(path, run.dpi, run.dpi_table),
            )
        except RuntimeError as err:
            if not is_out_of_memory(err):
                raise
            if run.device.type == "cuda":
                torch.cuda.empty_cache()
            if attempt + 1 == len(sizes):
                raise ScanOutOfMemory(
                    f"out of memory on {run.device} even with one tile at a time ({err}); predict "
                    "this scan on a GPU with more memory, or on the CPU (--device cpu)"
                ) from err
            log.warning(
                "%s: out of memory on %s with %d tiles at a time; retrying with %d",
                path.name,
                run.device,
                batch_size,
                sizes[attempt + 1],
            )
    raise AssertionError("unreachable")


def check_failures(summary: PredictSummary, keep_going: bool) -> None:
    """A run in which any scan failed fails (after writing every output, prediction.json naming
    the failures), unless the user asked to keep going."""
    if not summary.failed or keep_going:
        return
    names = ", ".join(f"{name} ({why})" for name, why in summary.failed.items())
    raise PredictError(
        f"{len(summary.failed)} of {summary.n_images} scan(s) failed: {names}. Fix or remove "
        "them, or accept a run with failed scans: predict.keep_going: true (CLI --keep-going)"
    )


def _log_scan(
    i: int, n: int, path: Path, row: dict[str, Any], megapixels_done: float, elapsed: float
) -> None:
    log.info(
        "[%d/%d] %s %d×%d: damaged %.2f%% in %.1fs | %.2f images/s, %.2f MP/s, ETA %s",
        i,
        n,
        path.name,
        row["width"],
        row["height"],
        row["damaged_pct"],
        row["seconds"],
        i / elapsed,
        megapixels_done / elapsed,
        format_duration(elapsed / i * (n - i)),
    )


def _summary(
    run: PredictRun, n_images: int, failed: dict[str, str], seconds: float
) -> PredictSummary:
    return PredictSummary(
        checkpoint=str(run.checkpoint),
        encoder=str(run.meta["encoder"]),
        tile=run.view.image_size,
        n_images=n_images,
        n_ok=n_images - len(failed),
        failed=failed,
        seconds=round(seconds, 3),
        device=devices.describe(run.device),
        precision=devices.precision_name(run.amp_dtype),
        settings=asdict(run.settings)
        | {
            "overlay_max_side": run.overlay_max_side,
            "artwork_masks": str(run.artwork_dir) if run.artwork_dir else None,
            "scan_view": run.view.record(),
            "products": run.products.record(),
            "dpi": run.dpi,
            "dpi_table": run.dpi_table,
        },
    )


def _predict_one(
    model: torch.nn.Module,
    view: ModelView,
    path: Path,
    masks_dir: Path,
    overlays_dir: Path,
    *,
    settings: SlidingSettings,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    artwork_dir: Path | None,
    overlay_max_side: int,
    products: RunProducts,
    progress: Callable[[int, int], None],
    resolution: Resolution,
) -> dict[str, Any]:
    head = decode.header(path, str(path))
    height, width = head.height, head.width
    log.info(
        "%s: %d×%d (%.1f MP), %s",
        path.name,
        width,
        height,
        megapixels(height, width),
        view.describe_cost(width, height, settings),
    )
    mask, confidence = predict_with_confidence(
        view,
        model,
        path,
        name=str(path),
        settings=settings,
        device=device,
        amp_dtype=amp_dtype,
        progress=progress,
    )
    inside = _artwork_mask(artwork_dir, path.stem, (height, width))
    if inside is not None:
        mask[~inside] = IGNORE_INDEX
        confidence[~inside] = 0
    save_grey_png(mask, masks_dir / f"{path.stem}.png")  # from the array's memory: no copy
    areas = damage_areas(mask, resolution)
    # The overlay is drawn small: the scan is decoded straight to that size, never whole.
    scale = min(1.0, overlay_max_side / max(height, width))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small_image, _ = decode.scaled_image(path, *small_size, str(path))
    with atomic_path(overlays_dir / f"{path.stem}.png") as tmp:
        overlay = overlay_image(
            np.asarray(small_image),
            resized_nearest(mask, *small_size),
            max_side=overlay_max_side,
            areas=areas,
        )
        overlay.save(tmp, format="PNG")
    extra = products.add_scan(
        path, mask, confidence, masks_dir / f"{path.stem}.png", resolution.mm2_per_pixel
    )
    return {"image": path.name, "status": "ok", "width": width, "height": height, **areas, **extra}
