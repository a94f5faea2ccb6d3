"""The prototype's ImageNet start, fetched once.

``encoders.<name>.weights: imagenet`` does not let every training job reach the model hub: the
local rule ``encoder_weights`` downloads each encoder's ImageNet weights once, through smp's and
timm's own loaders (``smp.Unet(..., encoder_weights="imagenet")``), on the host where Snakemake
runs, and saves the encoder's state dict to ``resources/weights/<encoder>.imagenet.pth``. Training
jobs read only that file (a compute node needs no network). Where the hub cannot be reached the
rule fails at once, naming the file to put in place and the ``weights: <path>`` alternative.

A local file (``weights: <path>``, or the fetched one) is checked against the encoder (names and
shapes, :func:`heritage_damage_seg.model.models.load_encoder_weights`) before the first step, and
its
SHA-256 goes into the checkpoint (``encoder_weights``) and the model card.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from heritage_damage_seg.io import sha256

log = logging.getLogger(__name__)

#: Where the fetched ImageNet weights live (relative to the Snakemake working directory).
FETCHED = "resources/weights/{encoder}.imagenet.pth"


class WeightsUnavailable(RuntimeError):
    """The hub could not be reached: the message says which file to put in place instead."""


def fetched_path(encoder: str) -> str:
    return FETCHED.format(encoder=encoder)


def unavailable_message(
    encoder: str, smp_encoder: str, path: str | os.PathLike[str], error: BaseException
) -> str:
    return (
        f"cannot fetch the ImageNet weights of {encoder} ({smp_encoder}) from the model hub "
        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no detail'}). "
        f"Either put the encoder's state dict in place as {path} (saved on a machine that reaches the "
        f"hub: torch.save(smp.Unet('{smp_encoder}', encoder_weights='imagenet').encoder.state_dict(), '{path}')), "
        f"or set encoders.{encoder}.weights: <path> to a local .pth/.safetensors file of that encoder "
        f"(or null for random initialisation)"
    )


def check_hub_reachable(timeout: float = 5.0) -> None:
    """Raises ``OSError`` at once where the hub cannot be reached, instead of the loaders' minute
    of retries: offline mode (``HF_HUB_OFFLINE``), or no TCP connection to the hub's host
    (``HF_ENDPOINT``, default huggingface.co) within ``timeout``. Skipped behind a proxy (the
    loaders go through it, a direct probe would not)."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise OSError("HF_HUB_OFFLINE is set")
    if any(
        os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
    ):
        return
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = (
        endpoint.hostname or "huggingface.co",
        endpoint.port or (443 if endpoint.scheme == "https" else 80),
    )
    with socket.create_connection((host, port), timeout=timeout):
        pass


def fetch_imagenet(
    encoder: str, path: str | os.PathLike[str], *, image_size: int = 384
) -> dict[str, Any]:
    """Downloads ``encoder``'s ImageNet weights with smp/timm's own loaders and saves the encoder's
    state dict to ``path`` (atomically). Raises :class:`WeightsUnavailable` where the hub cannot
    be reached. Returns the file's record (path, SHA-256, tensors)."""
    import torch

    from heritage_damage_seg.io import atomic_path
    from heritage_damage_seg.model.encoders import encoder_spec
    from heritage_damage_seg.model.models import build_model

    spec = encoder_spec(encoder)
    try:
        check_hub_reachable()
        # The model every stage builds, with smp/timm fetching the encoder's ImageNet weights.
        model = build_model(
            encoder, image_size=image_size, encoder_weights="imagenet", num_classes=1
        )
    except Exception as error:  # network, DNS, offline mode, proxy: all say the same to the user
        raise WeightsUnavailable(
            unavailable_message(encoder, spec.smp_encoder, path, error)
        ) from error
    state = model.encoder.state_dict()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    record = {
        "encoder": encoder,
        "smp_encoder": spec.smp_encoder,
        "file": str(path),
        "sha256": sha256(path),
        "tensors": len(state),
        "source": "imagenet (smp/timm hub loaders)",
    }
    log.info(
        "saved %d encoder tensors of %s to %s (sha256 %s)",
        len(state),
        encoder,
        path,
        record["sha256"],
    )
    return record
