"""The undamaged artwork: a picture of one *content* type, tinted and textured by a *material*,
optionally set on a mount / scanner bed (:func:`render_clean`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from heritage_damage_seg.data.synthetic.numeric import (
    F32,
    draw_lines,
    lowres_shape,
    luminance,
    random_curve,
    upsample_rgb,
    value_noise,
)

MATERIALS: tuple[str, ...] = (
    "Paper",
    "Parchment",
    "Glass",
    "Tesserae",
    "Wood",
    "Canvas",
    "Lime plaster",
    "Film emulsion",
    "Textile",
    "Ceramic",
)
CONTENTS: tuple[str, ...] = (
    "Artistic depiction",
    "Photographic depiction",
    "Geometric patterns",
    "Line art",
)

_PAINT_COLOURS = np.array(
    [
        (196, 150, 72),
        (120, 78, 45),
        (160, 82, 45),
        (48, 62, 140),
        (56, 110, 90),
        (200, 60, 40),
        (232, 225, 205),
        (40, 36, 34),
        (120, 160, 200),
        (128, 128, 60),
        (170, 70, 90),
        (220, 190, 120),
        (90, 120, 60),
        (70, 90, 110),
    ],
    dtype=F32,
)


def _palette(rng: np.random.Generator, n_colours: int) -> np.ndarray:
    """``n_colours`` distinct paint colours, each jittered a little (float32 ``n x 3``)."""
    picks = rng.choice(len(_PAINT_COLOURS), size=n_colours, replace=False)
    jitter = rng.normal(0, 14, (n_colours, 3))
    return np.clip(_PAINT_COLOURS[picks] + jitter, 0, 255).astype(F32)


def _colour_fields(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth painterly colour fields at (small) ``h x w``."""
    n_colours = int(rng.integers(3, 6))
    palette = _palette(rng, n_colours)
    cell = max(h, w) * rng.uniform(0.18, 0.35)
    fields = [value_noise(rng, h, w, cell) for _ in range(n_colours)]
    logits = np.stack(fields) * rng.uniform(3.0, 6.0)  # a sharper or softer mix of the colours
    logits -= logits.max(axis=0, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=0, keepdims=True)
    picture = np.tensordot(weights, palette, axes=(0, 0))
    # a few soft blobs (figures, trees, clouds)
    layer = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))
    blobs = layer.copy()
    draw = ImageDraw.Draw(blobs)
    for _ in range(int(rng.integers(2, 6))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.05, 0.25) * h, rng.uniform(0.05, 0.25) * w
        shade = palette[rng.integers(n_colours)] * rng.uniform(0.7, 1.2)
        fill = tuple(int(channel) for channel in shade)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=fill)
    blobs = blobs.filter(ImageFilter.GaussianBlur(max(1.0, min(h, w) / 60)))
    return np.asarray(Image.blend(layer, blobs, 0.7), dtype=F32)


def _content_artistic(rng: np.random.Generator, h: int, w: int, short_side: float) -> np.ndarray:
    """A painting: smooth colour fields, brush texture and short opaque strokes."""
    small_h, small_w = lowres_shape(h, w)
    picture = upsample_rgb(_colour_fields(rng, small_h, small_w), h, w)
    # brush-like strokes: anisotropic noise, mostly along one direction
    fine_cell, long_cell = max(1.5, short_side * 0.012), max(4.0, short_side * 0.09)
    if rng.random() < 0.5:
        brush = value_noise(rng, h, w, fine_cell, long_cell)
    else:
        brush = value_noise(rng, h, w, long_cell, fine_cell)
    picture += brush[..., None] * rng.uniform(5, 9)
    # short opaque brush strokes in locally sampled colours
    n_strokes = int(h * w / max(short_side * 0.06, 4.0) ** 2 * rng.uniform(0.5, 1.2))
    ys, xs = rng.integers(0, h, n_strokes), rng.integers(0, w, n_strokes)
    jitter = rng.normal(0, 6, (n_strokes, 3))
    colours = np.clip(picture[ys, xs] + jitter, 0, 255).astype(np.uint8).tolist()
    angles = rng.normal(rng.uniform(0, math.pi), 0.4, n_strokes)
    lengths = short_side * rng.uniform(0.02, 0.06, n_strokes)
    end_xs, end_ys = xs + np.cos(angles) * lengths, ys + np.sin(angles) * lengths
    canvas = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    stroke_width = max(2, int(short_side / 90))
    for i in range(n_strokes):
        stroke = [float(xs[i]), float(ys[i]), float(end_xs[i]), float(end_ys[i])]
        draw.line(stroke, fill=tuple(colours[i]), width=stroke_width)
    return np.asarray(canvas, dtype=F32)


