"""The files a training run leaves: the best checkpoint (what evaluation, predict and export
read) and the resumable one (``model_last.pt``), with the fingerprint that says whether a
checkpoint may be resumed by this run at all."""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from heritage_damage_seg.io import atomic_path, sha256
from heritage_damage_seg.training.settings import RESUME_NEUTRAL_SETTINGS, TrainSettings

log = logging.getLogger(__name__)

# Version of the resumable checkpoint (model_last.pt) layout; another version is not resumed.
CHECKPOINT_FORMAT = 2


class ResumeError(RuntimeError):
    """A checkpoint of this very run that the run as now started cannot continue."""


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Writes ``checkpoint`` with every tensor on the CPU, so a plain ``torch.load`` reads it on a
    machine without the GPU it was trained on (the model's weights, the optimizer's state and the
    best weights stay on the GPU while training runs)."""
    with atomic_path(path) as tmp:
        torch.save(cpu_tensors(checkpoint), tmp)


def cpu_tensors(value: Any) -> Any:
    """``value`` with every tensor inside dicts, lists and tuples copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: cpu_tensors(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_tensors(item) for item in value)
    return value


def rng_states(generator: torch.Generator) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "generator": generator.get_state(),
    }


def restore_rng_states(states: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    cuda = states["cuda"]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    generator.set_state(states["generator"])


def run_fingerprint(
    settings: TrainSettings, files: dict[str, str | os.PathLike[str]]
) -> dict[str, Any]:
    """What a checkpoint must have been trained with to be resumed: the settings and the SHA-256
    of every input file."""
    chosen = {k: v for k, v in asdict(settings).items() if k not in RESUME_NEUTRAL_SETTINGS}
    return {
        "settings": json.loads(json.dumps(chosen, default=str)),
        "files": {k: sha256(v) for k, v in files.items()},
    }


def fingerprint_difference(old: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
    """Why a checkpoint trained with ``old`` cannot be resumed under ``new`` (None: it can)."""
    if not isinstance(old, dict):
        return "it has no fingerprint (written by an older version)"
    changes = [
        f"{key} {old['settings'].get(key)!r} → {value!r}"
        for key, value in new["settings"].items()
        if old["settings"].get(key) != value
    ]
    changes += [
        f"{name} changed" for name, sha in new["files"].items() if old["files"].get(name) != sha
    ]
    return ", ".join(changes) or None


def load_resumable(
    path: str | os.PathLike[str], fingerprint: dict[str, Any]
) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it was written by this same run (settings and inputs), else
    None with the reason logged: a checkpoint of another configuration is never resumed."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 (any unreadable file means: start afresh)
        log.warning("not resuming from %s: cannot read it (%s); starting from epoch 1", path, err)
        return None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        log.warning(
            "not resuming from %s: not a resumable checkpoint of this version; starting afresh",
            path,
        )
        return None
    reason = fingerprint_difference(state.get("fingerprint"), fingerprint)
    if reason:
        log.warning(
            "not resuming from %s: it was trained with other settings or inputs (%s); "
            "starting from epoch 1",
            path,
            reason,
        )
        return None
    return state


def encoder_weights_record(weights: str | None) -> dict[str, Any]:
    """What a checkpoint and model card say about the encoder's start."""
    if weights is None:
        return {"source": "random initialisation", "file": None, "sha256": None}
    if weights == "imagenet":
        return {
            "source": "imagenet (downloaded by smp/timm in the training process)",
            "file": None,
            "sha256": None,
        }
    source = (
        "imagenet (fetched once by the encoder_weights rule)"
        if str(weights).endswith(".imagenet.pth")
        else "local file"
    )
    return {"source": source, "file": str(weights), "sha256": sha256(weights)}
