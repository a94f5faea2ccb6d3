"""Damage painting: instances of the 15 ARTeFACT damage classes painted on a clean artwork in a
fixed physical order (:data:`PAINT_ORDER`), each changing the image and labelling exactly the
pixels it visibly changed (:func:`render_sample`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from heritage_damage_seg.classes import CLEAN, DAMAGE_CLASSES, IGNORE_INDEX, class_id
from heritage_damage_seg.data.synthetic.artwork import CONTENTS, MATERIALS, render_clean
from heritage_damage_seg.data.synthetic.numeric import (
    F32,
    MIN_SIDE,
    blob_field,
    checked_int,
    dilate,
    draw_lines,
    erode,
    luminance,
    random_curve,
    value_noise,
)

MATERIAL_LOSS = class_id("Material loss")
PEEL = class_id("Peel")
DUST = class_id("Dust")
SCRATCH = class_id("Scratch")
HAIR = class_id("Hair")
DIRT = class_id("Dirt")
FOLD = class_id("Fold")
WRITING = class_id("Writing")
CRACKS = class_id("Cracks")
STAINING = class_id("Staining")
STAMP = class_id("Stamp")
STICKER = class_id("Sticker")
PUNCTURE = class_id("Puncture")
BURN_MARKS = class_id("Burn marks")
LIGHTLEAK = class_id("Lightleak")

PAINT_ORDER: tuple[int, ...] = (
    STAINING,
    DIRT,
    WRITING,
    STAMP,
    STICKER,
    FOLD,
    CRACKS,
    PEEL,
    MATERIAL_LOSS,
    BURN_MARKS,
    PUNCTURE,
    SCRATCH,
    DUST,
    HAIR,
    LIGHTLEAK,
)
"""Class ids in painting order (a later class overwrites an earlier one): stains and dirt first,
then marks made on the object (writing, stamps, stickers), then structural damage (fold, cracks,
peel, loss, burns, punctures), then surface deposits (scratches, dust, hair) and finally the
capture-time light leak."""


@dataclass(frozen=True)
class SyntheticSample:
    """One rendered artwork scan.

    Attributes:
        clean: ``HxWx3`` uint8, the undamaged artwork (background/mount included).
        image: ``HxWx3`` uint8, the damaged scan.
        mask: ``HxW`` uint8: 0 Clean, 1..15 damage ids, 255 outside the artwork.
        material: one of :data:`~heritage_damage_seg.data.synthetic.artwork.MATERIALS`.
        content: one of :data:`~heritage_damage_seg.data.synthetic.artwork.CONTENTS`.
    """

    clean: np.ndarray
    image: np.ndarray
    mask: np.ndarray
    material: str
    content: str


@dataclass
class _Canvas:
    image: np.ndarray  # HxWx3 uint8, painted in place
    mask: np.ndarray  # HxW uint8, painted in place
    art: np.ndarray  # HxW bool
    bbox: tuple[int, int, int, int]  # y0, x0, y1, x1 of the artwork
    short_side: float  # short side of the artwork's bounding box


_Window = tuple[slice, slice]
_ColourFn = Callable[[np.ndarray, _Window], np.ndarray]
_Colour = np.ndarray | tuple[float, float, float] | _ColourFn


def _composite(
    canvas: _Canvas,
    cls: int,
    y0: int,
    x0: int,
    alpha: np.ndarray,
    colour: _Colour,
    *,
    min_alpha: float = 0.05,
    min_delta: int = 4,
) -> None:
    """Blend ``colour`` over the box at ``(y0, x0)`` with ``alpha`` and label the visibly changed pixels.

    A pixel is changed (and labelled ``cls``) only when it lies in the artwork, its alpha exceeds
    ``min_alpha`` and the rounded colour moves by at least ``min_delta`` in some channel; all other
    pixels keep their value, so image and mask never disagree. ``colour`` is an RGB triple, an
    array of the box's shape or ``f(before, window)`` returning one, where ``before`` is the float
    colour under the box's visible ``window`` (slices in box coordinates).
    """
    h, w = alpha.shape
    canvas_h, canvas_w = canvas.mask.shape
    top, left = max(y0, 0), max(x0, 0)
    bottom, right = min(y0 + h, canvas_h), min(x0 + w, canvas_w)
    if top >= bottom or left >= right:
        return
    window = (slice(top - y0, bottom - y0), slice(left - x0, right - x0))
    window_alpha = alpha[window]
    eligible = (window_alpha > min_alpha) & canvas.art[top:bottom, left:right]
    if not eligible.any():
        return
    pixels = canvas.image[top:bottom, left:right]  # a view: painted in place
    before = pixels.astype(F32)
    if callable(colour):
        target = colour(before, window)
    else:
        target = np.asarray(colour, F32)
        if target.ndim == 3:
            target = target[window]
    blended = before + window_alpha[..., None] * (target - before)
    after = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    visible = eligible & (np.abs(after.astype(np.int16) - pixels).max(axis=-1) >= min_delta)
    pixels[visible] = after[visible]
    canvas.mask[top:bottom, left:right][visible] = cls


def _random_point(
    rng: np.random.Generator, canvas: _Canvas, edge_prob: float = 0.0
) -> tuple[float, float]:
    """A random ``(y, x)`` in the artwork, or on its bounding-box edge with ``edge_prob``."""
    y0, x0, y1, x1 = canvas.bbox
    if rng.random() < edge_prob:
        side = int(rng.integers(4))
        along = rng.uniform(0.1, 0.9)
        return [
            (y0, x0 + along * (x1 - x0)),
            (y1 - 1, x0 + along * (x1 - x0)),
            (y0 + along * (y1 - y0), x0),
            (y0 + along * (y1 - y0), x1 - 1),
        ][side]
    for _ in range(8):
        y, x = rng.uniform(y0, y1), rng.uniform(x0, x1)
        if canvas.art[int(y), int(x)]:
            break
    return y, x


def _box_around(cy: float, cx: float, h: float, w: float) -> tuple[int, int, int, int]:
    """``(y0, x0, h, w)`` of an integer box at least 3 px a side centred on ``(cy, cx)``."""
    h, w = max(3, int(h)), max(3, int(w))
    return int(cy) - h // 2, int(cx) - w // 2, h, w


def _random_box(
    rng: np.random.Generator,
    canvas: _Canvas,
    size: float,
    scale: tuple[float, float],
    edge_prob: float = 0.0,
) -> tuple[int, int, int, int]:
    """A box around a random point (:func:`_random_point`) whose height and width are ``size``
    times a random factor in ``scale`` (low, high)."""
    cy, cx = _random_point(rng, canvas, edge_prob)
    h = size * rng.uniform(*scale)
    w = size * rng.uniform(*scale)
    return _box_around(cy, cx, h, w)


def _polylines_box(polylines: list[np.ndarray]) -> tuple[int, int, int, int]:
    """``(y0, x0, h, w)`` of a box holding ``(x, y)`` polylines with a 3-px margin."""
    points = np.concatenate(polylines)
    x0, y0 = int(points[:, 0].min()) - 3, int(points[:, 1].min()) - 3
    w, h = int(points[:, 0].max()) - x0 + 4, int(points[:, 1].max()) - y0 + 4
    return y0, x0, h, w


def _drop_shadow(shape: np.ndarray, offset: int) -> np.ndarray:
    """``shape`` (bool) moved ``offset`` px down and right."""
    shadow = np.zeros_like(shape)
    shadow[offset:, offset:] = shape[:-offset, :-offset]
    return shadow


def _polygons_mask(h: int, w: int, polygons: list[list[tuple[float, float]]]) -> np.ndarray:
    """Filled polygons (lists of ``(x, y)`` vertices) rasterised into a ``h x w`` bool mask."""
    layer = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(layer)
    for polygon in polygons:
        draw.polygon(polygon, fill=255)
    return np.asarray(layer) > 0


# The painters: each paints one instance of its class on the canvas (via _composite).


def _paint_material_loss(rng: np.random.Generator, canvas: _Canvas) -> None:
    size = max(10.0, canvas.short_side * rng.uniform(0.1, 0.32))
    y0, x0, h, w = _random_box(rng, canvas, size, (0.6, 1.4), edge_prob=0.35)
    inside = blob_field(rng, h, w, wobble=0.45, fine=0.12) > 0
    rim = dilate(inside, 2 if canvas.short_side > 400 else 1) & ~inside
    texture = value_noise(rng, h, w, max(2.0, size / 10))[..., None] * 8
    light = np.array([234, 224, 202], F32) + rng.normal(0, 6, 3)
    dark = np.array([100, 92, 80], F32) + rng.normal(0, 6, 3)

    def colour(before: np.ndarray, window: _Window) -> np.ndarray:
        # the exposed support contrasts with the picture that was there; the rim is darkened
        support = dark if float(luminance(before).mean()) > 180 else light
        return np.where(inside[window][..., None], support + texture[window], before * 0.5)

    _composite(canvas, MATERIAL_LOSS, y0, x0, (inside | rim).astype(F32), colour, min_delta=6)


def _flake(rng: np.random.Generator, h: int, w: int, size: float) -> np.ndarray:
    """A paint flake of ``size``: a union of 2-6 random polygons in an ``h x w`` box (bool)."""
    polygons = []
    for _ in range(int(rng.integers(2, 7))):
        radius = size * rng.uniform(0.1, 0.28)
        px = w / 2 + rng.uniform(-0.3, 0.3) * size
        py = h / 2 + rng.uniform(-0.3, 0.3) * size
        n_vertices = int(rng.integers(5, 9))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n_vertices))
        radii = radius * rng.uniform(0.45, 1.0, n_vertices)
        xs, ys = px + radii * np.cos(angles), py + radii * np.sin(angles)
        polygons.append(list(zip(xs.tolist(), ys.tolist())))
    return _polygons_mask(h, w, polygons)


def _paint_peel(rng: np.random.Generator, canvas: _Canvas) -> None:
    size = max(12.0, canvas.short_side * rng.uniform(0.12, 0.32))
    cy, cx = _random_point(rng, canvas)
    y0, x0, h, w = _box_around(cy, cx, size * 1.2, size * 1.2)
    flake = _flake(rng, h, w, size)
    shadow = _drop_shadow(flake, max(1, int(size / 25))) & ~flake
    edge = flake & ~erode(flake, 1)
    lift = np.array([236, 230, 218], F32)

    def colour(before: np.ndarray, window: _Window) -> np.ndarray:
        lifted = before * 0.55 + lift * 0.45
        lifted = np.where(edge[window][..., None], before * 0.25 + 255 * 0.75, lifted)
        return np.where(shadow[window][..., None], before * 0.4, lifted)

    _composite(canvas, PEEL, y0, x0, (flake | shadow).astype(F32), colour, min_delta=6)


def _paint_dust(rng: np.random.Generator, canvas: _Canvas) -> None:
    art_y0, art_x0, art_y1, art_x1 = canvas.bbox
    if rng.random() < 0.4:  # a light sprinkle over the whole artwork
        y0, x0, h, w = art_y0, art_x0, art_y1 - art_y0, art_x1 - art_x0
        density = rng.uniform(0.0015, 0.004)
    else:  # a denser patch
        size = canvas.short_side * rng.uniform(0.15, 0.4)
        y0, x0, h, w = _random_box(rng, canvas, size, (0.7, 1.3))
        density = rng.uniform(0.008, 0.02)
    n_specks = int(h * w * density) + 6
    ys, xs = rng.integers(0, h, n_specks), rng.integers(0, w, n_specks)
    alpha = np.zeros((h, w), F32)
    opacity = rng.uniform(0.6, 1.0, n_specks).astype(F32)
    alpha[ys, xs] = opacity
    n_big = max(1, n_specks // 4)  # the first quarter are 2x2 specks
    big_ys, big_xs, big_opacity = ys[:n_big], xs[:n_big], opacity[:n_big]
    for dy, dx in ((0, 1), (1, 0), (1, 1)):
        alpha[np.minimum(big_ys + dy, h - 1), np.minimum(big_xs + dx, w - 1)] = big_opacity

    def colour(before: np.ndarray, window: _Window) -> np.ndarray:
        return np.where((luminance(before) < 150)[..., None], np.float32(242), np.float32(95))

    _composite(canvas, DUST, y0, x0, alpha, colour, min_alpha=0.3, min_delta=12)


def _paint_scratch(rng: np.random.Generator, canvas: _Canvas) -> None:
    length = max(12.0, canvas.short_side * rng.uniform(0.25, 0.8))
    angle = rng.uniform(0, math.pi)
    py, px = _random_point(rng, canvas)
    dx, dy = math.cos(angle), math.sin(angle)
    bend = rng.uniform(-0.08, 0.08) * length
    strokes = []
    for i in range(int(rng.integers(1, 4))):  # 1-3 parallel strokes
        offset = i * rng.uniform(3, 9)
        stroke_length = length * rng.uniform(0.5, 1.0)
        along = np.linspace(-0.5, 0.5, 24)[:, None]
        points = (
            np.array([px - dy * offset, py + dx * offset])
            + along * stroke_length * np.array([dx, dy])
            + (1 - 4 * along * along) * bend * np.array([-dy, dx])
        )
        strokes.append(points)
    y0, x0, h, w = _polylines_box(strokes)
    line_width = int(rng.integers(1, 3 + (canvas.short_side > 600)))
    alpha = draw_lines(h, w, [points - [x0, y0] for points in strokes], line_width)

    def colour(before: np.ndarray, window: _Window) -> np.ndarray:
        return np.where(
            (luminance(before) > 200)[..., None], before * 0.7, before + (255 - before) * 0.75
        )

    _composite(canvas, SCRATCH, y0, x0, alpha * 0.95, colour, min_delta=10)


def _paint_hair(rng: np.random.Generator, canvas: _Canvas) -> None:
    length = max(15.0, canvas.short_side * rng.uniform(0.15, 0.45))
    py, px = _random_point(rng, canvas)
    points = random_curve(
        rng, px, py, rng.uniform(0, 2 * math.pi), length, rng.uniform(3.0, 8.0), step=1.0
    )
    y0, x0, h, w = _polylines_box([points])
    alpha = draw_lines(h, w, [points - [x0, y0]], 1 if canvas.short_side < 300 else 2)
    dark = np.array([38, 32, 28], F32)
    light = np.array([210, 205, 195], F32)

    def colour(before: np.ndarray, window: _Window) -> np.ndarray:
        return np.where((luminance(before) > 95)[..., None], dark, light)

    _composite(canvas, HAIR, y0, x0, alpha * 0.9, colour, min_delta=14)


def _paint_dirt(rng: np.random.Generator, canvas: _Canvas) -> None:
    size = max(10.0, canvas.short_side * rng.uniform(0.16, 0.45))
    y0, x0, h, w = _random_box(rng, canvas, size, (0.6, 1.4))
    field = blob_field(rng, h, w, wobble=0.5)
    alpha = (
        np.clip(field / 0.45, 0, 1)
        * rng.uniform(0.35, 0.6)
        * (0.8 + 0.25 * value_noise(rng, h, w, max(2.0, size / 12)))
    )
    grime = np.clip(np.array([95, 75, 50], F32) + rng.normal(0, 10, 3), 0, 255)

    def colour(before: np.ndarray, window: _Window) -> np.ndarray:
        return before * 0.35 + grime * 0.65

    _composite(canvas, DIRT, y0, x0, alpha.astype(F32), colour, min_alpha=0.1, min_delta=8)


def _paint_fold(rng: np.random.Generator, canvas: _Canvas) -> None:
    y0, x0, y1, x1 = canvas.bbox
    h, w = y1 - y0, x1 - x0
    py, px = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    if rng.random() < 0.7:  # mostly along a side of the sheet
        angle = rng.choice([0.0, math.pi / 2]) + math.radians(rng.normal(0, 3))
    else:
        angle = rng.uniform(0, math.pi)
    normal_x, normal_y = -math.sin(angle), math.cos(angle)
    half_width = max(1.6, canvas.short_side * rng.uniform(0.008, 0.018))
    yy = np.arange(h, dtype=F32)[:, None]
    xx = np.arange(w, dtype=F32)[None, :]
    wander = value_noise(rng, h, w, canvas.short_side * 0.2) * half_width * 0.5
    # signed distance from the fold line, in half-widths of the band (|across| < 1 on it)
    across = ((xx - px) * normal_x + (yy - py) * normal_y + wander) / half_width
    band = np.abs(across) < 1
    if not band.any():
        return
    rows, cols = np.flatnonzero(band.any(1)), np.flatnonzero(band.any(0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    band_across = across[top:bottom, left:right]

    def colour(before: np.ndarray, window: _Window) -> np.ndarray:
        side = band_across[window][..., None]
        light = before + (255 - before) * 0.45 * (1 - side)
        dark = before * (1 - 0.4 * (1 + side))
        shaded = np.where(side > 0, light, dark)
        return np.where(np.abs(side) < 0.22, before * 0.55, shaded)  # the crease itself

    alpha = band[top:bottom, left:right].astype(F32)
    _composite(canvas, FOLD, y0 + top, x0 + left, alpha, colour, min_delta=6)


def _handwriting(
    rng: np.random.Generator, line_height: float, n_lines: int, line_length: float, slant: float
) -> list[np.ndarray]:
    """Cursive-looking scribble: ``n_lines`` lines of words, each word one looping polyline."""
    words = []
    for line in range(n_lines):
        base_y = line_height * (1.5 + line * 1.7)
        x = line_height + rng.uniform(0, line_height)
        while x < line_length:
            word_length = line_height * rng.uniform(1.2, 4.5)
            n_loops = max(1, int(word_length / (line_height * 0.45)))
            phase = np.linspace(0, n_loops * 2 * math.pi, n_loops * 14)
            loop_heights = rng.uniform(0.35, 1.0, n_loops)
            tall = np.where(rng.random(n_loops) < 0.2, 1.9, 1.0)  # ascenders
            heights = np.repeat(loop_heights * tall, 14)
            xs = (
                x
                + phase / (n_loops * 2 * math.pi) * word_length
                + 0.14 * line_height * np.sin(phase)
            )
            ys = base_y - 0.5 * line_height * heights * (1 - np.cos(phase)) * 0.55
            xs = xs + (base_y - ys) * slant
            words.append(np.stack([xs, ys], 1))
            x += word_length + line_height * rng.uniform(0.4, 1.0)
    return words


def _rotated(polylines: list[np.ndarray], angle: float, h: int, w: int) -> list[np.ndarray]:
    """``(x, y)`` polylines turned by ``angle`` about the centre of a ``h x w`` box."""
    cos, sin = math.cos(angle), math.sin(angle)
    return [
        np.stack(
            [
                (points[:, 0] - w / 2) * cos - (points[:, 1] - h / 2) * sin + w / 2,
                (points[:, 0] - w / 2) * sin + (points[:, 1] - h / 2) * cos + h / 2,
            ],
            1,
        )
        for points in polylines
    ]


def _paint_writing(rng: np.random.Generator, canvas: _Canvas) -> None:
    line_height = max(7.0, canvas.short_side * rng.uniform(0.03, 0.06))
    n_lines = int(rng.integers(1, 4))
    line_length = max(3 * line_height, canvas.short_side * rng.uniform(0.2, 0.5))
    slant = rng.uniform(-0.3, 0.1)
    words = _handwriting(rng, line_height, n_lines, line_length, slant)
    h, w = int(line_height * (n_lines * 1.7 + 1.5)), int(line_length + 3 * line_height)
    pen_width = max(1, round(line_height / 6))
    angle = math.radians(rng.normal(0, 6))
    py, px = _random_point(rng, canvas)
    y0, x0 = int(py - h / 2), int(px - w / 2)
    alpha = draw_lines(h, w, _rotated(words, angle, h, w), pen_width)
    inks = [(25, 30, 110), (22, 22, 28), (70, 45, 25), (40, 40, 120)]
    ink = np.array(inks[int(rng.integers(len(inks)))], F32)
    _composite(canvas, WRITING, y0, x0, alpha * rng.uniform(0.8, 0.95), ink, min_delta=12)


def _craquelure(rng: np.random.Generator, h: int, w: int, cell: float, width: float) -> np.ndarray:
    """Edges of a warped jittered-grid Voronoi tessellation (a craquelure network), bool ``h x w``."""
    grid_rows, grid_cols = int(h / cell) + 4, int(w / cell) + 4
    jitter = (grid_rows, grid_cols)
    seed_y = (np.arange(grid_rows)[:, None] - 1 + rng.uniform(0.1, 0.9, jitter)) * cell
    seed_x = (np.arange(grid_cols)[None, :] - 1 + rng.uniform(0.1, 0.9, jitter)) * cell
    warp = cell * 0.25
    yy = np.arange(h, dtype=F32)[:, None] + value_noise(rng, h, w, cell * 1.5) * warp
    xx = np.arange(w, dtype=F32)[None, :] + value_noise(rng, h, w, cell * 1.5) * warp
    cell_row = np.clip(np.floor(yy / cell).astype(np.int64) + 1, 1, grid_rows - 2)
    cell_col = np.clip(np.floor(xx / cell).astype(np.int64) + 1, 1, grid_cols - 2)
    squared_distances = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near_y = seed_y[cell_row + dy, cell_col + dx]
            near_x = seed_x[cell_row + dy, cell_col + dx]
            squared_distances.append((yy - near_y) ** 2 + (xx - near_x) ** 2)
    nearest_two = np.partition(np.stack(squared_distances), 1, axis=0)
    return (np.sqrt(nearest_two[1]) - np.sqrt(nearest_two[0])) < width


def _craquelure_patch(
    rng: np.random.Generator, canvas: _Canvas, cy: float, cx: float, size: float
) -> tuple[int, int, np.ndarray]:
    """A blob-shaped patch of craquelure around ``(cy, cx)``: ``(y0, x0, alpha)``."""
    h = size * rng.uniform(0.7, 1.3)
    w = size * rng.uniform(0.7, 1.3)
    y0, x0, h, w = _box_around(cy, cx, h, w)
    cell = max(5.0, canvas.short_side * rng.uniform(0.02, 0.05))
    edges = _craquelure(rng, h, w, cell, 1.5 if canvas.short_side < 400 else 2.5)
    return y0, x0, (edges & (blob_field(rng, h, w, wobble=0.4) > 0)).astype(F32)


def _branching_crack(
    rng: np.random.Generator, canvas: _Canvas, cy: float, cx: float, size: float
) -> tuple[int, int, np.ndarray]:
    """One jagged crack of length ``size`` from ``(cy, cx)`` with 2-5 branches: ``(y0, x0, alpha)``."""
    main = random_curve(rng, cx, cy, rng.uniform(0, 2 * math.pi), size, rng.uniform(3, 8), step=2.0)
    main += rng.normal(0, 0.6, main.shape)
    cracks = [main]
    for _ in range(int(rng.integers(2, 6))):
        start = main[int(rng.integers(len(main)))]
        branch = random_curve(
            rng,
            start[0],
            start[1],
            rng.uniform(0, 2 * math.pi),
            size * rng.uniform(0.15, 0.45),
            rng.uniform(3, 8),
            step=2.0,
        )
        cracks.append(branch + rng.normal(0, 0.5, branch.shape))
    y0, x0, h, w = _polylines_box(cracks)
    line_width = 1 if canvas.short_side < 400 else 2
    return y0, x0, draw_lines(h, w, [points - [x0, y0] for points in cracks], line_width)


def _paint_cracks(rng: np.random.Generator, canvas: _Canvas) -> None:
    size = max(16.0, canvas.short_side * rng.uniform(0.2, 0.5))
    cy, cx = _random_point(rng, canvas)
    if rng.random() < 0.5:
        y0, x0, alpha = _craquelure_patch(rng, canvas, cy, cx, size)
    else:
        y0, x0, alpha = _branching_crack(rng, canvas, cy, cx, size)

    def colour(before: np.ndarray, window: _Window) -> np.ndarray:
        return before * 0.28

    _composite(canvas, CRACKS, y0, x0, alpha * 0.92, colour, min_delta=10)


def _paint_staining(rng: np.random.Generator, canvas: _Canvas) -> None:
    size = max(16.0, canvas.short_side * rng.uniform(0.3, 0.65))
    y0, x0, h, w = _random_box(rng, canvas, size, (0.6, 1.4), edge_prob=0.25)
    field = blob_field(rng, h, w, wobble=0.4, fine=0.03)
    inside = field > 0
    # a mottled translucent body plus a darker tide line along the edge
    alpha = inside * (
        rng.uniform(0.35, 0.55) * (0.8 + 0.3 * value_noise(rng, h, w, size * 0.2))
        + rng.uniform(0.35, 0.6) * np.exp(-np.clip(field, 0, None) / 0.04)
    )
    tint = np.clip(np.array([212, 165, 92], F32) + rng.normal(0, 8, 3), 0, 255) / 255.0

    def colour(before: np.ndarray, window: _Window) -> np.ndarray:
        return before * tint * 0.85

    alpha = np.clip(alpha, 0, 1).astype(F32)
    _composite(canvas, STAINING, y0, x0, alpha, colour, min_alpha=0.08, min_delta=6)


def _square(centre: float, half_side: float) -> list[float]:
    """``[x0, y0, x1, y1]`` of a square centred on ``(centre, centre)``."""
    return [centre - half_side, centre - half_side, centre + half_side, centre + half_side]


def _stamp_frame(
    rng: np.random.Generator,
    draw: ImageDraw.ImageDraw,
    centre: float,
    radius: float,
    line_width: int,
    glyph: float,
) -> tuple[list[np.ndarray], float]:
    """Draws a round (two rings, ticks between them) or rectangular stamp frame; returns the ticks
    still to draw and the half-width of the text area inside the frame."""
    ticks: list[np.ndarray] = []
    if rng.random() < 0.6:
        draw.ellipse(_square(centre, radius), outline=255, width=line_width)
        draw.ellipse(_square(centre, 0.72 * radius), outline=255, width=max(1, line_width // 2))
        for theta in np.arange(0, 2 * math.pi, glyph * 1.3 / (0.86 * radius)):
            if rng.random() < 0.85:
                dx, dy = math.cos(theta), math.sin(theta)
                start = [centre + dx * 0.8 * radius, centre + dy * 0.8 * radius]
                end = [centre + dx * 0.92 * radius, centre + dy * 0.92 * radius]
                ticks.append(np.array([start, end]))
        return ticks, 0.45 * radius
    half_height = radius * rng.uniform(0.5, 0.8)
    draw.rectangle(
        [centre - radius, centre - half_height, centre + radius, centre + half_height],
        outline=255,
        width=line_width,
    )
    return ticks, min(half_height, radius) * 0.7


def _stamp_text(
    rng: np.random.Generator, centre: float, half_width: float, glyph: float
) -> list[np.ndarray]:
    """Rows of short slanted strokes standing for the stamp's lettering."""
    strokes = []
    for row in np.arange(-half_width * 0.6, half_width * 0.61, glyph * 2.2):
        x = centre - half_width
        while x < centre + half_width - glyph:
            glyph_height = glyph * rng.uniform(0.6, 1.3)
            top = [x, centre + row - glyph_height / 2]
            bottom = [x + rng.uniform(-0.5, 0.5) * glyph, centre + row + glyph_height / 2]
            strokes.append(np.array([top, bottom]))
            x += glyph * rng.uniform(0.6, 1.1)
    return strokes


