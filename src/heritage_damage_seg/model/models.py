"""The one model constructor every stage uses, and checkpoint loading (the registry: encoders.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from torch import nn

from heritage_damage_seg.classes import NUM_CLASSES
from heritage_damage_seg.model.encoders import (  # noqa: F401 (re-exported: one import for model code)
    ENCODERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    EncoderSpec,
    ModelConfigError,
    check_image_size,
    encoder_spec,
)

log = logging.getLogger(__name__)


def build_model(
    name: str,
    *,
    image_size: int,
    encoder_weights: str | None = None,
    num_classes: int = NUM_CLASSES,
) -> nn.Module:
    """smp U-Net on the named encoder.

    ``encoder_weights``: None (random init), ``"imagenet"`` (downloaded by smp/timm: needs a
    machine that reaches the model hub) or a path to a local state-dict file for the encoder.
    """
    spec = encoder_spec(name)
    check_image_size(name, image_size)
    kwargs: dict[str, object] = {}
    if spec.fixed_input_size:
        kwargs["img_size"] = image_size
    hub_weights = "imagenet" if encoder_weights == "imagenet" else None
    model = smp.Unet(spec.smp_encoder, encoder_weights=hub_weights, classes=num_classes, **kwargs)
    if encoder_weights not in (None, "imagenet"):
        load_encoder_weights(model, name, Path(encoder_weights))
    return model


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelConfigError(f"{path} does not hold a state dict")
    return state


def load_encoder_weights(model: nn.Module, name: str, path: Path) -> None:
    """Loads a local encoder checkpoint (smp encoder keys, or a timm model's keys for ``tu-``
    encoders, e.g. a ``pytorch_model.bin`` / ``model.safetensors`` saved from the hub)."""
    if not path.is_file():
        raise ModelConfigError(
            f"encoder weights file {path} for {name} does not exist: fix encoders.{name}.weights "
            "(a local .pth/.safetensors file, 'imagenet', or null)"
        )
    state = _read_state_dict(path)
    encoder: nn.Module = model.encoder  # type: ignore[assignment]
    own = encoder.state_dict()
    # timm-universal encoders wrap the timm model as ``encoder.model``; plain timm checkpoints lack
    # that prefix.
    candidates = [state, {f"model.{k}": v for k, v in state.items()}]
    best = max(
        candidates, key=lambda c: sum(k in own and own[k].shape == v.shape for k, v in c.items())
    )
    matched = {k: v for k, v in best.items() if k in own and own[k].shape == v.shape}
    if len(matched) < 0.9 * len(own):
        raise ModelConfigError(
            f"{path} does not match encoder {name} ({ENCODERS[name].smp_encoder}): only "
            f"{len(matched)} of its {len(own)} tensors have a matching name and shape; use weights "
            "saved from that encoder"
        )
    # nn.Module's own method: some smp encoders (MiT) override load_state_dict without `strict`.
    missing = nn.Module.load_state_dict(encoder, matched, strict=False).missing_keys
    if missing:
        log.warning(
            "%d encoder tensors not in %s keep their initial values: %s",
            len(missing),
            path,
            missing[:5],
        )
    log.info("loaded %d/%d encoder tensors from %s", len(matched), len(own), path)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_checkpoint(
    path: str | os.PathLike[str], device: torch.device | str = "cpu"
) -> tuple[nn.Module, dict]:
    """A trained model and its checkpoint's metadata, ready for inference (eval mode)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(checkpoint["encoder"], image_size=checkpoint["image_size"])
    model.load_state_dict(checkpoint["model_state_dict"])
    return model.to(device).eval(), checkpoint
