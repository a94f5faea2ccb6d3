"""Decoding scans of any size with bounded memory.

ARTeFACT's largest scans are ~244 MP: decoded whole that is ~1 GB for the RGB image alone (PIL
keeps 4 bytes a pixel) plus the mask, per worker. libvips streams instead: a PNG or TIFF is read
strip by strip through the resize, and a JPEG is shrunk while it is decoded, so the peak memory
of preparing one sample hardly depends on its size (see tests/test_parquet.py for the measured
bound). What libvips cannot stream exactly (palette or 16-bit masks, RGB annotations, formats it
does not read) goes through PIL whole, with the same checks.

A *source* is a path or the encoded bytes of a file (a parquet cell).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvips
from PIL import Image

from heritage_damage_seg.classes import IGNORE_INDEX, IGNORE_RGB, NUM_CLASSES, PALETTE_RGB

Source = str | os.PathLike[str] | bytes
VALID_MASK_VALUES = frozenset(range(NUM_CLASSES)) | {IGNORE_INDEX}
# ARTeFACT's largest scans are ~244 MP; PIL refuses anything above 179 MP by default.
Image.MAX_IMAGE_PIXELS = 250_000_000
# libvips fills what a truncated file lacks with black unless told to fail: a silently wrong sample.
FAIL_ON = "truncated"
# PIL image formats → the file suffix a verbatim working copy gets.
SUFFIX_OF_FORMAT = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}


class DatasetError(ValueError):
    """A problem with the user's data: the message names the file and what to do about it."""


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    mode: str  # PIL's mode: L, P, RGB, I;16, …
    format: str  # PIL's format name: PNG, JPEG, …


def header(source: Source, name: str) -> Header:
    """Size, mode and format from the file header, without decoding the pixels."""
    try:
        with Image.open(_file_like(source)) as im:
            return Header(im.width, im.height, im.mode, im.format or "")
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise DatasetError(f"{name}: cannot read ({err}): the file is corrupt, truncated or not an image") from err


def _file_like(source: Source) -> str | os.PathLike[str] | io.BytesIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _open_vips(source: Source, name: str) -> pyvips.Image:
    """A lazily decoded image, read once from top to bottom."""
    try:
        if isinstance(source, bytes):
            return pyvips.Image.new_from_buffer(source, "", access="sequential", fail_on=FAIL_ON)
        return pyvips.Image.new_from_file(os.fspath(source), access="sequential", fail_on=FAIL_ON)
    except pyvips.Error as err:
        raise DatasetError(f"{name}: cannot read ({err.message.strip()}): the file is corrupt or truncated") from err


def _to_array(image: pyvips.Image, name: str) -> np.ndarray:
    try:
        data = image.write_to_memory()
    except pyvips.Error as err:
        raise DatasetError(f"{name}: cannot decode ({err.message.strip()}): the file is corrupt or truncated") from err
    return np.ndarray(buffer=data, dtype=np.uint8, shape=(image.height, image.width, image.bands))


def _rgb8(image: pyvips.Image) -> pyvips.Image:
    """Any band layout and depth → 3-band uint8 sRGB (alpha dropped, as PIL's convert("RGB") does)."""
    if image.hasalpha():
        image = image.extract_band(0, n=image.bands - 1)
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    return image


def _streams(head: Header) -> bool:
    """Whether libvips decodes this image to the same pixels PIL would (else: PIL, whole)."""
    return head.format in ("PNG", "JPEG", "TIFF", "WEBP") and head.mode in ("L", "RGB", "RGBA", "LA")


def _vips_thumbnail(source: Source, width: int, height: int) -> pyvips.Image:
    """Lazily resized to exactly ``width``×``height`` (JPEGs shrink while decoding)."""
    if isinstance(source, bytes):
        return _rgb8(pyvips.Image.thumbnail_buffer(source, width, height=height, size="force",
                                                   option_string=f"fail_on={FAIL_ON}"))
    return _rgb8(pyvips.Image.thumbnail(os.fspath(source), width, height=height, size="force", fail_on=FAIL_ON))


def scaled_image(source: Source, width: int, height: int, name: str) -> tuple[np.ndarray, Header]:
    """The image resized to ``width``×``height`` (aspect not kept) as uint8 RGB, and its header."""
    head = header(source, name)
    if _streams(head):
        try:
            small = _vips_thumbnail(source, width, height)
        except pyvips.Error as err:
            raise DatasetError(f"{name}: cannot decode ({err.message.strip()}): the file is corrupt or truncated") from err
        return _to_array(small, name), head
    try:
        with Image.open(_file_like(source)) as im:
            im.draft("RGB", (width, height))
            rgb = im.convert("RGB").resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    except (OSError, SyntaxError) as err:
        raise DatasetError(f"{name}: cannot read image ({err}): the file is corrupt or truncated") from err
    return np.asarray(rgb, dtype=np.uint8), head


def check_mask_values(values: np.ndarray, name: str) -> None:
    """``values``: the distinct values found in a mask."""
    bad = sorted(int(v) for v in values if int(v) not in VALID_MASK_VALUES)
    if bad:
        raise DatasetError(
            f"{name}: mask values {bad[:10]} are not ARTeFACT class ids (0–15, 255 = background): "
            "remap them in the annotation"
        )


