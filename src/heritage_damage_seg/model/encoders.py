"""The encoder registry: names users type (``results/segformer_b3/…``) → smp encoders.

Free of torch on purpose: the workflow checks the config against it every time Snakemake parses
the Snakefile, and importing torch would add seconds to every ``snakemake -n``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncoderSpec:
    smp_encoder: str
    family: str
    fixed_input_size: bool = False
    """MaxViT's attention windows are sized from ``img_size`` at construction (window = size/32):
    the model then only accepts inputs of exactly that size."""


ENCODERS: dict[str, EncoderSpec] = {
    "convnext_tiny": EncoderSpec("tu-convnext_tiny", "CNN"),
    # SegFormer's Mix Transformer is smp's own encoder: timm has no MiT.
    "segformer_b3": EncoderSpec("mit_b3", "ViT"),
    "maxvit_tiny": EncoderSpec("tu-maxvit_tiny_tf_384", "Hybrid", fixed_input_size=True),
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModelConfigError(ValueError):
    pass


def encoder_spec(name: str) -> EncoderSpec:
    if name not in ENCODERS:
        raise ModelConfigError(f"unknown encoder '{name}': choose one of {', '.join(ENCODERS)}")
    return ENCODERS[name]


def check_image_size(name: str, image_size: int) -> None:
    if image_size < 64 or image_size % 32:
        raise ModelConfigError(
            f"image size {image_size} does not work for {name}: a U-Net over a stride-32 encoder "
            "needs a multiple of 32 of at least 64 (e.g. 128, 256, 384)"
        )
