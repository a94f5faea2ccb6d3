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


@dataclass(frozen=True)
class Preparation:
    """How every scan of a dataset is prepared: the cache's ``size`` (S), the view (``crops``:
    :class:`CropView`; None: each scan resized whole), the longest side of a working copy
    (``prepare.working_max_side``) and ``prepare.exif_orientation``, the rule that lines an
    EXIF-oriented image up with its mask (:func:`decode.resolve_orientation`)."""

    size: int
    working_max_side: int
    crops: CropView | None = None
    exif_orientation: str = "auto"

    def __post_init__(self) -> None:
        if self.exif_orientation not in decode.EXIF_SETTINGS:
            raise ValueError(
                f"prepare.exif_orientation must be one of {decode.EXIF_SETTINGS}, "
                f"got {self.exif_orientation!r}"
            )

    @property
    def rows_per_scan(self) -> int:
        return 1 if self.crops is None else self.crops.per_image

    def describe(self) -> str:
        if self.crops is None:
            return f"whole scans resized to {self.size} px"
        view = self.crops
        return (
            f"{view.per_image} crops of {self.size} px per scan at {view.scale:g} of native "
            f"resolution, seed {view.seed}"
        )


def prepare_scan(
    scan_position: int,
    scan_id: str,
    image: decode.Source,
    mask: decode.Source,
    *,
    name: str,
    working: tuple[Path, Path] | None,
    how: Preparation,
) -> list[PreparedSample]:
    """The cache rows of one scan (rows ``scan_position × rows_per_scan`` on), checked.

    ``working``: where to write a working copy (paths without suffix), always for parquet rows; for
    files, None unless the file cannot serve as it is (:func:`decode.needs_working_copy`).
    Whole-scan view: the scan resized to S×S (image area-averaged, mask nearest). Crops view: the
    scan decoded once at ``crops.scale`` of its native size (libvips: the native scan is never
    whole in memory; the mask by nearest neighbour, every pixel checked) and its crops cut at
    :func:`crop_offsets`, sides shorter than S padded (:func:`cut_crop`).
    """
    orientation = _orientation(image, mask, how.exif_orientation, name)
    head = decode.header(image, f"{name} image", orientation=orientation)
    if how.crops is None:
        width = height = how.size
    else:
        width, height = scaled_size(head.width, head.height, how.crops.scale)
    scaled_mask, mask_head = decode.scaled_mask(mask, width, height, f"{name} mask")
    _checked_same_size(head, mask_head, name)
    scaled_image, _ = decode.scaled_image(
        image, width, height, f"{name} image", orientation=orientation
    )
    image_path, mask_path = _working_copy(
        image, mask, working, how.working_max_side, name, orientation
    )
    first = scan_position * how.rows_per_scan
    if how.crops is None:
        return [
            PreparedSample(
                first, scaled_image, scaled_mask, head.height, head.width, image_path, mask_path
            )
        ]
    size, view = how.size, how.crops
    return [
        PreparedSample(
            first + k,
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


def working_paths(work_dir: Path, sample_id: str) -> tuple[Path, Path]:
    return work_dir / "images" / sample_id, work_dir / "masks" / sample_id