def _rgb_mask_to_index(rgb: np.ndarray, name: str) -> np.ndarray:
    lut = {colour: i for i, colour in enumerate(PALETTE_RGB)} | {IGNORE_RGB: IGNORE_INDEX}
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    index = np.full(packed.shape, -1, dtype=np.int32)
    for (r, g, b), class_id in lut.items():
        index[packed == ((r << 16) | (g << 8) | b)] = class_id
    if (index < 0).any():
        unknown = np.unique(packed[index < 0])[:5]
        colours = ", ".join(f"#{int(c):06X}" for c in unknown)
        raise DatasetError(
            f"{name}: RGB mask has colours outside the ARTeFACT palette ({colours}): export the "
            "annotation as a single-channel index PNG, or fix those pixels"
        )
    return index.astype(np.uint8)


def full_mask(source: Source, name: str) -> np.ndarray:
    """The whole mask as HxW uint8 (values 0–15 or 255), decoded by PIL; RGB through the palette."""
    try:
        with Image.open(_file_like(source)) as im:
            if im.mode in ("RGB", "RGBA"):
                return _rgb_mask_to_index(np.asarray(im.convert("RGB")), name)
            if im.mode not in ("L", "P", "I", "I;16"):
                raise DatasetError(f"{name}: mask mode {im.mode} is not an index mask (expected L or P)")
            mask = np.asarray(im)
    except DatasetError:
        raise
    except (OSError, SyntaxError) as err:
        raise DatasetError(f"{name}: cannot read mask ({err}): the file is corrupt or truncated") from err
    check_mask_values(np.unique(mask), name)
    return mask.astype(np.uint8)


def _mask_streams(head: Header) -> bool:
    # Palette PNGs: libvips would expand the palette to colours, losing the class ids.
    return head.format in ("PNG", "TIFF") and head.mode == "L"


def _vips_checked_mask(source: Source, head: Header, width: int, height: int, name: str) -> pyvips.Image:
    """Every pixel checked (a streaming histogram), then lazily resized by nearest neighbour."""
    try:
        histogram = np.frombuffer(_open_vips(source, name).hist_find().write_to_memory(), dtype=np.uint32)
    except pyvips.Error as err:
        raise DatasetError(f"{name}: cannot decode ({err.message.strip()}): the file is corrupt or truncated") from err
    check_mask_values(np.flatnonzero(histogram), name)
    return _open_vips(source, name).resize(width / head.width, vscale=height / head.height, kernel="nearest")


def scaled_mask(source: Source, width: int, height: int, name: str) -> tuple[np.ndarray, Header]:
    """The mask checked over every pixel and resized to ``width``×``height`` by nearest neighbour."""
    head = header(source, name)
    if _mask_streams(head):
        return _to_array(_vips_checked_mask(source, head, width, height, name), name)[..., 0], head
    mask = full_mask(source, name)
    resized = Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(resized, dtype=np.uint8), head


def working_size(head: Header, max_side: int) -> tuple[int, int]:
    """(width, height) of the working copy: the original, or its longest side cut to ``max_side``."""
    scale = min(1.0, max_side / max(head.width, head.height))
    return max(1, round(head.width * scale)), max(1, round(head.height * scale))


def write_working_copy(
    image: Source, mask: Source, image_out: Path, mask_out: Path, max_side: int, name: str
) -> tuple[Path, Path]:
    """A copy of a sample for native-resolution work (sliding-window evaluation): the files as they
    are when the longest side is within ``max_side``, else both downscaled to it (mask: nearest).

    ``image_out``/``mask_out`` are paths without suffix; the suffix follows the written format.
    """
    image_head, mask_head = header(image, name), header(mask, name)
    width, height = working_size(image_head, max_side)
    if (width, height) == (image_head.width, image_head.height):
        image_path = image_out.with_suffix(SUFFIX_OF_FORMAT.get(image_head.format, ".png"))
        mask_path = mask_out.with_suffix(SUFFIX_OF_FORMAT.get(mask_head.format, ".png"))
        _write_verbatim(image, image_path)
        _write_verbatim(mask, mask_path)
        return image_path, mask_path
    image_path, mask_path = image_out.with_suffix(".png"), mask_out.with_suffix(".png")
    # Straight from decoder to encoder where libvips streams: the scan is never whole in memory.
    if _streams(image_head):
        _save_png(_vips_thumbnail(image, width, height), image_path, name)
    else:
        picture, _ = scaled_image(image, width, height, name)
        _save_png(pyvips.Image.new_from_array(picture, interpretation="srgb"), image_path, name)
    if _mask_streams(mask_head):
        _save_png(_vips_checked_mask(mask, mask_head, width, height, name), mask_path, name)
    else:
        labels, _ = scaled_mask(mask, width, height, name)
        _save_png(pyvips.Image.new_from_array(labels, interpretation="b-w"), mask_path, name)
    return image_path, mask_path


def _save_png(image: pyvips.Image, path: Path, name: str) -> None:
    try:
        image.pngsave(str(path), compression=1)
    except pyvips.Error as err:
        raise DatasetError(f"{name}: cannot decode ({err.message.strip()}): the file is corrupt or truncated") from err


def _write_verbatim(source: Source, destination: Path) -> None:
    if isinstance(source, bytes):
        destination.write_bytes(source)
    else:
        with open(source, "rb") as src, open(destination, "wb") as dst:
            while chunk := src.read(1 << 22):
                dst.write(chunk)
