"""A trained model as ONNX (and TorchScript where the encoder traces) with a model card.

The exported graph is the network alone: input ``image`` float32 N×3×S×S, already normalised
(``(pixel/255 - mean) / std``, ImageNet statistics, RGB), output ``logits`` float32 N×16×S×S, where
S is the training resolution (MaxViT accepts no other). How a scan becomes that input (the whole
scan resized, or tiles of the scan downscaled) is the checkpoint's scan view, recorded in the card
as ``scan_view`` (:mod:`heritage_damage_seg.model.scan_view`). The batch dimension is dynamic.
``model_card.json`` says all of that, plus classes, palette, metrics and the hashes that tie the
files to their checkpoint and training settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from heritage_damage_seg.classes import CLASS_NAMES, IGNORE_HEX, IGNORE_INDEX, PALETTE_HEX
from heritage_damage_seg.io import atomic_path, read_json, sha256, write_json
from heritage_damage_seg.metrics import HEADLINE_METRICS
from heritage_damage_seg.model.models import (
    ENCODERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    count_parameters,
    load_checkpoint,
)
from heritage_damage_seg.model.scan_view import ModelView

log = logging.getLogger(__name__)

ONNX_OPSET = 18
TOLERANCE = 1e-3
"""Largest absolute logit difference accepted between onnxruntime and PyTorch on the CPU."""


def config_hash(settings: dict[str, Any]) -> str:
    """sha256 of the checkpoint's training settings as canonical JSON."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def export_onnx(model: torch.nn.Module, size: int, path: str | os.PathLike[str]) -> None:
    example = torch.zeros(1, 3, size, size)
    with atomic_path(path) as tmp:
        # The TorchScript-based exporter: it needs no onnxscript and handles every encoder here.
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def onnx_max_abs_diff(
    model: torch.nn.Module, onnx_path: str | os.PathLike[str], inputs: torch.Tensor
) -> float:
    """Largest |onnxruntime − PyTorch| logit difference on ``inputs`` (CPU)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(["logits"], {"image": inputs.numpy()})
    with torch.no_grad():
        torch_logits = model(inputs).numpy()
    return float(np.abs(onnx_logits - torch_logits).max())


def export_torchscript(
    model: torch.nn.Module, size: int, path: str | os.PathLike[str]
) -> str | None:
    """Traced TorchScript; returns why not when the encoder does not trace."""
    example = torch.zeros(1, 3, size, size)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch.jit is deprecated upstream but still the format C++/LibTorch deployments load.
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(model, example, check_trace=False)
            reference = model(example)
            if not torch.allclose(traced(example), reference, atol=TOLERANCE):
                return "traced module disagrees with the model"
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(traced, str(tmp))
    except (
        Exception
    ) as err:  # tracing fails in many ways, none of which should stop the ONNX export
        log.warning("TorchScript export failed: %s", err)
        return f"{type(err).__name__}: {err}"
    return None


def model_io(size: int) -> dict[str, Any]:
    """What the exported graph takes and gives: shapes, dtype, normalisation, decoding."""
    return {
        "input": {
            "name": "image",
            "shape": ["batch", 3, size, size],
            "dtype": "float32",
            "layout": "NCHW, RGB",
            "normalisation": {
                "scale": 255,
                "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
                "formula": "(pixel / 255 - mean) / std",
            },
            "note": "fixed spatial size: give it scans as scan_view says (heritage-damage-seg predict does)",
        },
        "output": {
            "name": "logits",
            "shape": ["batch", len(CLASS_NAMES), size, size],
            "dtype": "float32",
            "decode": "argmax over dim 1 → class id",
        },
    }


def class_table() -> dict[str, Any]:
    """The classes with their ids and ARTeFACT colours, and the ignored Background."""
    return {
        "classes": [
            {"id": i, "name": name, "colour": PALETTE_HEX[i]} for i, name in enumerate(CLASS_NAMES)
        ],
        "ignore_index": {
            "id": IGNORE_INDEX,
            "name": "Background",
            "colour": IGNORE_HEX,
            "note": "never predicted: the model has no background class",
        },
    }


def card_metrics(metrics_file: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The test figures the card reports (None without a metrics file)."""
    if metrics_file is None:
        return None
    metrics = read_json(metrics_file)
    keys = ("evaluation_mode", "n_images", *HEADLINE_METRICS, "pixel_accuracy", "image_size")
    per_class = {name: c["IoU"] for name, c in metrics.get("per_class", {}).items()}
    return {key: metrics.get(key) for key in keys} | {"per_class_IoU": per_class}


