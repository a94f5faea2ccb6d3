"""Dataset export: artworks and their views written in the layout of a real ARTeFACT export
(:func:`generate_dataset`)."""

from __future__ import annotations

import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from heritage_damage_seg.data.synthetic.artwork import CONTENTS, MATERIALS
from heritage_damage_seg.data.synthetic.damage import render_sample
from heritage_damage_seg.data.synthetic.numeric import MIN_SIDE, checked_int
from heritage_damage_seg.data.synthetic.views import apply_view, random_view
from heritage_damage_seg.io import atomic_path

METADATA_COLUMNS: tuple[str, ...] = ("id", "group", "material", "content", "width", "height")

_EXPORT_ENTRIES = {"images", "annotations", "metadata.csv"}
_GOLDEN_RATIO_FRACTION = 0.6180339887498949


@dataclass(frozen=True)
class _ArtworkJob:
    """Everything one worker needs to render artwork ``index`` and its views into ``stage``."""

    stage: Path
    index: int
    views: int
    seed: int
    min_side: int
    max_side: int
    background_fraction: float


def _draw_size(rng: np.random.Generator, min_side: int, max_side: int) -> tuple[int, int]:
    """A non-square ``(height, width)`` with both sides in ``[min_side, max_side]`` and aspect 0.5-2."""
    aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    lowest, highest = max(min_side, min_side / aspect), min(max_side, max_side / aspect)
    if lowest > highest:
        aspect, lowest, highest = 1.0, min_side, max_side
    h = int(round(rng.uniform(lowest, highest)))
    w = int(np.clip(round(h * aspect), min_side, max_side))
    return h, w


def _write_png(array: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=1)


def _artwork_kind(index: int, seed: int, background_fraction: float) -> tuple[str, str, bool]:
    """Artwork ``index``'s material, content and whether it sits on a mount: materials and
    contents cycle; the mount follows a low-discrepancy sequence, so the share of artworks on a
    mount is close to ``background_fraction`` even for few artworks."""
    material = MATERIALS[index % len(MATERIALS)]
    content = CONTENTS[(index + index // len(MATERIALS)) % len(CONTENTS)]
    position = (index * _GOLDEN_RATIO_FRACTION + (seed % 997) * 0.1234567) % 1.0
    return material, content, position < background_fraction


def _render_artwork(job: _ArtworkJob) -> list[dict[str, object]]:
    """Render an artwork and its views into ``job.stage``; returns their metadata rows."""
    rng = np.random.default_rng([job.seed, job.index])
    material, content, background = _artwork_kind(job.index, job.seed, job.background_fraction)
    h, w = _draw_size(rng, job.min_side, job.max_side)
    sample = render_sample(rng, h, w, material=material, content=content, background=background)
    source_id = f"syn{job.index:04d}"
    outputs = [(source_id, sample.image, sample.mask)]
    for k in range(1, job.views):
        view = random_view(rng, h, w, job.min_side)
        image, mask = apply_view(sample.image, sample.mask, view)
        outputs.append((f"{source_id}_aug{k}", image, mask))
    rows: list[dict[str, object]] = []
    for sample_id, image, mask in outputs:
        _write_png(image, job.stage / "images" / f"{sample_id}.png")
        _write_png(mask, job.stage / "annotations" / f"{sample_id}.png")
        rows.append(
            {
                "id": sample_id,
                "group": source_id,
                "material": material,
                "content": content,
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
            }
        )
    return rows


def _check_background_fraction(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"background_fraction must be a number in [0, 1], got {value!r}")
    return float(value)


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a folder that holds anything besides a previous export."""
    if out_dir.exists():
        foreign = {p.name for p in out_dir.iterdir()} - _EXPORT_ENTRIES
        if foreign:
            raise FileExistsError(
                f"{out_dir} exists and holds files that are not a synthetic export: {sorted(foreign)[:5]}"
            )


def _fresh_stage(out_dir: Path) -> Path:
    """An empty sibling ``<out_dir>.tmp`` with ``images/`` and ``annotations/`` to write into."""
    stage = out_dir.with_name(out_dir.name + ".tmp")
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "images").mkdir(parents=True)
    (stage / "annotations").mkdir()
    return stage


def _render_all(jobs: list[_ArtworkJob], workers: int) -> list[dict[str, object]]:
    """Render every job, in ``workers`` processes if more than one; rows in job order."""
    rows: list[dict[str, object]] = []
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            rows.extend(_render_artwork(job))
        return rows
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        chunksize = max(1, len(jobs) // (4 * workers))
        for part in pool.map(_render_artwork, jobs, chunksize=chunksize):
            rows.extend(part)
    return rows


def _move_into_place(stage: Path, out_dir: Path) -> None:
    """Rename the finished ``stage`` onto ``out_dir``, replacing a previous export."""
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out_dir, old)
        os.replace(stage, out_dir)
        shutil.rmtree(old)
    else:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage, out_dir)


def generate_dataset(
    out_dir: Path,
    *,
    n_artworks: int,
    views_per_artwork: int,
    seed: int,
    min_side: int,
    max_side: int,
    background_fraction: float,
    workers: int = 1,
) -> pd.DataFrame:
    """Write a synthetic dataset in the ARTeFACT export layout and return its metadata.

    Layout: ``out_dir/images/{id}.png`` (RGB), ``out_dir/annotations/{id}.png`` (mode ``"L"``
    class-index PNG, 255 = outside the artwork) and ``out_dir/metadata.csv`` with columns
    :data:`METADATA_COLUMNS`. Artwork ``i`` is ``syn{i:04d}``; its extra views are
    ``syn{i:04d}_aug1`` … (``views_per_artwork`` counts the original), and ``group`` is the source
    id. Artwork ``i`` uses ``np.random.default_rng([seed, i])``, so the files are byte-identical for
    the same arguments whatever ``workers`` is.

    The whole folder is written to a sibling ``<out_dir>.tmp`` and renamed into place at the end,
    so an interrupted run never leaves a finished-looking ``out_dir``. An existing ``out_dir`` is
    replaced if it holds only a previous export (``images/``, ``annotations/``, ``metadata.csv``);
    otherwise :class:`FileExistsError` is raised.

    Raises:
        ValueError: an argument is out of range (the message names it).
    """
    n_artworks = checked_int("n_artworks", n_artworks, 1)
    views_per_artwork = checked_int("views_per_artwork", views_per_artwork, 1)
    seed = checked_int("seed", seed, 0)
    min_side = checked_int("min_side", min_side, MIN_SIDE)
    max_side = checked_int("max_side", max_side, MIN_SIDE)
    workers = checked_int("workers", workers, 1)
    if min_side > max_side:
        raise ValueError(f"min_side ({min_side}) must be <= max_side ({max_side})")
    background_fraction = _check_background_fraction(background_fraction)

    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    stage = _fresh_stage(out_dir)
    jobs = [
        _ArtworkJob(stage, i, views_per_artwork, seed, min_side, max_side, background_fraction)
        for i in range(n_artworks)
    ]
    meta = pd.DataFrame(_render_all(jobs, workers), columns=list(METADATA_COLUMNS))
    meta.to_csv(stage / "metadata.csv", index=False)
    _move_into_place(stage, out_dir)
    return meta
