"""One scan (an image and its index mask, from a file or a parquet cell) checked and turned into
its cache rows in the chosen training view: the whole scan resized to S×S (``resize``, the
prototype's), or its crops cut from the scan downscaled by ``crop_scale`` (``crops``, see
:mod:`heritage_damage_seg.data.geometry`). Scans of any size are decoded with bounded memory
(:mod:`heritage_damage_seg.data.decode`); every image mode is read as the same 8-bit sRGB pixels,
and an EXIF-oriented image is lined up with its mask by one rule, ``prepare.exif_orientation``
(:func:`heritage_damage_seg.data.decode.resolve_orientation`).

For native-resolution work (``evaluation.mode: native``) each row names the sample's *working
copy*: the original file, or, for scans whose longest side exceeds ``working_max_side``, files with
an EXIF orientation or several pages, and every parquet row, a copy in ``working/`` (downscaled to
that side where larger; a PNG already in the chosen orientation for a tagged image)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heritage_damage_seg.classes import IGNORE_INDEX
from heritage_damage_seg.data import decode
from heritage_damage_seg.data.geometry import (
    CropPlacement,
    CropView,
    crop_offsets,
    cut_crop,
    scaled_size,
)
from heritage_damage_seg.data.sources import DatasetError


@dataclass(frozen=True)
class PreparedSample:
    position: int  # row in the cache
    image: np.ndarray  # S×S×3
    mask: np.ndarray  # S×S
    height: int  # of the original scan
    width: int
    image_path: str  # the working copy (see module docstring)
    mask_path: str
    crop: CropPlacement | None = None  # crops view only


def _checked_same_size(image_head: decode.Header, mask_head: decode.Header, name: str) -> None:
    if (image_head.width, image_head.height) != (mask_head.width, mask_head.height):
        tag = ""
        if image_head.orientation != 1:
            stored, displayed = image_head.stored_size, image_head.displayed_size
            tag = (
                f" ({stored[0]}×{stored[1]} as stored, {displayed[0]}×{displayed[1]} as displayed: EXIF orientation "
                f"{image_head.orientation}, see prepare.exif_orientation)"
            )
        raise DatasetError(
            f"{name}: the image is {image_head.width}×{image_head.height}{tag} but its mask is "
            f"{mask_head.width}×{mask_head.height}: image and mask must have the same size"
        )


def _orientation(image: decode.Source, mask: decode.Source, setting: str, name: str) -> str:
    """How this scan is read so that it lines up with its mask (:func:`decode.resolve_orientation`)."""
    image_head = decode.header(image, f"{name} image", orientation="ignore")
    if image_head.orientation == 1:
        return "ignore"
    return decode.resolve_orientation(
        image_head, decode.header(mask, f"{name} mask", orientation="ignore"), setting, name
    )


def _working_copy(
    image: decode.Source,
    mask: decode.Source,
    working: tuple[Path, Path] | None,
    working_max_side: int,
    name: str,
    orientation: str,
) -> tuple[str, str]:
    if working is not None:
        image_path, mask_path = decode.write_working_copy(
            image, mask, *working, working_max_side, name, orientation=orientation
        )
    else:
        image_path, mask_path = Path(os.fspath(image)), Path(os.fspath(mask))  # type: ignore[arg-type]
    return str(image_path), str(mask_path)


def prepare_pair(
    position: int,
    image: decode.Source,
    mask: decode.Source,
    *,
    size: int,
    name: str,
    working: tuple[Path, Path] | None,
    working_max_side: int,
    exif_orientation: str = "auto",
) -> PreparedSample:
    """One sample checked and resized to ``size``×``size`` (image: area-averaged; mask: nearest).

    ``working``: where to write a working copy (paths without suffix), always for parquet rows; for
    files, None and a copy is written to ``work_dir`` only when the file cannot serve as it is
    (:func:`decode.needs_working_copy`). ``exif_orientation``: prepare.exif_orientation, the rule
    that lines an EXIF-oriented image up with its mask (:func:`decode.resolve_orientation`).
    """
    orientation = _orientation(image, mask, exif_orientation, name)
    small_mask, mask_head = decode.scaled_mask(mask, size, size, f"{name} mask")
    small_image, image_head = decode.scaled_image(
        image, size, size, f"{name} image", orientation=orientation
    )
    _checked_same_size(image_head, mask_head, name)
    image_path, mask_path = _working_copy(image, mask, working, working_max_side, name, orientation)
    return PreparedSample(
        position,
        small_image,
        small_mask,
        image_head.height,
        image_head.width,
        image_path,
        mask_path,
    )


def prepare_crops(
    position: int,
    image: decode.Source,
    mask: decode.Source,
    *,
    scan_id: str,
    view: CropView,
    size: int,
    name: str,
    working: tuple[Path, Path] | None,
    working_max_side: int,
    exif_orientation: str = "auto",
) -> list[PreparedSample]:
    """The ``view.per_image`` crops of one scan, in cache rows ``position``, ``position + 1``, …

    The scan is decoded once at ``view.scale`` of its native size (libvips: the native scan is
    never whole in memory; the mask by nearest neighbour, every pixel checked), and the crops are
    cut from that at :func:`crop_offsets`; sides shorter than ``size`` are padded
    (:func:`cut_crop`).
    """
    orientation = _orientation(image, mask, exif_orientation, name)
    head = decode.header(image, f"{name} image", orientation=orientation)
    width, height = scaled_size(head.width, head.height, view.scale)
    scaled_mask, mask_head = decode.scaled_mask(mask, width, height, f"{name} mask")
    _checked_same_size(head, mask_head, name)
    scaled_image, _ = decode.scaled_image(
        image, width, height, f"{name} image", orientation=orientation
    )
    image_path, mask_path = _working_copy(image, mask, working, working_max_side, name, orientation)
    return [
        PreparedSample(
            position + k,
            cut_crop(scaled_image, x, y, size, 0),
            cut_crop(scaled_mask, x, y, size, IGNORE_INDEX),
            head.height,
            head.width,
            image_path,
            mask_path,
            CropPlacement(scan_id, view.scale, width, height, x, y),
        )
        for k, (x, y) in enumerate(crop_offsets(scan_id, width, height, size, view))
    ]


def prepare_scan(
    scan_position: int,
    scan_id: str,
    image: decode.Source,
    mask: decode.Source,
    *,
    size: int,
    crops: CropView | None,
    name: str,
    working: tuple[Path, Path] | None,
    working_max_side: int,
    exif_orientation: str = "auto",
) -> list[PreparedSample]:
    """The cache rows of one scan in the chosen view (see module docstring)."""
    if crops is None:
        return [
            prepare_pair(
                scan_position,
                image,
                mask,
                size=size,
                name=name,
                working=working,
                working_max_side=working_max_side,
                exif_orientation=exif_orientation,
            )
        ]
    return prepare_crops(
        scan_position * crops.per_image,
        image,
        mask,
        scan_id=scan_id,
        view=crops,
        size=size,
        name=name,
        working=working,
        working_max_side=working_max_side,
        exif_orientation=exif_orientation,
    )


def working_paths(work_dir: Path, sample_id: str) -> tuple[Path, Path]:
    return work_dir / "images" / sample_id, work_dir / "masks" / sample_id