def _content_photographic(
    rng: np.random.Generator, h: int, w: int, short_side: float
) -> np.ndarray:
    """An old photograph: sky and ground, blurred shapes, vignette, maybe sepia, film grain."""
    small_h, small_w = lowres_shape(h, w)
    y = np.linspace(0, 1, small_h, dtype=F32)[:, None]
    top, bottom = rng.uniform(150, 230), rng.uniform(40, 130)
    horizon = rng.uniform(0.3, 0.7)
    sky_and_ground = np.where(
        y < horizon, top + (bottom - top) * 0.3 * y / horizon, bottom + 20 * (1 - y)
    ) * np.ones((1, small_w), F32)
    photo = Image.fromarray(np.clip(sky_and_ground, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(photo)
    for _ in range(int(rng.integers(3, 8))):
        cy, cx = rng.uniform(0.2, 1.0) * small_h, rng.uniform(0, 1) * small_w
        ry, rx = rng.uniform(0.05, 0.3) * small_h, rng.uniform(0.03, 0.2) * small_w
        grey = int(rng.uniform(20, 240))
        if rng.random() < 0.5:
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=grey)
        else:
            draw.rectangle([cx - rx, cy - ry, cx + rx, cy + ry * 2], fill=grey)
    photo = photo.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.5)))
    small = np.asarray(photo, dtype=F32)
    yy = np.linspace(-1, 1, small_h, dtype=F32)[:, None]
    xx = np.linspace(-1, 1, small_w, dtype=F32)[None, :]
    small = small * (1.0 - 0.25 * (yy * yy + xx * xx))  # vignette
    if rng.random() < 0.6:
        tone = np.array([1.08, 0.93, 0.74], F32)  # sepia
    else:
        tone = np.array([1.0, 1.0, 1.0], F32)
    picture = upsample_rgb(small[..., None] * tone, h, w)
    grain = rng.standard_normal((h, w), dtype=np.float32) * rng.uniform(4, 9)
    return picture + grain[..., None]


