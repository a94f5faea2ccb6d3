"""Every image mode PIL or libvips writes reaches the cache, the working copies and the
full-resolution reader as the right 8-bit sRGB pixels, and an EXIF-oriented image never drifts
from its mask (docs/data-formats.md, "Image formats and EXIF orientation").

Real files, no mocks: one reference RGB image (gradients, edges, an off-centre block) is saved in
every format and mode with PIL and pyvips, next to *the same pixels* saved as a plain 8-bit RGB
PNG; both go through the same pipeline and must agree (exactly for lossless formats up to
rounding of a 16-bit resize, within a tolerance for JPEG and the CMYK round trip).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import pyvips
from PIL import Image, ImageOps

from heritage_damage_seg.classes import IGNORE_INDEX
from heritage_damage_seg.data import decode
from heritage_damage_seg.data.cache import load_cache
from heritage_damage_seg.data.folder import build_cache
from heritage_damage_seg.data.geometry import CropView, cut_crop
from heritage_damage_seg.data.sources import DatasetError


def decode_image(path) -> tuple[np.ndarray, tuple[int, int]]:
    """A file's full-resolution RGB pixels as every reader sees them, and its (width, height)."""
    pixels, head = decode.rgb_image(path, str(path))
    return pixels, (head.width, head.height)


W, H = 160, 96  # not square: an orientation of 5–8 swaps the sides
SIZE = 64  # cache resolution
DAMAGE = 5  # the class of the mask's block


