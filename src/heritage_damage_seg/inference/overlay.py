"""The overlay a person looks at first: the scan with its damage painted in the ARTeFACT palette,
downscaled, with a legend of the classes present and their share of the surface."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from heritage_damage_seg.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, colour_lut, slug
from heritage_damage_seg.inference.areas import damage_areas


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def overlay_image(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    max_side: int = 2048,
    alpha: float = 0.55,
    areas: dict[str, Any] | None = None,
) -> Image.Image:
    """The scan with damage classes (1–15) and 255 painted in the ARTeFACT palette (Clean left as
    scanned), downscaled to ``max_side``, with a legend of the classes present and their area
    (``areas``: of the full-resolution mask when ``mask`` is a downscaled copy of it)."""
    height, width = mask.shape
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    areas = areas or damage_areas(mask)
    base = Image.fromarray(image)
    labels = Image.fromarray(mask)
    if scale < 1.0:
        base = base.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
        labels = labels.resize(size, Image.Resampling.NEAREST)
    rgb = np.asarray(base, dtype=np.float32)
    ids = np.asarray(labels)
    colours = colour_lut()[ids].astype(np.float32)
    painted = (ids != 0)[..., None]
    blended = np.where(painted, (1 - alpha) * rgb + alpha * colours, rgb).astype(np.uint8)
    picture = Image.fromarray(blended)

    present = [c for c in range(NUM_CLASSES) if areas[f"{slug(c)}_px"] > 0]
    font_size = max(11, min(24, size[1] // 30))
    font = _font(font_size)
    line = font_size + 6
    entries = [
        (CLASS_NAMES[c], colour_lut()[c], f"{areas[f'{slug(c)}_pct']:.2f}%") for c in present
    ]
    if (mask == IGNORE_INDEX).any():
        entries.append(("outside artwork", colour_lut()[IGNORE_INDEX], ""))
    legend_w = 14 * font_size
    legend_h = max(size[1], line * (len(entries) + 2))
    canvas = Image.new("RGB", (size[0] + legend_w, legend_h), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0 = size[0] + 8
    draw.text((x0, 4), f"damaged {areas['damaged_pct']:.2f}%", fill=(0, 0, 0), font=font)
    for i, (name, colour, pct) in enumerate(entries, start=1):
        y = 4 + i * line
        draw.rectangle(
            (x0, y + 2, x0 + font_size, y + 2 + font_size),
            fill=tuple(int(v) for v in colour),
            outline=(0, 0, 0),
        )
        draw.text((x0 + font_size + 6, y), f"{name} {pct}".strip(), fill=(0, 0, 0), font=font)
    return canvas