def _content_geometric(rng: np.random.Generator, h: int, w: int, short_side: float) -> np.ndarray:
    """A tiled, striped, diamond or mosaic pattern in a few paint colours."""
    pattern = rng.choice(["tiles", "stripes", "diamonds", "mosaic"])
    yy = np.arange(h)[:, None]
    xx = np.arange(w)[None, :]
    # drawn for every pattern: the mosaic ignores it, but the draw advances the random stream
    palette = _palette(rng, int(rng.integers(2, 5)))
    n_colours = len(palette)
    if pattern == "mosaic":
        return _mosaic(rng, yy, xx, short_side)
    if pattern == "tiles":
        tile = max(6, int(short_side * rng.uniform(0.05, 0.14)))
        colour_index = ((yy // tile) * int(rng.integers(1, 3)) + (xx // tile)) % n_colours
        picture = palette[colour_index]
        grout_width = max(1, tile // 10)
        grout = ((yy % tile) < grout_width) | ((xx % tile) < grout_width)
        picture = np.where(grout[..., None], palette.mean(0) * 0.6, picture)
    elif pattern == "stripes":
        theta = rng.choice([0.0, math.pi / 2, math.pi / 4, -math.pi / 4]) + rng.normal(0, 0.03)
        period = max(4.0, short_side * rng.uniform(0.03, 0.1))
        across = xx * math.cos(theta) + yy * math.sin(theta)
        picture = palette[(np.floor(across / period).astype(np.int64)) % n_colours]
    else:  # diamonds
        period = max(6.0, short_side * rng.uniform(0.05, 0.12))
        diagonal = np.floor((xx + yy) / period).astype(np.int64)
        antidiagonal = np.floor((xx - yy) / period).astype(np.int64)
        picture = palette[(diagonal + antidiagonal) % n_colours]
    shade = value_noise(rng, h, w, short_side * 0.3)[..., None] * 8
    return (picture + shade).astype(F32)


def _mosaic(
    rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, short_side: float
) -> np.ndarray:
    """Staggered square tesserae coloured from smooth colour fields, with light grout."""
    h, w = yy.shape[0], xx.shape[1]
    tile = max(4, int(short_side * rng.uniform(0.02, 0.045)))
    rows, cols = h // tile + 2, w // tile + 2
    tiles = _colour_fields(rng, rows, cols) + rng.normal(0, 12, (rows, cols, 3))
    tile_row = yy // tile
    shifted_x = xx + (tile_row % 2) * (tile // 2)  # every other row is offset by half a tile
    picture = tiles[tile_row, shifted_x // tile]
    grout_width = max(1, tile // 6)
    grout = ((yy % tile) < grout_width) | ((shifted_x % tile) < grout_width)
    picture = np.where(grout[..., None], np.array([200, 195, 180], F32), picture)
    return picture.astype(F32)


def _content_line_art(rng: np.random.Generator, h: int, w: int, short_side: float) -> np.ndarray:
    """An ink drawing on paper: curves, hatching and circles."""
    paper = np.array([242, 236, 220], F32) + rng.normal(0, 6, 3)
    line_width = max(1, round(short_side / 300))
    strokes: list[np.ndarray] = []
    for _ in range(int(rng.integers(6, 16))):
        strokes.append(
            random_curve(
                rng,
                rng.uniform(0, w),
                rng.uniform(0, h),
                rng.uniform(0, 2 * math.pi),
                short_side * rng.uniform(0.15, 0.7),
                rng.uniform(0.2, 1.2),
            )
        )
    for _ in range(int(rng.integers(1, 4))):
        strokes.extend(_hatching(rng, h, w, short_side, line_width))
    ink = draw_lines(h, w, strokes, line_width)
    drawing = Image.fromarray((ink * 255).astype(np.uint8))
    draw = ImageDraw.Draw(drawing)
    for _ in range(int(rng.integers(0, 4))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        radius = short_side * rng.uniform(0.03, 0.15)
        top = cy - radius * rng.uniform(0.6, 1.0)
        draw.ellipse([cx - radius, top, cx + radius, cy + radius], outline=255, width=line_width)
    ink = np.asarray(drawing, dtype=F32)[..., None] / 255.0 * rng.uniform(0.75, 0.95)
    if rng.random() < 0.7:
        ink_colour = np.array([40, 32, 28], F32)
    else:
        ink_colour = np.array([90, 55, 35], F32)
    texture = value_noise(rng, h, w, short_side * 0.2)[..., None] * 5
    background = np.broadcast_to(paper, (h, w, 3)) + texture
    return background * (1 - ink) + ink_colour * ink


def _hatching(
    rng: np.random.Generator, h: int, w: int, short_side: float, line_width: int
) -> list[np.ndarray]:
    """A patch of parallel hatching strokes of random length, as two-point polylines."""
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    size = short_side * rng.uniform(0.08, 0.25)
    angle = rng.uniform(0, math.pi)
    gap = rng.uniform(3, 7) * line_width
    dx, dy = math.cos(angle), math.sin(angle)
    strokes = []
    for offset in np.arange(-size / 2, size / 2, gap):
        px, py = cx - dy * offset, cy + dx * offset
        half = size * rng.uniform(0.2, 0.5)
        strokes.append(
            np.array([[px - dx * half, py - dy * half], [px + dx * half, py + dy * half]])
        )
    return strokes


_ContentFn = Callable[[np.random.Generator, int, int, float], np.ndarray]
_CONTENT_FN: dict[str, _ContentFn] = {
    "Artistic depiction": _content_artistic,
    "Photographic depiction": _content_photographic,
    "Geometric patterns": _content_geometric,
    "Line art": _content_line_art,
}


def _tint(picture: np.ndarray, colour: tuple[float, float, float], amount: float) -> None:
    """Blend ``picture`` (in place) towards ``colour`` by ``amount``."""
    picture[:] = picture * (1 - amount) + np.array(colour, F32) * amount


# Each material tints and textures a float HxWx3 picture in place; ``short_side`` = min(H, W).


def _paper(rng: np.random.Generator, picture: np.ndarray, short_side: float) -> None:
    h, w = picture.shape[:2]
    _tint(picture, (240, 232, 210), 0.12)
    fibres = value_noise(rng, h, w, 1.0, 4.0) * 4
    picture += (fibres + value_noise(rng, h, w, short_side * 0.15) * 4)[..., None]


def _parchment(rng: np.random.Generator, picture: np.ndarray, short_side: float) -> None:
    h, w = picture.shape[:2]
    _tint(picture, (222, 198, 150), 0.28)
    picture *= (1 + 0.07 * value_noise(rng, h, w, short_side * 0.12))[..., None]


def _glass(rng: np.random.Generator, picture: np.ndarray, short_side: float) -> None:
    h, w = picture.shape[:2]
    _tint(picture, (170, 205, 200), 0.15)
    yy = np.arange(h, dtype=F32)[:, None]
    xx = np.arange(w, dtype=F32)[None, :]
    period = short_side * rng.uniform(0.15, 0.3)
    sheen = np.sin((xx + yy) / period * 2 * math.pi + rng.uniform(0, 6.3))
    picture += (np.clip(sheen, 0, None) ** 4 * 35)[..., None]


def _tesserae(rng: np.random.Generator, picture: np.ndarray, short_side: float) -> None:
    h, w = picture.shape[:2]
    tile = max(4, int(short_side * rng.uniform(0.02, 0.04)))
    yy = np.arange(h)[:, None]
    xx = np.arange(w)[None, :]
    grout_width = max(1, tile // 6)
    shifted_x = xx + (yy // tile % 2) * (tile // 2)  # every other row is offset by half a tile
    grout = ((yy % tile) < grout_width) | ((shifted_x % tile) < grout_width)
    jitter = rng.normal(0, 10, (h // tile + 2, w // tile + 2)).astype(F32)
    picture += jitter[yy // tile, shifted_x // tile][..., None]
    picture[grout] = picture[grout] * 0.35 + np.array([190, 185, 170], F32) * 0.65


def _wood(rng: np.random.Generator, picture: np.ndarray, short_side: float) -> None:
    h, w = picture.shape[:2]
    _tint(picture, (150, 100, 55), 0.3)
    along_x = rng.random() < 0.5
    coord = np.arange(w if along_x else h, dtype=F32)
    if along_x:
        warp = value_noise(rng, h, w, short_side * 0.2, short_side * 0.02)
    else:
        warp = value_noise(rng, h, w, short_side * 0.02, short_side * 0.2)
    period = max(3.0, short_side * rng.uniform(0.015, 0.04))
    across = coord[None, :] if along_x else coord[:, None]
    grain = np.sin((across + warp * period * 2.5) / period * 2 * math.pi)
    picture *= (1 + 0.07 * grain)[..., None]


def _canvas(rng: np.random.Generator, picture: np.ndarray, short_side: float) -> None:
    h, w = picture.shape[:2]
    period = rng.uniform(3.0, 5.0)
    yy = np.arange(h, dtype=F32)[:, None]
    xx = np.arange(w, dtype=F32)[None, :]
    weave = np.sin(xx / period * 2 * math.pi) * np.sin(yy / period * 2 * math.pi)
    picture *= (1 + 0.06 * weave)[..., None]
    _tint(picture, (215, 200, 170), 0.1)


def _lime_plaster(rng: np.random.Generator, picture: np.ndarray, short_side: float) -> None:
    h, w = picture.shape[:2]
    grey = luminance(picture)[..., None]
    picture[:] = picture * 0.75 + grey * 0.25
    _tint(picture, (235, 228, 212), 0.25)
    coarse = 0.06 * value_noise(rng, h, w, short_side * 0.08)
    picture *= (1 + coarse + 0.03 * value_noise(rng, h, w, 2.0))[..., None]


def _film_emulsion(rng: np.random.Generator, picture: np.ndarray, short_side: float) -> None:
    h, w = picture.shape[:2]
    _tint(picture, (180, 195, 190), 0.08)
    picture += rng.standard_normal((h, w), dtype=np.float32)[..., None] * 5


def _textile(rng: np.random.Generator, picture: np.ndarray, short_side: float) -> None:
    h, w = picture.shape[:2]
    period = rng.uniform(4.0, 7.0)
    yy = np.arange(h)[:, None]
    xx = np.arange(w)[None, :]
    weft = rng.normal(0, 1, h).astype(F32)[:, None]
    warp = rng.normal(0, 1, w).astype(F32)[None, :]
    weft_on_top = (np.floor(xx / period) + np.floor(yy / period)) % 2 == 0
    thread = np.where(weft_on_top, weft, warp)
    picture *= (1 + 0.05 * thread + 0.05 * np.where(weft_on_top, 1.0, -1.0))[..., None]


def _ceramic(rng: np.random.Generator, picture: np.ndarray, short_side: float) -> None:
    h, w = picture.shape[:2]
    mean = picture.mean(axis=-1, keepdims=True)
    picture[:] = mean + (picture - mean) * 1.15  # glaze: a little more saturated
    yy = np.linspace(-1, 1, h, dtype=F32)[:, None]
    xx = np.linspace(-1, 1, w, dtype=F32)[None, :]
    cy, cx = rng.uniform(-0.6, 0.6, 2)
    highlight = np.exp(-(((yy - cy) / 0.25) ** 2 + ((xx - cx) / 0.4) ** 2))
    picture += (highlight * 45)[..., None]


_MaterialFn = Callable[[np.random.Generator, np.ndarray, float], None]
_MATERIAL_FN: dict[str, _MaterialFn] = {
    "Paper": _paper,
    "Parchment": _parchment,
    "Glass": _glass,
    "Tesserae": _tesserae,
    "Wood": _wood,
    "Canvas": _canvas,
    "Lime plaster": _lime_plaster,
    "Film emulsion": _film_emulsion,
    "Textile": _textile,
    "Ceramic": _ceramic,
}

_MOUNT_COLOURS = np.array(
    [
        (22, 22, 24),
        (62, 64, 66),
        (128, 128, 126),
        (200, 200, 198),
        (238, 236, 230),
        (185, 172, 150),
    ],
    F32,
)
_TORN_MATERIALS = ("Paper", "Parchment", "Film emulsion", "Textile")

_Rectangle = tuple[float, float, float, float]  # left, top, right, bottom
_Outline = list[tuple[float, float]]  # polygon vertices (x, y)


def _artwork_rectangle(rng: np.random.Generator, h: int, w: int) -> _Rectangle:
    """Where the artwork sits in the scan: random margins, not all of them zero."""
    for _ in range(10):
        margins = [rng.uniform(0.03, 0.14) if rng.random() > 0.15 else 0.0 for _ in range(4)]
        if sum(margins) > 0.02:
            break
    else:
        margins = [0.08, 0.08, 0.08, 0.08]
    top, bottom = margins[0] * h, h - margins[1] * h
    left, right = margins[2] * w, w - margins[3] * w
    return left, top, right, bottom


def _torn_outline(rng: np.random.Generator, rectangle: _Rectangle, short_side: int) -> _Outline:
    """The rectangle's outline with torn, ragged edges (pushed inwards, never outwards)."""
    left, top, right, bottom = rectangle
    tear_depth = short_side * rng.uniform(0.006, 0.025)
    outline: _Outline = []
    edges = [
        ((left, top), (right, top)),
        ((right, top), (right, bottom)),
        ((right, bottom), (left, bottom)),
        ((left, bottom), (left, top)),
    ]
    for (xa, ya), (xb, yb) in edges:
        length = math.hypot(xb - xa, yb - ya)
        n_points = max(4, int(length / max(2.0, short_side / 80)))
        along = np.linspace(0, 1, n_points, endpoint=False)
        smooth = np.interp(along * 20, np.arange(21), rng.normal(0, 1, 21)) * tear_depth
        tear = smooth + rng.normal(0, tear_depth * 0.3, n_points)
        # outward normal
        normal_x, normal_y = (yb - ya) / max(length, 1e-6), -(xb - xa) / max(length, 1e-6)
        xs = xa + (xb - xa) * along - normal_x * np.abs(tear)
        ys = ya + (yb - ya) * along - normal_y * np.abs(tear)
        outline.extend(zip(xs.tolist(), ys.tolist()))
    return outline


def _tilted_outline(rng: np.random.Generator, rectangle: _Rectangle) -> _Outline:
    """The rectangle turned by up to 1.5 degrees about its centre (a slightly skewed placement)."""
    left, top, right, bottom = rectangle
    angle = math.radians(rng.uniform(-1.5, 1.5))
    cx, cy = (left + right) / 2, (top + bottom) / 2
    corners = [(left, top), (right, top), (right, bottom), (left, bottom)]
    return [
        (
            cx + (x - cx) * math.cos(angle) - (y - cy) * math.sin(angle),
            cy + (x - cx) * math.sin(angle) + (y - cy) * math.cos(angle),
        )
        for x, y in corners
    ]


def _art_region(rng: np.random.Generator, h: int, w: int, material: str) -> np.ndarray:
    """Boolean mask of the artwork inside a scan that also shows a mount / scanner bed."""
    rectangle = _artwork_rectangle(rng, h, w)
    if material in _TORN_MATERIALS and rng.random() < 0.75:
        outline = _torn_outline(rng, rectangle, min(h, w))
    else:
        outline = _tilted_outline(rng, rectangle)
    region = Image.new("L", (w, h), 0)
    ImageDraw.Draw(region).polygon(outline, fill=255)
    art = np.asarray(region) > 0
    if art.all():  # keep some mount visible
        art[:, : max(1, w // 20)] = False
    return art


def _mount(
    rng: np.random.Generator, picture: np.ndarray, art: np.ndarray, short_side: float
) -> np.ndarray:
    """The mount / scanner bed around ``art`` (float HxWx3): a colour that contrasts with the
    artwork, faintly textured, with the artwork's drop shadow."""
    h, w = art.shape
    art_luminance = float(luminance(picture[::4, ::4][art[::4, ::4]]).mean())
    contrast = np.abs(luminance(_MOUNT_COLOURS) - art_luminance)
    candidates = np.flatnonzero(contrast > 60)
    choice = int(rng.choice(candidates)) if len(candidates) else int(np.argmax(contrast))
    colour = (_MOUNT_COLOURS[choice] + rng.normal(0, 4, 3)).astype(F32)
    mount = colour + value_noise(rng, h, w, short_side * 0.3)[..., None] * np.float32(3)
    offset = max(1, int(short_side / 120))
    shadow = np.zeros_like(art)
    shadow[offset:, offset:] = art[:-offset, :-offset]
    mount[shadow & ~art] *= np.float32(0.75)
    return mount


def _to_uint8(picture: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(picture), 0, 255).astype(np.uint8)


def render_clean(
    rng: np.random.Generator, h: int, w: int, material: str, content: str, background: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The undamaged scan (uint8 HxWx3) and the artwork region (bool HxW, all True without a
    ``background``)."""
    short_side = float(min(h, w))
    picture = _CONTENT_FN[content](rng, h, w, short_side)
    _MATERIAL_FN[material](rng, picture, short_side)
    if not background:
        return _to_uint8(picture), np.ones((h, w), bool)
    art = _art_region(rng, h, w, material)
    mount = _mount(rng, picture, art, short_side)
    return _to_uint8(np.where(art[..., None], picture, mount)), art