def reference() -> np.ndarray:
    """H×W×3 uint8: gradients in three directions, hard edges, and a bright block off-centre (its
    position tells any rotation or flip apart). Values in 40–215, inside the CMYK gamut."""
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack(
        [40 + 175 * x / (W - 1), 40 + 175 * y / (H - 1), 40 + 175 * ((x + y) % 48) / 47], -1
    )
    rgb[:, W // 2 : W // 2 + 4] = 60  # a vertical edge
    rgb[(y // 12) % 2 == 0] *= 0.85  # stripes: horizontal edges
    rgb[10:34, 18:58] = (215, 200, 60)  # the block, top left
    return np.round(rgb).astype(np.uint8)


def block_mask(image: np.ndarray) -> np.ndarray:
    """A mask drawn from the image's content: the block is damage, the rest clean (0), a
    Background strip on the right."""
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[(image[..., 0] >= 210) & (image[..., 2] <= 70)] = DAMAGE
    mask[:, -6:] = IGNORE_INDEX
    return mask


def grey(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def as_rgb(g: np.ndarray) -> np.ndarray:
    return np.repeat(g[..., None], 3, axis=2)


def vips(array: np.ndarray, interpretation: str) -> pyvips.Image:
    return pyvips.Image.new_from_array(np.ascontiguousarray(array), interpretation=interpretation)


def alpha(dtype=np.uint8) -> np.ndarray:
    ramp = np.linspace(0, 1, W)[None, :].repeat(H, 0)
    return np.round(ramp * np.iinfo(dtype).max).astype(dtype)


# ---------------------------------------------------------------------------------------------
# Writers: each saves the format at ``path`` (stem without suffix) and returns the file written and
# the 8-bit RGB pixels it must decode to. Lossless unless named in LOSSY.


def png_rgb(path):  # the control
    Image.fromarray(reference()).save(p := path.with_suffix(".png"))
    return p, reference()


def png_grey(path):
    g = grey(reference())
    Image.fromarray(g, mode="L").save(p := path.with_suffix(".png"))
    return p, as_rgb(g)


def png_grey_alpha(path):
    g = grey(reference())
    Image.fromarray(np.dstack([g, alpha()]), mode="LA").save(p := path.with_suffix(".png"))
    return p, as_rgb(g)


def png_grey16(path):  # PIL writes I;16: the mode PIL then clipped to 255
    g = grey(reference())
    Image.fromarray(g.astype(np.uint16) * 257).save(p := path.with_suffix(".png"))
    assert Image.open(p).mode == "I;16"
    return p, as_rgb(g)


def tif_grey16(path):
    g = grey(reference())
    vips(g.astype(np.uint16) * 257, "grey16").tiffsave(str(p := path.with_suffix(".tif")))
    return p, as_rgb(g)


def png_grey16_alpha(path):
    g = grey(reference())
    vips(np.dstack([g.astype(np.uint16) * 257, alpha(np.uint16)]), "grey16").pngsave(
        str(p := path.with_suffix(".png"))
    )
    return p, as_rgb(g)


def png_rgb16(path):
    vips(reference().astype(np.uint16) * 257, "rgb16").pngsave(str(p := path.with_suffix(".png")))
    return p, reference()


def tif_rgb16(path):
    vips(reference().astype(np.uint16) * 257, "rgb16").tiffsave(str(p := path.with_suffix(".tif")))
    return p, reference()


def png_rgba16(path):
    pixels = np.dstack([reference().astype(np.uint16) * 257, alpha(np.uint16)])
    vips(pixels, "rgb16").pngsave(str(p := path.with_suffix(".png")))
    return p, reference()


def png_rgba(path):
    Image.fromarray(np.dstack([reference(), alpha()]), mode="RGBA").save(
        p := path.with_suffix(".png")
    )
    return p, reference()


def tif_rgba(path):
    Image.fromarray(np.dstack([reference(), alpha()]), mode="RGBA").save(
        p := path.with_suffix(".tif")
    )
    return p, reference()


def tif_rgb(path):
    Image.fromarray(reference()).save(p := path.with_suffix(".tif"), compression="tiff_lzw")
    return p, reference()


def png_palette(path):
    palette = Image.fromarray(reference()).quantize(colors=64)
    palette.save(p := path.with_suffix(".png"))
    assert Image.open(p).mode == "P"
    return p, np.asarray(palette.convert("RGB"))


def png_palette_transparent(path):
    palette = Image.fromarray(reference()).quantize(colors=64)
    palette.info["transparency"] = 3
    palette.save(p := path.with_suffix(".png"), transparency=3)
    return p, np.asarray(palette.convert("RGB"))


def png_bilevel(path):
    bits = grey(reference()) > 128
    Image.fromarray(bits).convert("1").save(p := path.with_suffix(".png"))
    assert Image.open(p).mode == "1"
    return p, as_rgb(np.where(bits, 255, 0).astype(np.uint8))


def jpg_rgb(path):
    Image.fromarray(reference()).save(p := path.with_suffix(".jpg"), quality=95, subsampling=0)
    return p, reference()


def jpg_grey(path):
    g = grey(reference())
    Image.fromarray(g, mode="L").save(p := path.with_suffix(".jpg"), quality=95, subsampling=0)
    return p, as_rgb(g)


def _cmyk() -> tuple[pyvips.Image, np.ndarray]:
    """The reference printed: sRGB → CMYK through libvips' CMYK profile (embedded in the file),
    and those CMYK values back to sRGB through the same profile: the pixels a reader must give
    (the round trip itself loses a few levels to the press gamut, checked here to stay small)."""
    cmyk = vips(reference(), "srgb").icc_transform("cmyk", input_profile="srgb")
    back = cmyk.icc_transform("srgb", input_profile="cmyk", embedded=True, intent="relative")
    pixels = np.ndarray(buffer=back.write_to_memory(), dtype=np.uint8, shape=(H, W, 3))
    assert np.abs(pixels.astype(int) - reference()).mean() < 6  # the colours, not an inversion
    return cmyk, pixels


def jpg_cmyk(path):
    cmyk, pixels = _cmyk()
    cmyk.jpegsave(str(p := path.with_suffix(".jpg")), Q=95, subsample_mode="off")
    assert Image.open(p).mode == "CMYK"
    return p, pixels


def tif_cmyk(path):
    cmyk, pixels = _cmyk()
    cmyk.tiffsave(str(p := path.with_suffix(".tif")))
    assert Image.open(p).mode == "CMYK"
    return p, pixels


def webp_rgb(path):
    Image.fromarray(reference()).save(p := path.with_suffix(".webp"), lossless=True)
    return p, reference()


def bmp_rgb(path):  # not read by libvips here: the PIL path
    Image.fromarray(reference()).save(p := path.with_suffix(".bmp"))
    return p, reference()


def tif_multipage(path):
    first = Image.fromarray(reference())
    first.save(
        p := path.with_suffix(".tif"),
        save_all=True,
        append_images=[
            Image.fromarray(reference()[::2, ::2]),
            Image.fromarray(reference()[::4, ::4]),
        ],
    )
    return p, reference()


WRITERS = [
    png_rgb,
    png_grey,
    png_grey_alpha,
    png_grey16,
    tif_grey16,
    png_grey16_alpha,
    png_rgb16,
    tif_rgb16,
    png_rgba16,
    png_rgba,
    tif_rgba,
    tif_rgb,
    png_palette,
    png_palette_transparent,
    png_bilevel,
    jpg_rgb,
    jpg_grey,
    jpg_cmyk,
    tif_cmyk,
    webp_rgb,
    bmp_rgb,
    tif_multipage,
]
LOSSY = {"jpg_rgb": 3.0, "jpg_grey": 2.0, "jpg_cmyk": 3.0}  # mean |difference| allowed


def assert_close(
    actual: np.ndarray, expected: np.ndarray, case: str, *, resampled: bool = False
) -> None:
    """Equal pixels, up to rounding (a 16-bit or CMYK resize rounds once more) for lossless
    formats; a mean difference within LOSSY[case] (and no gross outliers) for the lossy ones."""
    assert actual.shape == expected.shape and actual.dtype == np.uint8, (
        case,
        actual.shape,
        expected.shape,
    )
    difference = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    if case in LOSSY:
        assert difference.mean() <= LOSSY[case], (case, difference.mean())
        assert np.percentile(difference, 99) <= 40, (case, np.percentile(difference, 99))
    else:
        assert difference.max() <= (2 if resampled else 0), (
            case,
            difference.max(),
            np.argwhere(difference > 0)[:3],
        )


def write_folder(root: Path, writers=WRITERS) -> dict[str, np.ndarray]:
    """Every format as a sample ``<case>``, and its expected pixels as a plain RGB PNG sample
    ``<case>_expected``, each with the same mask. Returns the expected pixels by case."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir(parents=True)
    expected = {}
    for writer in writers:
        case = writer.__name__
        _, pixels = writer(root / "images" / case)
        expected[case] = pixels
        Image.fromarray(pixels).save(root / "images" / f"{case}_expected.png")
        for stem in (case, f"{case}_expected"):
            Image.fromarray(block_mask(reference())).save(root / "annotations" / f"{stem}.png")
    return expected


@pytest.fixture(scope="module")
def formats(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("formats")
    write_folder(root)
    return root


def expected_crop(index, row: int, plain: Path, size: int) -> np.ndarray:
    """The crop at the index's placement of ``row``, cut from the plain PNG ``plain`` scaled the
    same way (crop positions depend on the scan id, so the plain sample's own crops lie
    elsewhere)."""
    placement = index.loc[row]
    scaled, _ = decode.scaled_image(
        plain, int(placement.scaled_width), int(placement.scaled_height), str(plain)
    )
    return cut_crop(scaled, int(placement.crop_x), int(placement.crop_y), size, 0)


def rows(cache, case: str) -> tuple[int, int]:
    ids = cache.index["id"].tolist()
    return ids.index(case), ids.index(f"{case}_expected")


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__)
def test_the_full_resolution_reader_gives_the_same_pixels_as_a_plain_png(formats, writer):
    case = writer.__name__
    path = next(p for p in (formats / "images").iterdir() if p.stem == case)
    expected = np.asarray(Image.open(formats / "images" / f"{case}_expected.png"))
    pixels, head = decode.rgb_image(path, str(path))
    assert_close(pixels, expected, case)
    assert (head.width, head.height) == (W, H)
    picture, head = decode.scaled_image(path, W, H, str(path))  # predict's and scan_view's reader
    assert_close(picture, expected, case)
    assert (head.width, head.height) == (W, H)
    from_bytes, _ = decode.rgb_image(path.read_bytes(), case)  # a parquet cell
    assert np.array_equal(from_bytes, pixels)


def test_the_cache_and_the_working_copies_hold_the_same_pixels_as_a_plain_png(formats, tmp_path):
    index = build_cache(formats / "images", formats / "annotations", tmp_path / "cache", size=SIZE)
    cache = load_cache(tmp_path / "cache")
    for writer in WRITERS:
        case = writer.__name__
        i, j = rows(cache, case)
        assert_close(np.asarray(cache.images[i]), np.asarray(cache.images[j]), case, resampled=True)
        assert np.array_equal(cache.masks[i], cache.masks[j]), case
        assert index.loc[i, ["width", "height"]].tolist() == [W, H]
        # The working copy: the file itself, or (several pages) a single-page PNG of the first.
        picture, _ = decode_image(index.loc[i, "image_path"])
        assert_close(np.asarray(picture), np.asarray(Image.open(index.loc[j, "image_path"])), case)
    multipage = index.set_index("id").loc["tif_multipage", "image_path"]
    assert multipage.endswith(".png") and "working" in multipage


def test_downscaled_working_copies_and_crops_hold_the_same_pixels_as_a_plain_png(formats, tmp_path):
    view = CropView(scale=0.5, per_image=2, seed=3)
    index = build_cache(
        formats / "images",
        formats / "annotations",
        tmp_path / "cache",
        size=SIZE,
        working_max_side=100,
        crops=view,
    )
    cache = load_cache(tmp_path / "cache")
    ids = cache.index["id"].tolist()
    for writer in WRITERS:
        case = writer.__name__
        for k in range(view.per_image):
            i = ids.index(f"{case}__crop{k}")
            expected = expected_crop(index, i, formats / "images" / f"{case}_expected.png", SIZE)
            assert_close(np.asarray(cache.images[i]), expected, case, resampled=True)
        copy, reference_copy = (
            index.loc[ids.index(f"{case}__crop0"), "image_path"],
            index.loc[ids.index(f"{case}_expected__crop0"), "image_path"],
        )
        assert copy.endswith(".png") and Image.open(copy).size == (100, 60)
        assert_close(
            np.asarray(decode_image(copy)[0]),
            np.asarray(decode_image(reference_copy)[0]),
            case,
            resampled=True,
        )


def test_a_16_bit_scan_above_255_is_grey_not_white(tmp_path):
    """A film scan in the upper half of the 16-bit range: PIL's clip to 255 made it white."""
    values = np.linspace(30_000, 60_000, W)[None, :].repeat(H, 0).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "film.png")
    vips(values, "grey16").tiffsave(str(tmp_path / "film.tif"))
    vips(np.dstack([values] * 3), "rgb16").pngsave(str(tmp_path / "film_rgb.png"))
    expected = as_rgb((values >> 8).astype(np.uint8))  # 117 … 234
    for name in ("film.png", "film.tif", "film_rgb.png"):
        pixels, _ = decode.rgb_image(tmp_path / name, name)
        assert np.array_equal(pixels, expected), name
        small, _ = decode.scaled_image(tmp_path / name, 40, 24, name)
        assert 110 <= small.min() and small.max() <= 240, (name, small.min(), small.max())


def test_orient_is_pils_exif_transpose_for_every_orientation():
    stored = reference()
    for tag in range(1, 9):
        image = Image.fromarray(stored)
        exif = image.getexif()
        exif[0x0112] = tag
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", exif=exif)
        expected = np.asarray(ImageOps.exif_transpose(Image.open(buffer)))
        assert np.array_equal(decode.orient(stored, tag), expected), tag


# ---------------------------------------------------------------------------------------------
# EXIF orientation. The displayed image is the reference; the file stores it sideways (6) or upside
# down (3). A mask is drawn either on the displayed image or on the stored pixels.

STORED_OF = {
    6: lambda d: np.ascontiguousarray(np.rot90(d, k=1)),
    3: lambda d: np.ascontiguousarray(d[::-1, ::-1]),
}


def write_oriented(path: Path, tag: int, fmt: str = "JPEG") -> np.ndarray:
    """The reference stored so that a viewer applying ``tag`` shows it upright; returns the stored pixels."""
    stored = STORED_OF[tag](reference())
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = tag
    image.save(
        path, format=fmt, exif=exif, **({"quality": 95, "subsampling": 0} if fmt == "JPEG" else {})
    )
    return stored


def oriented_dataset(root: Path, tag: int, convention: str, fmt: str = "JPEG") -> np.ndarray:
    """One EXIF-oriented image, its mask drawn on the displayed image or on the stored pixels,
    and the same sample as plain PNGs (``plain``: the pixels the mask was drawn on). Returns
    them."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir(parents=True)
    stored = write_oriented(
        root / "images" / f"photo.{'jpg' if fmt == 'JPEG' else fmt.lower()}", tag, fmt
    )
    drawn_on = reference() if convention == "displayed" else stored
    Image.fromarray(block_mask(drawn_on)).save(root / "annotations" / "photo.png")
    Image.fromarray(drawn_on).save(root / "images" / "plain.png")
    Image.fromarray(block_mask(drawn_on)).save(root / "annotations" / "plain.png")
    return drawn_on


def assert_aligned(root: Path, index, drawn_on: np.ndarray, case: str) -> None:
    """The oriented sample equals the plain one in the cache and its working copy, and the cache's
    mask still covers the block of the cache's image."""
    cache = load_cache(root / "cache")
    photo, plain = index["id"].tolist().index("photo"), index["id"].tolist().index("plain")
    # Resized then rotated vs resized: the same up to rounding.
    assert_close(
        np.asarray(cache.images[photo]), np.asarray(cache.images[plain]), case, resampled=True
    )
    assert np.array_equal(cache.masks[photo], cache.masks[plain])
    block = (cache.images[photo][..., 0] >= 200) & (cache.images[photo][..., 2] <= 90)
    labelled = cache.masks[photo] == DAMAGE
    assert (block & labelled).sum() >= 0.8 * labelled.sum() > 0, case  # image and mask line up
    assert index.loc[photo, ["width", "height"]].tolist() == [drawn_on.shape[1], drawn_on.shape[0]]
    working = index.loc[photo, "image_path"]
    assert working.endswith(".png") and "working" in working  # written oriented, the tag gone
    assert decode.header(working, working).orientation == 1
    picture, size = decode_image(working)  # predict's default (apply) reads it the same
    assert_close(np.asarray(picture), drawn_on, case)
    mask = np.asarray(Image.open(index.loc[photo, "mask_path"]))
    assert mask.shape == np.asarray(picture).shape[:2]


@pytest.mark.parametrize("convention", ["displayed", "stored"])
def test_an_exif_rotated_jpeg_follows_its_mask_in_auto(tmp_path, convention):
    drawn_on = oriented_dataset(tmp_path, 6, convention)
    index = build_cache(
        tmp_path / "images", tmp_path / "annotations", tmp_path / "cache", size=SIZE
    )
    assert_aligned(tmp_path, index, drawn_on, "jpg_rgb")
    # The crops view and downscaled working copies follow the same decision.
    view = CropView(scale=0.5, per_image=2)
    index = build_cache(
        tmp_path / "images",
        tmp_path / "annotations",
        tmp_path / "crops",
        size=32,
        crops=view,
        working_max_side=100,
    )
    cache = load_cache(tmp_path / "crops")
    ids = index["id"].tolist()
    for k in range(2):
        i = ids.index(f"photo__crop{k}")
        assert_close(
            np.asarray(cache.images[i]),
            expected_crop(index, i, tmp_path / "images" / "plain.png", 32),
            "jpg_rgb",
        )
        placement = index.loc[i]
        mask, _ = decode.scaled_mask(
            tmp_path / "annotations" / "plain.png",
            int(placement.scaled_width),
            int(placement.scaled_height),
            "plain mask",
        )
        assert np.array_equal(
            cache.masks[i],
            cut_crop(mask, int(placement.crop_x), int(placement.crop_y), 32, IGNORE_INDEX),
        )
    working = index.loc[ids.index("photo__crop0"), "image_path"]
    expected = decode_image(index.loc[ids.index("plain__crop0"), "image_path"])[0]
    assert_close(np.asarray(decode_image(working)[0]), np.asarray(expected), "jpg_rgb")


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_an_orientation_tag_in_a_png_or_tiff_follows_the_same_rule(tmp_path, fmt):
    drawn_on = oriented_dataset(tmp_path, 6, "displayed", fmt)
    index = build_cache(
        tmp_path / "images", tmp_path / "annotations", tmp_path / "cache", size=SIZE
    )
    assert_aligned(tmp_path, index, drawn_on, fmt)


@pytest.mark.parametrize("convention", ["displayed", "stored"])
def test_an_upside_down_jpeg_needs_the_setting_and_then_follows_it(tmp_path, convention):
    drawn_on = oriented_dataset(tmp_path, 3, convention)
    # Both orientations have the mask's size: auto cannot tell, and says what to set.
    ambiguous = r"images/photo\.jpg.*EXIF orientation 3.*prepare\.exif_orientation to apply"
    with pytest.raises(DatasetError, match=ambiguous):
        build_cache(tmp_path / "images", tmp_path / "annotations", tmp_path / "cache", size=SIZE)
    setting = "apply" if convention == "displayed" else "ignore"
    index = build_cache(
        tmp_path / "images",
        tmp_path / "annotations",
        tmp_path / "cache",
        size=SIZE,
        exif_orientation=setting,
    )
    assert_aligned(tmp_path, index, drawn_on, "jpg_rgb")


def test_an_explicit_setting_that_contradicts_the_mask_is_a_size_error(tmp_path):
    oriented_dataset(tmp_path, 6, "stored")
    with pytest.raises(
        DatasetError, match=r"photo\.jpg.*96×160 as stored, 160×96 as displayed.*same size"
    ):
        build_cache(
            tmp_path / "images",
            tmp_path / "annotations",
            tmp_path / "cache",
            size=SIZE,
            exif_orientation="apply",
        )


def test_a_new_scan_is_read_as_viewers_show_it(tmp_path):
    """predict's readers (no mask): the orientation applied, header and pixels alike."""
    path = tmp_path / "new.jpg"
    write_oriented(path, 6)
    head = decode.header(path, str(path))
    assert (head.width, head.height, head.orientation) == (W, H, 6)
    assert decode.header(path, str(path), orientation="ignore").width == H
    pixels, _ = decode.rgb_image(path, str(path))
    assert_close(pixels, reference(), "jpg_rgb")
    small, _ = decode.scaled_image(path, W // 2, H // 2, str(path))
    expected = np.asarray(
        Image.fromarray(reference()).resize((W // 2, H // 2), Image.Resampling.LANCZOS)
    )
    assert_close(small, expected, "jpg_rgb")
    stored, _ = decode.scaled_image(path, H // 2, W // 2, str(path), orientation="ignore")
    assert stored.shape == (W // 2, H // 2, 3)


# ---------------------------------------------------------------------------------------------
# Multi-page files and samples with no 8-bit meaning.


def test_a_multipage_tiff_reads_its_first_page_and_says_so(tmp_path, caplog):
    path = tmp_path / "pages.tif"
    tif_multipage(path.with_suffix(""))
    with caplog.at_level(logging.WARNING, logger="heritage_damage_seg.data.decode"):
        pixels, head = decode.rgb_image(path, "pages.tif (warned)")
    assert head.pages == 3 and np.array_equal(pixels, reference())
    assert any("pages.tif (warned)" in r.message and "3-page" in r.message for r in caplog.records)


def test_a_multipage_tiff_whose_first_page_is_a_preview_is_refused(tmp_path):
    path = tmp_path / "preview_first.tif"
    Image.fromarray(reference()[::4, ::4]).save(
        path, save_all=True, append_images=[Image.fromarray(reference())]
    )
    refused = r"preview_first\.tif: page 2 .* larger .*save the scan as a single-page file"
    with pytest.raises(DatasetError, match=refused):
        decode.rgb_image(path, str(path))


def test_float_samples_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "float.tif"
    vips(reference().astype(np.float32) / 255, "srgb").tiffsave(str(path))
    with pytest.raises(
        DatasetError, match=r"float\.tif: float samples .*save the image as 8- or 16-bit"
    ):
        decode.rgb_image(path, str(path))


# ---------------------------------------------------------------------------------------------
# Streaming holds for the converted modes: a 61 MP 16-bit RGB or CMYK scan decoded whole would hold
# 366 MB (16-bit) or 244 MB (CMYK) of samples plus 183 MB of 8-bit RGB; streamed, the peak stays
# near the interpreter's baseline (~190 MB), as for the 8-bit 244 MP scan of tests/test_parquet.py.
LARGE_PEAK_RSS_BOUND_MB = 400
LARGE_SCRIPT = """
import json, sys
from heritage_damage_seg.data.folder import build_cache
root = sys.argv[1]
index = build_cache(root + "/images", root + "/annotations", root + "/cache", size=384, working_max_side=4096)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"peak_mb": int(hwm[0].split()[1]) / 1024, "image_path": index.iloc[0].image_path}))
"""


@pytest.mark.parametrize("mode", ["rgb16", "cmyk"])
def test_a_large_16_bit_or_cmyk_scan_is_converted_in_bounded_memory(tmp_path, mode):
    import json
    import subprocess
    import sys

    width, height = 8000, 7625
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    x, y = pyvips.Image.xyz(width, height).bandsplit()
    pixels = (x % 251).bandjoin([y % 241, (x + y) % 239])
    if mode == "rgb16":
        (pixels * 257).cast("ushort").copy(interpretation="rgb16").tiffsave(
            str(tmp_path / "images" / "scan.tif")
        )
    else:
        pixels.cast("uchar").copy(interpretation="srgb").icc_transform(
            "cmyk", input_profile="srgb"
        ).tiffsave(str(tmp_path / "images" / "scan.tif"))
    (x < width // 8).ifthenelse(IGNORE_INDEX, 0).cast("uchar").pngsave(
        str(tmp_path / "annotations" / "scan.png"), compression=1
    )
    run = subprocess.run(
        [sys.executable, "-c", LARGE_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(
        f"61 MP {mode} scan prepared with peak RSS {result['peak_mb']:.0f} MB (bound {LARGE_PEAK_RSS_BOUND_MB} MB)"
    )
    assert result["peak_mb"] < LARGE_PEAK_RSS_BOUND_MB
    cache = load_cache(tmp_path / "cache")
    if mode == "rgb16":  # the 16-bit values scaled, not clipped: the 8-bit pattern again
        assert abs(float(cache.images[0][..., 1].mean()) - 120) < 10  # y % 241: mean ≈ 120, not 255
    assert set(np.unique(cache.masks[0])) == {0, IGNORE_INDEX}
    with Image.open(result["image_path"]) as working:
        assert working.size == (4096, round(height * 4096 / width)) and working.mode == "RGB"


def test_parquet_cells_follow_the_same_rule_as_files(tmp_path):
    """The same EXIF-rotated JPEG and 16-bit PNG as bytes in a shard (ARTeFACT's schema) give the
    cache and working copies the folder gives."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from test_parquet import SCHEMA

    from heritage_damage_seg.data import parquet

    drawn_on = oriented_dataset(tmp_path / "folder", 6, "displayed")
    png_grey16(tmp_path / "folder" / "images" / "film")
    Image.fromarray(block_mask(reference())).save(tmp_path / "folder" / "annotations" / "film.png")
    records = []
    for stem, image in (("photo", "photo.jpg"), ("plain", "plain.png"), ("film", "film.png")):
        encoded = (tmp_path / "folder" / "images" / image).read_bytes()
        records.append(
            {
                "id": stem,
                "image": {"bytes": encoded, "path": image},
                "annotation": {
                    "bytes": (tmp_path / "folder" / "annotations" / f"{stem}.png").read_bytes(),
                    "path": None,
                },
                "annotation_rgb": None,
                "material": "Paper",
                "content": "Photo",
                "type": "Photo",
                "damage_description": "",
                "llava_description": "",
                "verified_description": "",
            }
        )
    (tmp_path / "hub").mkdir()
    pq.write_table(pa.Table.from_pylist(records, schema=SCHEMA), tmp_path / "hub" / "shard.parquet")
    from_folder = build_cache(
        tmp_path / "folder" / "images",
        tmp_path / "folder" / "annotations",
        tmp_path / "folder" / "cache",
        size=SIZE,
    )
    from_parquet = parquet.build_cache(tmp_path / "hub", tmp_path / "cache", size=SIZE)
    folder, hub = load_cache(tmp_path / "folder" / "cache"), load_cache(tmp_path / "cache")
    assert np.array_equal(folder.images, hub.images) and np.array_equal(folder.masks, hub.masks)
    assert from_parquet[["id", "width", "height"]].equals(from_folder[["id", "width", "height"]])
    rows = from_parquet.set_index("id")
    assert_close(np.asarray(decode_image(rows.loc["photo", "image_path"])[0]), drawn_on, "jpg_rgb")
    assert rows.loc["photo", "image_path"].endswith(".png")
    film = np.asarray(
        decode_image(rows.loc["film", "image_path"])[0]
    )  # the 16-bit PNG, kept as it is
    assert rows.loc["film", "image_path"].endswith(".png") and np.array_equal(
        film, as_rgb(grey(reference()))
    )


def test_a_palette_tiff_mask_with_an_orientation_tag_is_refused(tmp_path):
    """PIL (which reads palette masks) applies part of a TIFF's orientation itself: refused, not
    half-rotated."""
    mask = Image.fromarray(block_mask(reference())).convert("P")
    exif = mask.getexif()
    exif[0x0112] = 6
    mask.save(tmp_path / "mask.tif", exif=exif)
    with pytest.raises(
        DatasetError, match=r"mask\.tif: the mask carries a TIFF orientation tag \(6\).*save it"
    ):
        decode.scaled_mask(tmp_path / "mask.tif", 32, 32, str(tmp_path / "mask.tif"))
