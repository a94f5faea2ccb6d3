"""Small numeric helpers shared by the artwork and damage painters: smooth noise, blob shapes,
luminance, morphology, rasterised lines and random curves (all vectorised NumPy plus PIL)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

F32 = np.float32
"""The working float type of every painter (short, because it appears in most expressions)."""

MIN_SIDE = 32
"""The smallest scan side the generator accepts, in pixels."""


def checked_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an ``int`` if it is an integer ``>= minimum`` (bools refused); else a
    :class:`ValueError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def value_noise(
    rng: np.random.Generator, height: int, width: int, cell_y: float, cell_x: float | None = None
) -> np.ndarray:
    """Smooth value noise (``height x width`` float32, roughly unit scale): a coarse normal grid
    upsampled, with one grid cell every ``cell_y`` rows and ``cell_x`` (default ``cell_y``) columns."""
    cell_x = cell_y if cell_x is None else cell_x
    grid_rows = max(2, int(math.ceil(height / max(cell_y, 1.0))) + 1)
    grid_cols = max(2, int(math.ceil(width / max(cell_x, 1.0))) + 1)
    grid = rng.standard_normal((grid_rows, grid_cols), dtype=np.float32)
    upsampled = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(upsampled, dtype=F32)


def blob_field(
    rng: np.random.Generator,
    height: int,
    width: int,
    wobble: float,
    fine: float = 0.0,
    cell: float = 0.35,
) -> np.ndarray:
    """An irregular blob filling a ``height x width`` box: positive inside, negative outside (and at
    the box edge). ``wobble`` scales the outline's coarse noise (cells of ``cell`` times the box),
    ``fine`` adds a 3-px noise for ragged edges."""
    yy = ((np.arange(height, dtype=F32) + 0.5) / height * 2 - 1)[:, None]
    xx = ((np.arange(width, dtype=F32) + 0.5) / width * 2 - 1)[None, :]
    radius = np.sqrt(yy * yy + xx * xx)
    field = (
        1.0
        - radius
        + wobble * value_noise(rng, height, width, height * cell, width * cell)
        - 4.0 * np.clip(radius - 0.88, 0, None)
    )
    if fine:
        field += fine * value_noise(rng, height, width, 3.0)
    return field.astype(F32, copy=False)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an ``...x3`` RGB array."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """A boolean mask grown by ``radius`` pixels (square structuring element)."""
    if radius <= 0:
        return mask
    grown = Image.fromarray(mask.astype(np.uint8) * 255).filter(
        ImageFilter.MaxFilter(2 * radius + 1)
    )
    return np.asarray(grown) > 0


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """A boolean mask shrunk by ``radius`` pixels (square structuring element)."""
    if radius <= 0:
        return mask
    shrunk = Image.fromarray(mask.astype(np.uint8) * 255).filter(
        ImageFilter.MinFilter(2 * radius + 1)
    )
    return np.asarray(shrunk) > 0


def draw_lines(height: int, width: int, polylines: list[np.ndarray], line_width: int) -> np.ndarray:
    """Rasterise ``(n, 2)`` arrays of ``(x, y)`` points as lines; returns a ``height x width`` 0/1
    float32 alpha."""
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    for points in polylines:
        if len(points) >= 2:
            draw.line(
                points.ravel().tolist(),
                fill=255,
                width=int(line_width),
                joint="curve" if line_width > 2 else None,
            )
    return np.asarray(image, dtype=F32) / 255.0


def random_curve(
    rng: np.random.Generator,
    x0: float,
    y0: float,
    angle: float,
    length: float,
    wiggle: float,
    step: float = 1.5,
) -> np.ndarray:
    """A smooth random curve of ``length`` px starting at ``(x0, y0)`` heading ``angle``, as
    ``(n, 2)`` ``(x, y)`` points ``step`` px apart; ``wiggle`` = curvature scale."""
    n_points = max(2, int(length / step))
    n_knots = max(2, n_points // 12)
    curvature = np.interp(
        np.linspace(0, n_knots - 1, n_points), np.arange(n_knots), rng.normal(0, wiggle, n_knots)
    )
    heading = angle + np.cumsum(curvature) * step / max(length, 1.0) * 6.0
    xs = x0 + np.cumsum(np.cos(heading)) * step
    ys = y0 + np.cumsum(np.sin(heading)) * step
    return np.stack([xs, ys], axis=1)


def upsample_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic upsample of a small float RGB array to ``height x width`` (float32)."""
    if rgb.shape[:2] == (height, width):
        return rgb.astype(F32)
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(rgb[..., channel], dtype=F32)).resize(
                (width, height), Image.Resampling.BICUBIC
            )
        )
        for channel in range(3)
    ]
    return np.stack(channels, axis=-1)


def lowres_shape(height: int, width: int, target: int = 160) -> tuple[int, int]:
    """The shape of a ``height x width`` picture shrunk so its long side is at most ``target``
    (each side at least 8), for painting smooth content cheaply before upsampling."""
    scale = min(1.0, target / max(height, width))
    return max(8, round(height * scale)), max(8, round(width * scale))
