"""Decoding scans of any size with bounded memory.

ARTeFACT's largest scans are ~244 MP: decoded whole that is ~1 GB for the RGB image alone (PIL
keeps 4 bytes a pixel) plus the mask, per worker. libvips streams instead: a PNG or TIFF is read
strip by strip through the resize, and a JPEG is shrunk while it is decoded, so the peak memory
of preparing one sample hardly depends on its size (see tests/test_parquet.py for the measured
bound). What libvips cannot stream exactly (palette or 16-bit masks, RGB annotations, formats it
does not read) goes through PIL whole, with the same checks.

A *source* is a path or the encoded bytes of a file (a parquet cell).

Pixels (README "Image formats and EXIF orientation"). Every image reaches the cache, the working
copies, native evaluation and ``predict`` as 8-bit sRGB through one conversion,
:func:`_vips_rgb8` (libvips: PNG, JPEG, TIFF, WebP) or :func:`_pil_rgb8` (what libvips does not
read: BMP, GIF):

* 16-bit grey or RGB (PNG, TIFF): the high byte (``v >> 8``, exact for 8-bit data stored as
  ``v × 257``), never clipped at 255, so a film scan in the upper half of the range stays grey.
* palette: expanded through the palette; bilevel: 0/255.
* alpha (LA, RGBA, PA, CMYK + alpha): dropped, not composited (what ``convert("RGB")`` always did).
* CMYK (JPEG, TIFF): converted by libvips/lcms through the file's embedded ICC profile, or
  libvips' built-in CMYK profile when it has none (relative intent). PIL's ``convert("RGB")`` is
  the naive 255 − C − K formula, which ignores the press profile a print workflow's file carries.
* EXIF / TIFF orientation: applied or not as the reader's ``orientation`` says (see
  :func:`resolve_orientation` for the rule between an image and its mask), by :func:`orient`,
  the same function in every reader; masks are never rotated (they index the stored pixels).
* multi-page files (TIFF, animated GIF/WebP/PNG): the first page, with a warning naming the file;
  refused when a later page is larger (the first is then a preview, not the scan).
* other sample formats (float, signed, 32-bit, Lab, …): refused with a message naming the file.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvips
from PIL import Image

from heritage_damage_seg.classes import IGNORE_INDEX, IGNORE_RGB, NUM_CLASSES, PALETTE_RGB
from heritage_damage_seg.data.sources import DatasetError

log = logging.getLogger(__name__)

Source = str | os.PathLike[str] | bytes
VALID_MASK_VALUES = frozenset(range(NUM_CLASSES)) | {IGNORE_INDEX}
# ARTeFACT's largest scans are ~244 MP; PIL refuses anything above 179 MP by default.
Image.MAX_IMAGE_PIXELS = 250_000_000
# libvips fills what a truncated file lacks with black unless told to fail: a silently wrong sample.
FAIL_ON = "truncated"
# PIL image formats → the file suffix a verbatim working copy gets.
SUFFIX_OF_FORMAT = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}
# Formats libvips decodes here (streaming where the format allows); the rest go through PIL.
VIPS_FORMATS = frozenset({"PNG", "JPEG", "TIFF", "WEBP"})
# What a reader does with the file's EXIF/TIFF orientation tag: apply it (the image as viewers
# show it) or ignore it (the stored pixels). prepare.exif_orientation adds ``auto`` (decided per
# scan from its mask, :func:`resolve_orientation`).
ORIENTATIONS = ("apply", "ignore")
EXIF_SETTINGS = ("auto", *ORIENTATIONS)
TRANSPOSING = frozenset({5, 6, 7, 8})  # orientations whose displayed image swaps width and height
# A multi-page file's later pages are compared with its first up to this many.
MAX_PAGES_CHECKED = 64


@dataclass(frozen=True)
class Header:
    width: (
        int  # in the orientation read: displayed when the orientation tag is applied, else stored
    )
    height: int
    mode: str  # PIL's mode: L, P, RGB, I;16, … (libvips' interpretation where PIL cannot open it)
    format: str  # PIL's format name: PNG, JPEG, … (libvips' loader where PIL cannot open it)
    orientation: int = 1  # the file's EXIF/TIFF orientation tag (1: none or upright)
    applied: bool = False  # whether ``width``/``height`` (and the pixels read) follow the tag
    pages: int = 1

    @property
    def transform(self) -> int:
        """The orientation the pixels are read with: the tag when applied, else 1 (as stored)."""
        return self.orientation if self.applied else 1

    @property
    def stored_size(self) -> tuple[int, int]:
        """(width, height) of the pixels as stored in the file."""
        return (
            (self.height, self.width)
            if self.transform in TRANSPOSING
            else (self.width, self.height)
        )

    @property
    def displayed_size(self) -> tuple[int, int]:
        """(width, height) as a viewer shows the image (the orientation tag applied)."""
        width, height = self.stored_size
        return (height, width) if self.orientation in TRANSPOSING else (width, height)


def _checked_orientation(orientation: str) -> str:
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    return orientation


def header(source: Source, name: str, *, orientation: str = "apply") -> Header:
    """Size, mode, format, orientation tag and page count from the file header, without decoding
    the pixels. The size is the one the image is read at with the same ``orientation``: ``apply``
    (the default, what viewers and ``predict`` show) or ``ignore`` (the stored pixels)."""
    apply = _checked_orientation(orientation) == "apply"
    try:
        with Image.open(_file_like(source)) as im:
            width, height, mode, fmt = im.width, im.height, im.mode, im.format or ""
            fmt = "JPEG" if fmt == "MPO" else fmt  # a camera's JPEG with its preview appended
            tag = _pil_orientation(im)
            pages, larger = _pil_pages(im)
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        head = _vips_header(source)  # e.g. a TIFF layout PIL cannot read
        if head is None:
            raise DatasetError(
                f"{name}: cannot read ({err}): the file is corrupt, truncated or not an image"
            ) from err
        width, height, mode, fmt, tag, pages, larger = head
    else:
        if (
            fmt in VIPS_FORMATS
            and (vips_head := _vips_header(source, check_pages=False)) is not None
        ):
            # What libvips, which decodes these, reads: the stored size (PIL reports a TIFF with
            # orientation 5–8 transposed) and the tag (a PNG's eXIf may follow its pixels, unseen by
            # PIL).
            width, height, tag = vips_head[0], vips_head[1], vips_head[4]
    if larger is not None:
        raise DatasetError(
            f"{name}: page {larger[0] + 1} of this {pages}-page file is larger ({larger[1]}×{larger[2]}) than the "
            f"first ({width}×{height}), which is then a preview, not the scan: save the scan as a single-page file"
        )
    if pages > 1:
        key = (
            name if isinstance(source, bytes) else os.fspath(source)
        )  # once a file, whatever the caller calls it
        _warn_once(
            key, f"{name}: a {pages}-page file: only its first page ({width}×{height}) is read"
        )
    if apply and tag in TRANSPOSING:
        width, height = height, width
    return Header(width, height, mode, fmt, tag, apply and tag != 1, pages)


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(key: str, message: str) -> None:
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(message)


def _valid_tag(value: object) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _pil_orientation(im: Image.Image) -> int:
    try:
        return _valid_tag(im.getexif().get(0x0112, 1))
    except Exception:  # a malformed EXIF block: read as upright, as libvips does
        return 1


def _pil_pages(im: Image.Image) -> tuple[int, tuple[int, int, int] | None]:
    """The page count, and the first later page larger than the first (index, width, height)."""
    pages = int(getattr(im, "n_frames", 1) or 1)
    first = im.width * im.height
    for page in range(1, min(pages, MAX_PAGES_CHECKED)):
        im.seek(page)
        if im.width * im.height > first:
            return pages, (page, im.width, im.height)
    return pages, None


def _vips_header(
    source: Source, *, check_pages: bool = True
) -> tuple[int, int, str, str, int, int, tuple[int, int, int] | None] | None:
    """What libvips reads from the header, or None where it cannot open the file."""
    try:
        image = _new_vips(source)
        loader = image.get("vips-loader") if image.get_typeof("vips-loader") else ""
        tag = _valid_tag(image.get("orientation")) if image.get_typeof("orientation") else 1
        pages = image.get("n-pages") if image.get_typeof("n-pages") else 1
        larger = None
        for page in range(1, min(pages, MAX_PAGES_CHECKED) if check_pages else 1):
            other = _new_vips(source, page=page)
            if other.width * other.height > image.width * image.height:
                larger = (page, other.width, other.height)
                break
    except pyvips.Error:
        return None
    # A format only libvips reads (PIL failed) keeps the loader's name: still decoded by libvips.
    fmt = next(
        (f for f in VIPS_FORMATS if loader.lower().startswith(f.lower()[:3])), f"vips:{loader}"
    )
    return image.width, image.height, str(image.interpretation), fmt, tag, pages, larger


def _new_vips(source: Source, **options: object) -> pyvips.Image:
    if isinstance(source, bytes):
        return pyvips.Image.new_from_buffer(
            source, "", access="sequential", fail_on=FAIL_ON, **options
        )
    return pyvips.Image.new_from_file(
        os.fspath(source), access="sequential", fail_on=FAIL_ON, **options
    )


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """``array`` (H×W[×C], stored pixels) as displayed under EXIF ``orientation`` 1–8, as PIL's
    ``ImageOps.exif_transpose`` does (tests/test_formats.py checks every value against it)."""
    if orientation == 2:
        array = array[:, ::-1]
    elif orientation == 3:
        array = array[::-1, ::-1]
    elif orientation == 4:
        array = array[::-1]
    elif orientation == 5:
        array = array.swapaxes(0, 1)
    elif orientation == 6:
        array = np.rot90(array, k=-1)
    elif orientation == 7:
        array = array[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        array = np.rot90(array, k=1)
    return np.ascontiguousarray(array)


def resolve_orientation(image: Header, mask: Header, setting: str, name: str) -> str:
    """Whether to read an image with its orientation tag applied (``apply``) or ignored
    (``ignore``) so that it lines up with its mask (masks are never rotated).

    ``image``: its header (either orientation); ``setting``: prepare.exif_orientation.

    * no tag (or 1): nothing to decide (``ignore``, the same pixels either way).
    * ``apply`` / ``ignore``: as set, for every scan (the size check then names a scan whose
      mask does not fit).
    * ``auto``: a mask the size of the stored pixels → ``ignore`` (it was drawn on them); one the
      size of the displayed image → ``apply``. When both fit (orientations 2–4, which keep the size,
      or a square scan) the mask cannot tell, and guessing would silently misalign a sample:
      an error asks to set ``apply`` or ``ignore``. When neither fits: the size error.
    """
    if setting not in EXIF_SETTINGS:
        raise ValueError(
            f"prepare.exif_orientation must be one of {EXIF_SETTINGS}, got {setting!r}"
        )
    if image.orientation == 1:
        return "ignore"
    if setting != "auto":
        return setting
    mask_size = (mask.width, mask.height)
    stored, displayed = image.stored_size, image.displayed_size
    if mask_size == stored and mask_size != displayed:
        return "ignore"
    if mask_size == displayed and mask_size != stored:
        return "apply"
    if mask_size == stored == displayed:
        raise DatasetError(
            f"{name}: the image carries EXIF orientation {image.orientation} "
            f"({describe_orientation(image.orientation)}) "
            f"and its {mask.width}×{mask.height} mask fits both the stored and the displayed image: set "
            "prepare.exif_orientation to apply (masks drawn on the image as viewers show it) or ignore (drawn on the "
            "stored pixels)"
        )
    raise DatasetError(
        f"{name}: the image is {stored[0]}×{stored[1]} as stored ({displayed[0]}×{displayed[1]} as displayed, EXIF "
        f"orientation {image.orientation}) but its mask is {mask.width}×{mask.height}: image and mask must have the "
        "same size"
    )


def describe_orientation(tag: int) -> str:
    return {
        1: "upright",
        2: "mirrored",
        3: "rotated 180°",
        4: "flipped vertically",
        5: "transposed",
        6: "rotated 90° clockwise",
        7: "transversed",
        8: "rotated 90° counter-clockwise",
    }.get(tag, "upright")


def _file_like(source: Source) -> str | os.PathLike[str] | io.BytesIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _open_vips(source: Source, name: str) -> pyvips.Image:
    """A lazily decoded image, read once from top to bottom."""
    try:
        return _new_vips(source)
    except pyvips.Error as err:
        raise DatasetError(
            f"{name}: cannot read ({err.message.strip()}): the file is corrupt or truncated"
        ) from err


def _to_array(image: pyvips.Image, name: str) -> np.ndarray:
    try:
        data = image.write_to_memory()
    except pyvips.Error as err:
        raise DatasetError(
            f"{name}: cannot decode ({err.message.strip()}): the file is corrupt or truncated"
        ) from err
    return np.ndarray(buffer=data, dtype=np.uint8, shape=(image.height, image.width, image.bands))


def _vips_rgb8(image: pyvips.Image, name: str) -> pyvips.Image:
    """Any libvips image → 3-band uint8 sRGB (module docstring: 16-bit → high byte, alpha dropped,
    CMYK through its ICC profile), or a DatasetError for a sample format with no such meaning."""
    interpretation = str(image.interpretation)
    if interpretation == "cmyk":
        if image.bands == 5:  # CMYK + alpha
            image = image.extract_band(0, n=4)
        # The embedded profile where there is one, libvips' built-in CMYK profile otherwise.
        image = image.icc_transform("srgb", input_profile="cmyk", embedded=True, intent="relative")
        interpretation = "srgb"
    if image.format not in ("uchar", "ushort"):
        raise DatasetError(
            f"{name}: {image.format} samples ({interpretation}) are not supported: save the image as 8- or 16-bit "
            "RGB or greyscale (PNG, TIFF or JPEG)"
        )
    if interpretation not in ("srgb", "rgb", "rgb16", "b-w", "grey16", "multiband"):
        raise DatasetError(
            f"{name}: the {interpretation} colour space is not supported: save the image as RGB or greyscale "
            "(PNG, TIFF or JPEG)"
        )
    if image.hasalpha() or image.bands in (2, 4):
        image = image.extract_band(0, n=image.bands - 1)
    if image.bands not in (1, 3):
        raise DatasetError(f"{name}: {image.bands} channels: save the image as RGB or greyscale")
    if image.format == "ushort":
        image = (image >> 8).cast("uchar")  # the high byte: 65535 → 255, v × 257 → v exactly
    if image.bands == 1:
        image = image.bandjoin([image, image])
    return image.copy(interpretation="srgb")


def _pil_rgb8(im: Image.Image) -> Image.Image:
    """What libvips does not read, as 8-bit RGB: 16/32-bit grey by its high byte, the rest as
    ``convert("RGB")`` (palette expanded, alpha dropped)."""
    if im.mode.startswith("I;16") or im.mode == "I":
        wide = np.asarray(im).astype(np.uint32) >> 8
        return Image.fromarray(np.minimum(wide, 255).astype(np.uint8), mode="L").convert("RGB")
    return im.convert("RGB")


def decodes_streaming(head: Header) -> bool:
    """Whether libvips decodes this image (a streaming resize); else PIL, whole."""
    return head.format in VIPS_FORMATS or head.format.startswith("vips:")


def _vips_error(name: str, err: pyvips.Error) -> DatasetError:
    return DatasetError(
        f"{name}: cannot decode ({err.message.strip()}): the file is corrupt or truncated"
    )


def vips_scaled(source: Source, head: Header, width: int, height: int, name: str) -> pyvips.Image:
    """Lazily converted to 8-bit sRGB (:func:`_vips_rgb8`), *then* resized to ``width``×``height``
    of the stored pixels, so every mode is resized as the 8-bit RGB it decodes to (libvips'
    ``thumbnail`` would resize alpha premultiplied, 16-bit before the scaling, CMYK before the
    profile). Streaming: a PNG or TIFF is read strip by strip through the resize, a JPEG is shrunk
    by a power of two while it is decoded. Never rotated here: :func:`orient` does that, in every
    reader alike."""
    try:
        options = {}
        if head.format == "JPEG":
            # libvips thumbnail's rule (the cache's pixels before every mode went through here):
            # block-shrink while decoding, leaving at least a factor of two to the lanczos resize.
            stored_width, stored_height = head.stored_size
            factor = min(stored_width / width, stored_height / height)
            shrink = 8 if factor >= 16 else 4 if factor >= 8 else 2 if factor >= 4 else 1
            if shrink > 1:
                options["shrink"] = shrink
        image = _vips_rgb8(_new_vips(source, **options), name)
        if (image.width, image.height) == (width, height):
            return image
        return image.resize(width / image.width, vscale=height / image.height)
    except pyvips.Error as err:
        raise _vips_error(name, err) from err


def _stored(head: Header, width: int, height: int) -> tuple[int, int]:
    """A size in the orientation read → the same size in the stored pixels."""
    return (height, width) if head.transform in TRANSPOSING else (width, height)


def scaled_image(
    source: Source, width: int, height: int, name: str, *, orientation: str = "apply"
) -> tuple[np.ndarray, Header]:
    """The image resized to ``width``×``height`` (aspect not kept) as uint8 RGB, and its header;
    both in ``orientation`` (see :func:`header`)."""
    head = header(source, name, orientation=orientation)
    stored_width, stored_height = _stored(head, width, height)
    if decodes_streaming(head):
        small = _to_array(vips_scaled(source, head, stored_width, stored_height, name), name)
        return orient(small, head.transform) if head.transform != 1 else small, head
    # What libvips does not read: decoded whole by PIL, resized by libvips as the rest.
    pixels = vips_resized(_pil_pixels(source, name), stored_width, stored_height)
    return orient(pixels, head.transform), head


def _pil_pixels(source: Source, name: str) -> np.ndarray:
    try:
        with Image.open(_file_like(source)) as im:
            return np.asarray(_pil_rgb8(im), dtype=np.uint8)
    except (OSError, SyntaxError) as err:
        raise DatasetError(
            f"{name}: cannot read image ({err}): the file is corrupt or truncated"
        ) from err


def vips_resized(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """H×W×3 uint8 resized to ``width``×``height`` as libvips resizes every scan (lanczos3)."""
    if pixels.shape[:2] == (height, width):
        return pixels
    image = pyvips.Image.new_from_array(np.ascontiguousarray(pixels), interpretation="srgb")
    small = image.resize(width / image.width, vscale=height / image.height)
    return np.ndarray(
        buffer=small.write_to_memory(), dtype=np.uint8, shape=(small.height, small.width, 3)
    )


def rgb_image(
    source: Source, name: str, *, orientation: str = "apply"
) -> tuple[np.ndarray, Header]:
    """The whole image at full resolution as H×W×3 uint8 sRGB in ``orientation``, and its header:
    the one full-resolution reader (``predict``, native evaluation). libvips decodes straight into
    the returned array (3 B a pixel; PIL's RGB holds 4)."""
    head = header(source, name, orientation=orientation)
    if decodes_streaming(head):
        try:
            pixels = _to_array(_vips_rgb8(_new_vips(source), name), name)
        except pyvips.Error as err:
            raise _vips_error(name, err) from err
    else:
        pixels = _pil_pixels(source, name)
    return orient(pixels, head.transform) if head.transform != 1 else pixels, head


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
    packed = (
        (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    )
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
            if im.format == "TIFF" and _pil_orientation(im) != 1:
                # PIL applies part of a TIFF's orientation itself; masks are read as stored.
                raise DatasetError(
                    f"{name}: the mask carries a TIFF orientation tag ({_pil_orientation(im)}): masks are read as "
                    "stored, save it without the tag (e.g. as a PNG)"
                )
            if im.mode in ("RGB", "RGBA"):
                return _rgb_mask_to_index(np.asarray(im.convert("RGB")), name)
            if im.mode not in ("L", "P", "I", "I;16"):
                raise DatasetError(
                    f"{name}: mask mode {im.mode} is not an index mask (expected L or P)"
                )
            mask = np.asarray(im)
    except DatasetError:
        raise
    except (OSError, SyntaxError) as err:
        raise DatasetError(
            f"{name}: cannot read mask ({err}): the file is corrupt or truncated"
        ) from err
    check_mask_values(np.unique(mask), name)
    return mask.astype(np.uint8)


def _mask_streams(head: Header) -> bool:
    # Palette PNGs: libvips would expand the palette to colours, losing the class ids.
    return head.format in ("PNG", "TIFF") and head.mode == "L"


def _vips_checked_mask(
    source: Source, head: Header, width: int, height: int, name: str
) -> pyvips.Image:
    """Every pixel checked (a streaming histogram), then lazily resized by nearest neighbour."""
    try:
        histogram = np.frombuffer(
            _open_vips(source, name).hist_find().write_to_memory(), dtype=np.uint32
        )
    except pyvips.Error as err:
        raise DatasetError(
            f"{name}: cannot decode ({err.message.strip()}): the file is corrupt or truncated"
        ) from err
    check_mask_values(np.flatnonzero(histogram), name)
    return _open_vips(source, name).resize(
        width / head.width, vscale=height / head.height, kernel="nearest"
    )


def scaled_mask(source: Source, width: int, height: int, name: str) -> tuple[np.ndarray, Header]:
    """The mask checked over every pixel and resized to ``width``×``height`` by nearest neighbour.
    Masks are read as stored: an orientation tag on a mask is ignored (see
    :func:`resolve_orientation`)."""
    head = header(source, name, orientation="ignore")
    if _mask_streams(head):
        return _to_array(_vips_checked_mask(source, head, width, height, name), name)[..., 0], head
    mask = full_mask(source, name)
    resized = Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(resized, dtype=np.uint8), head


def working_size(head: Header, max_side: int) -> tuple[int, int]:
    """(width, height) of the working copy: the original, or its longest side cut to ``max_side``."""
    scale = min(1.0, max_side / max(head.width, head.height))
    return max(1, round(head.width * scale)), max(1, round(head.height * scale))


def needs_working_copy(head: Header, max_side: int) -> bool:
    """Whether a scan's file cannot serve as its own working copy: larger than ``max_side``, or one
    whose reading needs a decision a later reader does not know (an orientation tag, several
    pages)."""
    return max(head.width, head.height) > max_side or head.orientation != 1 or head.pages > 1


def write_working_copy(
    image: Source,
    mask: Source,
    image_out: Path,
    mask_out: Path,
    max_side: int,
    name: str,
    *,
    orientation: str = "apply",
) -> tuple[Path, Path]:
    """A copy of a sample for native-resolution work (``evaluation.mode: native``): the files as they
    are when the longest side is within ``max_side``, else both downscaled to it (mask: nearest).

    ``orientation``: how the image lines up with its mask (:func:`resolve_orientation`). An image
    with an orientation tag or several pages is never copied as it is: it is written as a PNG of its
    first page, already in ``orientation`` and without the tag, so every later reader gets the same
    pixels with no state to carry. ``image_out``/``mask_out`` are paths without suffix; the suffix
    follows the written format.
    """
    image_head = header(image, name, orientation=orientation)
    mask_head = header(mask, name, orientation="ignore")
    width, height = working_size(image_head, max_side)
    same_size = (width, height) == (image_head.width, image_head.height)
    if (
        same_size
        and image_head.orientation == 1
        and image_head.pages == 1
        and image_head.format in SUFFIX_OF_FORMAT
    ):
        image_path = image_out.with_suffix(SUFFIX_OF_FORMAT[image_head.format])
        _write_verbatim(image, image_path)
    else:
        image_path = image_out.with_suffix(".png")
        if decodes_streaming(image_head) and image_head.transform == 1:
            # Straight from decoder to encoder: the scan is never whole in memory.
            _save_png(vips_scaled(image, image_head, width, height, name), image_path, name)
        else:  # rotated or flipped (camera-sized photos), or decoded by PIL
            picture, _ = scaled_image(image, width, height, name, orientation=orientation)
            _save_png(pyvips.Image.new_from_array(picture, interpretation="srgb"), image_path, name)
    if same_size and mask_head.pages == 1 and mask_head.format in SUFFIX_OF_FORMAT:
        mask_path = mask_out.with_suffix(SUFFIX_OF_FORMAT[mask_head.format])
        _write_verbatim(mask, mask_path)
    elif _mask_streams(mask_head):
        mask_path = mask_out.with_suffix(".png")
        _save_png(_vips_checked_mask(mask, mask_head, width, height, name), mask_path, name)
    else:
        mask_path = mask_out.with_suffix(".png")
        labels, _ = scaled_mask(mask, width, height, name)
        _save_png(pyvips.Image.new_from_array(labels, interpretation="b-w"), mask_path, name)
    return image_path, mask_path


def _save_png(image: pyvips.Image, path: Path, name: str) -> None:
    try:
        # keep="none": no EXIF (an orientation tag would be applied a second time), no profile.
        image.pngsave(str(path), compression=1, keep="none")
    except pyvips.Error as err:
        raise DatasetError(
            f"{name}: cannot decode ({err.message.strip()}): the file is corrupt or truncated"
        ) from err


def _write_verbatim(source: Source, destination: Path) -> None:
    if isinstance(source, bytes):
        destination.write_bytes(source)
    else:
        with open(source, "rb") as src, open(destination, "wb") as dst:
            while chunk := src.read(1 << 22):
                dst.write(chunk)