def model_card(
    model: torch.nn.Module, checkpoint: dict[str, Any], checkpoint_path: str | os.PathLike[str]
) -> dict[str, Any]:
    """``model_card.json`` without its files: the model, how to feed it, where it came from."""
    encoder, size = checkpoint["encoder"], int(checkpoint["image_size"])
    return {
        "encoder": encoder,
        "smp_encoder": ENCODERS[encoder].smp_encoder,
        "family": ENCODERS[encoder].family,
        "architecture": "U-Net (segmentation_models_pytorch)",
        "parameters": count_parameters(model),
        "training_resolution": size,
        # How to feed it a scan: the way it was trained (heritage-damage-seg predict does this).
        "scan_view": ModelView.from_checkpoint(checkpoint, str(checkpoint_path)).record(),
        **model_io(size),
        **class_table(),
        "checkpoint": str(checkpoint_path),
        "checkpoint_sha256": sha256(checkpoint_path),
        "checkpoint_epoch": checkpoint.get("epoch"),
        "training_settings": checkpoint.get("settings"),
        # bf16 / fp16 / fp32: the numeric precision the weights were trained in.
        "training_precision": checkpoint.get("precision", "unrecorded"),
        # The encoder's start: random init, or the weights file with its SHA-256.
        "encoder_weights": checkpoint.get("encoder_weights"),
        "config_hash": config_hash(checkpoint.get("settings") or {}),
    }


def _verify_onnx(model: torch.nn.Module, onnx_path: Path, size: int, name: str) -> float:
    """Largest difference between ONNX Runtime and PyTorch on a seeded probe; refuses > TOLERANCE."""
    probe = torch.randn((2, 3, size, size), generator=torch.Generator().manual_seed(0))
    diff = onnx_max_abs_diff(model, onnx_path, probe)
    if diff > TOLERANCE:
        raise RuntimeError(
            f"ONNX export of {name} differs from PyTorch by {diff:.2e} (> {TOLERANCE})"
        )
    return diff


def export_model(
    checkpoint_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    metrics_file: str | os.PathLike[str] | None = None,
    torchscript: bool = True,
    verify: bool = True,
) -> dict[str, Any]:
    """Writes ``model.onnx``, ``model.ts`` (when it traces) and ``model_card.json`` to ``out_dir``."""
    model, checkpoint = load_checkpoint(checkpoint_path, "cpu")
    model = model.float().eval()
    size = int(checkpoint["image_size"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "model.onnx"
    export_onnx(model, size, onnx_path)
    card = model_card(model, checkpoint, checkpoint_path)
    card["files"] = {
        "onnx": onnx_path.name,
        "onnx_sha256": sha256(onnx_path),
        "onnx_opset": ONNX_OPSET,
    }
    card["metrics"] = card_metrics(metrics_file)
    if verify:
        diff = _verify_onnx(model, onnx_path, size, str(checkpoint_path))
        card["files"]["onnx_max_abs_diff_vs_pytorch"] = diff
    if torchscript:
        ts_path = out_dir / "model.ts"
        problem = export_torchscript(model, size, ts_path)
        card["files"]["torchscript"] = None if problem else ts_path.name
        if problem:
            card["files"]["torchscript_unavailable"] = problem
    write_json(out_dir / "model_card.json", card)
    exported = [card["files"][k] for k in ("onnx", "torchscript") if card["files"].get(k)]
    log.info("exported %s to %s (%s)", checkpoint["encoder"], out_dir, ", ".join(exported))
    return card