def _paint_stamp(rng: np.random.Generator, canvas: _Canvas) -> None:
    radius = max(9.0, canvas.short_side * rng.uniform(0.06, 0.13))
    cy, cx = _random_point(rng, canvas)
    size = int(2 * radius + 6)
    y0, x0 = int(cy - size / 2), int(cx - size / 2)
    centre = size / 2
    stamp = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(stamp)
    line_width = max(1, int(radius / 10))
    glyph = max(2.0, radius * 0.12)
    strokes, text_half_width = _stamp_frame(rng, draw, centre, radius, line_width, glyph)
    strokes += _stamp_text(rng, centre, text_half_width, glyph)
    for stroke in strokes:
        draw.line(stroke.ravel().tolist(), fill=255, width=max(1, line_width // 2 + (radius > 30)))
    stamp = stamp.rotate(rng.uniform(0, 360), resample=Image.Resampling.NEAREST)
    inking = np.clip(0.85 + 0.35 * value_noise(rng, size, size, max(2.0, radius / 5)), 0, 1)
    alpha = np.asarray(stamp, dtype=F32) / 255.0 * inking * 0.9
    inks = [(190, 35, 45), (45, 60, 160), (110, 50, 140), (200, 60, 50)]
    ink = np.array(inks[int(rng.integers(len(inks)))], F32)
    _composite(canvas, STAMP, y0, x0, alpha.astype(F32), ink, min_alpha=0.3, min_delta=12)


def _paint_sticker(rng: np.random.Generator, canvas: _Canvas) -> None:
    sticker_w = max(12.0, canvas.short_side * rng.uniform(0.12, 0.28))
    sticker_h = sticker_w * rng.uniform(0.35, 0.8)
    angle = math.radians(rng.uniform(-8, 8))
    cy, cx = _random_point(rng, canvas)
    size = int(math.hypot(sticker_w, sticker_h)) + 8
    y0, x0 = int(cy - size / 2), int(cx - size / 2)
    centre = size / 2
    cos, sin = math.cos(angle), math.sin(angle)

    def quad(
        xa: float, ya: float, xb: float, yb: float, offset: float = 0.0
    ) -> list[tuple[float, float]]:
        """The rectangle ``(xa, ya)-(xb, yb)`` in sticker coordinates, turned and placed in the box."""
        corners = [(xa, ya), (xb, ya), (xb, yb), (xa, yb)]
        return [
            (centre + x * cos - y * sin + offset, centre + x * sin + y * cos + offset)
            for x, y in corners
        ]

    left, top, right, bottom = -sticker_w / 2, -sticker_h / 2, sticker_w / 2, sticker_h / 2
    n_lines = int(rng.integers(2, 6))
    line_pitch = sticker_h / (n_lines + 2)
    print_lines = []
    for i in range(n_lines):
        line_top = top + line_pitch * (i + 1.2)
        line_end = left + sticker_w * rng.uniform(0.4, 0.9)
        line_bottom = line_top + max(1.0, line_pitch * 0.35)
        print_lines.append(quad(left + sticker_w * 0.1, line_top, line_end, line_bottom))
    border_band = []
    if rng.random() < 0.35:
        border_band.append(quad(left, top, right, top + max(1.5, sticker_h * 0.12)))
    shadow_offset = max(1.0, sticker_w / 30)
    body = _polygons_mask(size, size, [quad(left, top, right, bottom)])
    shadow = _polygons_mask(size, size, [quad(left, top, right, bottom, shadow_offset)]) & ~body
    printed = _polygons_mask(size, size, print_lines) & body
    border = _polygons_mask(size, size, border_band) & body
    paper = np.array([242, 238, 226], F32) + rng.normal(0, 5, 3)

    def colour(before: np.ndarray, window: _Window) -> np.ndarray:
        out = np.where(shadow[window][..., None], before * 0.6, paper)
        out = np.where(printed[window][..., None], np.array([60, 60, 66], F32), out)
        return np.where(border[window][..., None], np.array([200, 45, 45], F32), out)

    _composite(canvas, STICKER, y0, x0, (body | shadow).astype(F32), colour, min_delta=5)


def _puncture_centres(
    rng: np.random.Generator, n_holes: int, radius: float, spread: float, size: int
) -> list[tuple[float, float]]:
    """Hole centres ``(x, y)`` in a ``size`` box: in a row, or scattered over ``spread``."""
    if rng.random() < 0.5:  # a row (pins, staples, sewing holes)
        angle = rng.uniform(0, math.pi)
        gap = radius * rng.uniform(3, 6)
        return [
            (
                size / 2 + (i - (n_holes - 1) / 2) * gap * math.cos(angle),
                size / 2 + (i - (n_holes - 1) / 2) * gap * math.sin(angle),
            )
            for i in range(n_holes)
        ]
    return [
        (size / 2 + rng.uniform(-0.5, 0.5) * spread, size / 2 + rng.uniform(-0.5, 0.5) * spread)
        for _ in range(n_holes)
    ]


def _paint_puncture(rng: np.random.Generator, canvas: _Canvas) -> None:
    n_holes = int(rng.integers(1, 6))
    radius = max(1.5, canvas.short_side * rng.uniform(0.007, 0.02))
    spread = max(6 * radius, canvas.short_side * 0.06)
    size = int(spread + 6 * radius + 6)
    cy, cx = _random_point(rng, canvas)
    y0, x0 = int(cy - size / 2), int(cx - size / 2)
    holes, rims = Image.new("L", (size, size), 0), Image.new("L", (size, size), 0)
    draw_hole, draw_rim = ImageDraw.Draw(holes), ImageDraw.Draw(rims)
    centres = _puncture_centres(rng, n_holes, radius, spread, size)
    rim_radius = radius + max(1.0, radius * 0.45)
    for x, y in centres:
        stretch = rng.uniform(0.8, 1.2)
        draw_rim.ellipse(
            [x - rim_radius * stretch, y - rim_radius, x + rim_radius * stretch, y + rim_radius],
            fill=255,
        )
        draw_hole.ellipse(
            [x - radius * stretch, y - radius, x + radius * stretch, y + radius], fill=255
        )
    hole = np.asarray(holes) > 0
    rim = (np.asarray(rims) > 0) & ~hole
    dark = np.array([18, 15, 12], F32)

    def colour(before: np.ndarray, window: _Window) -> np.ndarray:
        return np.where(hole[window][..., None], dark, before * 0.5)

    _composite(canvas, PUNCTURE, y0, x0, (hole | rim).astype(F32), colour, min_delta=6)


def _paint_burn(rng: np.random.Generator, canvas: _Canvas) -> None:
    size = max(12.0, canvas.short_side * rng.uniform(0.15, 0.38))
    y0, x0, h, w = _random_box(rng, canvas, size, (0.6, 1.4), edge_prob=0.5)
    field = blob_field(rng, h, w, wobble=0.5, fine=0.1)
    depth = np.clip(field / 0.35, 0, 1)[..., None]  # 0 at the edge of the char, 1 at its core
    char = np.array([120, 68, 30], F32) * (1 - depth) + np.array([22, 16, 12], F32) * depth
    scorch = np.array([165, 108, 52], F32)
    alpha = np.where(field > 0, 1.0, np.clip(0.6 * (1 + field / 0.12), 0, 1)).astype(F32)
    colour = np.where((field > 0)[..., None], char, scorch)
    _composite(canvas, BURN_MARKS, y0, x0, alpha, colour, min_alpha=0.12, min_delta=8)


def _paint_lightleak(rng: np.random.Generator, canvas: _Canvas) -> None:
    art_y0, art_x0, art_y1, art_x1 = canvas.bbox
    side = int(rng.integers(4))  # top, bottom, left, right
    along_len = (art_x1 - art_x0) if side < 2 else (art_y1 - art_y0)
    across_len = (art_y1 - art_y0) if side < 2 else (art_x1 - art_x0)
    band = max(6.0, canvas.short_side * rng.uniform(0.15, 0.35))
    depth = min(across_len, int(band * 2.5))
    inwards = np.arange(depth, dtype=F32)[:, None]
    along = np.arange(along_len, dtype=F32)[None, :]
    centre, spread = rng.uniform(0, along_len), along_len * rng.uniform(0.2, 0.5)
    reach = band * (1 + 0.35 * value_noise(rng, depth, along_len, band))
    falloff = np.exp(-((inwards / reach) ** 2))
    alpha = rng.uniform(0.75, 0.95) * falloff * np.exp(-0.5 * ((along - centre) / spread) ** 2)
    if side == 0:  # top
        y0, x0 = art_y0, art_x0
    elif side == 1:  # bottom
        alpha, y0, x0 = alpha[::-1], art_y1 - depth, art_x0
    elif side == 2:  # left
        alpha, y0, x0 = alpha.T, art_y0, art_x0
    else:  # right
        alpha, y0, x0 = alpha.T[:, ::-1], art_y0, art_x1 - depth
    glow = np.array([255, rng.uniform(70, 150), rng.uniform(20, 60)], F32)

    def colour(before: np.ndarray, window: _Window) -> np.ndarray:
        screen = 255 - (255 - before) * (255 - glow) / 255
        return screen * 0.5 + glow * 0.5  # screen blend, tinted so it also shows on white paper

    alpha = np.ascontiguousarray(alpha, dtype=F32)
    _composite(canvas, LIGHTLEAK, y0, x0, alpha, colour, min_alpha=0.2, min_delta=10)


_PAINTERS: dict[int, Callable[[np.random.Generator, _Canvas], None]] = {
    MATERIAL_LOSS: _paint_material_loss,
    PEEL: _paint_peel,
    DUST: _paint_dust,
    SCRATCH: _paint_scratch,
    HAIR: _paint_hair,
    DIRT: _paint_dirt,
    FOLD: _paint_fold,
    WRITING: _paint_writing,
    CRACKS: _paint_cracks,
    STAINING: _paint_staining,
    STAMP: _paint_stamp,
    STICKER: _paint_sticker,
    PUNCTURE: _paint_puncture,
    BURN_MARKS: _paint_burn,
    LIGHTLEAK: _paint_lightleak,
}

_MAX_INSTANCES = {FOLD: 2, STAINING: 2, LIGHTLEAK: 1, DUST: 2}
"""The most instances of a class painted on one artwork (4 where not listed)."""

_MATERIAL_WEIGHTS: dict[str, dict[int, float]] = {
    "Paper": {
        WRITING: 2.0,
        STAMP: 2.0,
        STICKER: 1.5,
        FOLD: 2.0,
        STAINING: 1.5,
        PUNCTURE: 1.5,
        MATERIAL_LOSS: 1.5,
        LIGHTLEAK: 0.5,
    },
    "Parchment": {WRITING: 2.0, STAINING: 1.5, FOLD: 1.5, MATERIAL_LOSS: 1.5, LIGHTLEAK: 0.5},
    "Glass": {
        CRACKS: 2.0,
        SCRATCH: 2.0,
        DIRT: 1.5,
        MATERIAL_LOSS: 1.5,
        PEEL: 0.5,
        WRITING: 0.3,
        FOLD: 0.1,
        LIGHTLEAK: 0.5,
    },
    "Tesserae": {
        MATERIAL_LOSS: 3.0,
        DIRT: 1.5,
        CRACKS: 1.5,
        FOLD: 0.1,
        WRITING: 0.3,
        STAMP: 0.2,
        STICKER: 0.3,
        LIGHTLEAK: 0.4,
    },
    "Wood": {
        CRACKS: 2.0,
        PEEL: 2.0,
        MATERIAL_LOSS: 1.5,
        SCRATCH: 1.5,
        BURN_MARKS: 1.5,
        FOLD: 0.1,
        LIGHTLEAK: 0.5,
    },
    "Canvas": {CRACKS: 2.5, PEEL: 2.0, MATERIAL_LOSS: 1.5, DIRT: 1.5, FOLD: 0.5, LIGHTLEAK: 0.5},
    "Lime plaster": {
        MATERIAL_LOSS: 2.5,
        PEEL: 2.0,
        CRACKS: 2.0,
        STAINING: 1.5,
        DIRT: 1.5,
        FOLD: 0.1,
        STICKER: 0.3,
        LIGHTLEAK: 0.4,
    },
    "Film emulsion": {LIGHTLEAK: 3.0, SCRATCH: 2.5, DUST: 2.5, HAIR: 2.5, STAMP: 0.3},
    "Textile": {
        STAINING: 2.0,
        DIRT: 2.0,
        MATERIAL_LOSS: 1.5,
        BURN_MARKS: 1.5,
        PUNCTURE: 1.5,
        CRACKS: 0.3,
        LIGHTLEAK: 0.5,
    },
    "Ceramic": {
        CRACKS: 2.0,
        MATERIAL_LOSS: 2.0,
        SCRATCH: 1.5,
        FOLD: 0.1,
        WRITING: 0.5,
        LIGHTLEAK: 0.4,
    },
}
"""Relative chance of each damage class per material (1.0 where not listed): a plausible, not
measured, prior."""


def _blank_canvas(clean: np.ndarray, art: np.ndarray) -> _Canvas:
    """A canvas holding a copy of the clean scan and a mask that is Clean on the artwork and
    :data:`~heritage_damage_seg.classes.IGNORE_INDEX` outside it."""
    rows, cols = np.flatnonzero(art.any(1)), np.flatnonzero(art.any(0))
    bbox = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    mask = np.where(art, np.uint8(CLEAN), np.uint8(IGNORE_INDEX)).astype(np.uint8)
    short_side = float(min(bbox[2] - bbox[0], bbox[3] - bbox[1]))
    return _Canvas(clean.copy(), mask, art, bbox, short_side)


def _choose_classes(rng: np.random.Generator, material: str) -> set[int]:
    """3-7 distinct damage classes, drawn with the material's weights."""
    material_weights = _MATERIAL_WEIGHTS[material]
    weights = np.array([material_weights.get(cls, 1.0) for cls in DAMAGE_CLASSES])
    n_classes = int(rng.integers(3, 8))
    picks = rng.choice(
        len(DAMAGE_CLASSES), size=n_classes, replace=False, p=weights / weights.sum()
    )
    return {DAMAGE_CLASSES[pick] for pick in picks.tolist()}


def _nudge_unchanged(image: np.ndarray, clean: np.ndarray, mask: np.ndarray) -> None:
    """Guarantee "labelled damage ⇒ differs from the clean artwork" even if a later layer happened
    to restore a pixel's exact original colour (very rare): nudge it visibly, in place."""
    damaged = (mask != CLEAN) & (mask != IGNORE_INDEX)
    unchanged = damaged & (image == clean).all(axis=-1)
    if unchanged.any():
        original = clean[unchanged].astype(np.int16)
        image[unchanged] = np.where(original < 128, original + 12, original - 12).astype(np.uint8)


def render_sample(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    material: str,
    content: str,
    background: bool,
) -> SyntheticSample:
    """Render one synthetic damaged scan of ``height x width`` pixels.

    Args:
        rng: the only source of randomness (same state ⇒ same sample).
        height, width: scan size in pixels (each >= 32).
        material: one of :data:`~heritage_damage_seg.data.synthetic.artwork.MATERIALS`;
            tints/textures the artwork and biases which damage appears.
        content: one of :data:`~heritage_damage_seg.data.synthetic.artwork.CONTENTS`; the kind
            of picture.
        background: put the artwork on a mount / scanner bed (mask 255 there).

    Returns:
        A :class:`SyntheticSample`; 3-7 damage classes with 1-4 instances each are painted in
        :data:`PAINT_ORDER`.
    """
    height = checked_int("height", height, MIN_SIDE)
    width = checked_int("width", width, MIN_SIDE)
    if material not in MATERIALS:
        raise ValueError(f"material must be one of {MATERIALS}, got {material!r}")
    if content not in CONTENTS:
        raise ValueError(f"content must be one of {CONTENTS}, got {content!r}")
    clean, art = render_clean(rng, height, width, material, content, bool(background))
    canvas = _blank_canvas(clean, art)
    chosen = _choose_classes(rng, material)
    for cls in PAINT_ORDER:
        if cls in chosen:
            for _ in range(int(rng.integers(1, _MAX_INSTANCES.get(cls, 4) + 1))):
                _PAINTERS[cls](rng, canvas)
    _nudge_unchanged(canvas.image, clean, canvas.mask)
    return SyntheticSample(
        clean=clean, image=canvas.image, mask=canvas.mask, material=material, content=content
    )
