"""The folder dataset format: a folder of RGB images and a folder of single-channel index masks
with the same file stem, plus an optional metadata CSV (id, group, material, content, type)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from heritage_damage_seg.data import decode
from heritage_damage_seg.data.cache import METADATA_COLUMNS
from heritage_damage_seg.data.cache_writer import (
    DEFAULT_WORKING_MAX_SIDE,
    complete_metadata,
    crop_rows,
    working_dir,
    write_cache,
)
from heritage_damage_seg.data.geometry import CropView
from heritage_damage_seg.data.preparation import (
    Preparation,
    PreparedSample,
    prepare_scan,
    working_paths,
)
from heritage_damage_seg.data.sources import DatasetError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


@dataclass(frozen=True)
class Sample:
    id: str
    image: Path
    mask: Path


def image_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` (by suffix, hidden files skipped), sorted by name."""
    return [
        path
        for path in sorted(folder.iterdir())
        if path.is_file()
        and path.suffix.lower() in IMAGE_SUFFIXES
        and not path.name.startswith(".")
    ]


def _by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in image_files(folder):
        files.setdefault(path.stem, path)
    return files


def discover(images_dir: str | os.PathLike[str], masks_dir: str | os.PathLike[str]) -> list[Sample]:
    """Pairs every image with the mask of the same stem; refuses unpaired files and empty folders."""
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder, what in ((images_dir, "images"), (masks_dir, "masks")):
        if not folder.is_dir():
            raise DatasetError(
                f"dataset {what} folder {folder} does not exist: set dataset.path (and "
                f"dataset.{what}_dir) in your config to the folder holding the {what}"
            )
    images, masks = _by_stem(images_dir), _by_stem(masks_dir)
    if not images:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {images_dir}")
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask or no_image:
        problems = []
        if no_mask:
            problems.append(
                f"{len(no_mask)} image(s) without a mask in {masks_dir}, e.g. {no_mask[:3]}"
            )
        if no_image:
            problems.append(
                f"{len(no_image)} mask(s) without an image in {images_dir}, e.g. {no_image[:3]}"
            )
        raise DatasetError("; ".join(problems) + ": add the missing files or remove the strays")
    return [Sample(stem, images[stem], masks[stem]) for stem in sorted(images)]


@dataclass(frozen=True)
class _FileJob:
    position: int  # of the scan, in id order
    sample: Sample
    work_dir: Path
    how: Preparation

    def __call__(self) -> list[PreparedSample]:
        head = decode.header(self.sample.image, str(self.sample.image), orientation="ignore")
        copy = decode.needs_working_copy(head, self.how.working_max_side)
        return prepare_scan(
            self.position,
            self.sample.id,
            self.sample.image,
            self.sample.mask,
            name=f"{self.sample.image} / {self.sample.mask}",
            working=working_paths(self.work_dir, self.sample.id) if copy else None,
            how=self.how,
        )


def read_metadata(path: str | os.PathLike[str] | None, ids: Sequence[str]) -> pd.DataFrame:
    """id/group/material/content/type for every sample; group defaults to the source artwork id."""
    frame = pd.DataFrame({"id": list(ids)})
    if path:
        path = Path(path)
        if not path.is_file():
            raise DatasetError(
                f"metadata file {path} does not exist: fix dataset.metadata or set it to null"
            )
        meta = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "id" not in meta.columns:
            raise DatasetError(
                f"{path}: metadata needs an 'id' column (found {list(meta.columns)})"
            )
        keep = [c for c in METADATA_COLUMNS if c in meta.columns]
        frame = frame.merge(meta[keep], on="id", how="left")
    return complete_metadata(frame)


def build_cache(
    images_dir: str | os.PathLike[str],
    masks_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    size: int,
    metadata: str | os.PathLike[str] | None = None,
    workers: int = 1,
    working_max_side: int = DEFAULT_WORKING_MAX_SIDE,
    crops: CropView | None = None,
    exif_orientation: str = "auto",
) -> pd.DataFrame:
    """Decodes, checks and resizes (or crops, with ``crops``) a folder dataset once into
    ``out_dir`` (see module docstring; ``exif_orientation``: :func:`decode.resolve_orientation`)."""
    how = Preparation(size, working_max_side, crops, exif_orientation)
    samples = discover(images_dir, masks_dir)
    out_dir = Path(out_dir)
    work_dir = working_dir(out_dir)
    index = crop_rows(read_metadata(metadata, [s.id for s in samples]), crops)
    log.info(
        "preparing %d scans from %s (%s) with %d worker(s)",
        len(samples),
        images_dir,
        how.describe(),
        workers,
    )
    jobs = [_FileJob(i, sample, work_dir, how) for i, sample in enumerate(samples)]
    return write_cache(out_dir, index, jobs, size=size, workers=workers)


def cache_from_inputs(
    inputs: Any, out_dir: str | os.PathLike[str], **settings: Any
) -> pd.DataFrame:
    """The cache from the prepare rule's inputs (:func:`heritage_damage_seg.data.sources.inputs`)."""
    return build_cache(
        inputs["images"], inputs["masks"], out_dir, metadata=inputs.get("metadata"), **settings
    )
