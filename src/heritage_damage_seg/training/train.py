"""Training one encoder: AdamW + OneCycleLR, weighted Dice, mixed precision where the GPU has it.

Per epoch it writes a row of ``history.csv``, the last checkpoint, and the best checkpoint (by
validation mIoU, computed with :func:`heritage_damage_seg.metrics.summarise`). The training step
never waits on the host: losses are summed on the device and read once per epoch.

Resuming: the last checkpoint (``model_last.pt``, not a Snakemake output, so a failed job keeps
it) holds everything a rerun needs to continue bit-identically on the CPU: model, optimizer,
scheduler and scaler states, every RNG state, the history, the best epoch's weights and a
fingerprint of the settings and input files (:func:`run_fingerprint`); a checkpoint with another
fingerprint is not resumed. SIGTERM / SIGUSR1 save the position inside the epoch (after the
current step) and exit with 128 + signal number; SIGKILL falls back to the last epoch boundary.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn

from heritage_damage_seg import device as devices
from heritage_damage_seg.classes import CLASS_NAMES, NUM_CLASSES
from heritage_damage_seg.data.dataset import load_cache
from heritage_damage_seg.io import atomic_path, read_json, sha256
from heritage_damage_seg.metrics import confusion_matrix, summarise
from heritage_damage_seg.model import scan_view
from heritage_damage_seg.model.inputs import to_model_input
from heritage_damage_seg.model.losses import build_loss
from heritage_damage_seg.model.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_model,
    count_parameters,
)
from heritage_damage_seg.training.batches import Augmentation, ResidentSplit, augment

log = logging.getLogger(__name__)

HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "val_mIoU",
    "val_damage_mIoU",
    "lr",
    "train_imgs_per_s",
    "epoch_seconds",
    "peak_memory_mb",
)


# Version of the resumable checkpoint (model_last.pt) layout; another version is not resumed.
CHECKPOINT_FORMAT = 2


class NonFiniteLossError(RuntimeError):
    pass


@dataclass(frozen=True)
class TrainSettings:
    encoder: str
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float = 0.01
    pct_start: float = 0.3
    loss: str = "dice"
    dice_smooth: float = 1.0
    mixed_precision: bool = True
    channels_last: bool = True
    augmentation: dict[str, Any] = field(
        default_factory=dict
    )  # Augmentation's fields; {} = flips only
    seed: int = 42
    encoder_weights: str | None = None
    eval_batch_size: int = 32
    device: str = "auto"
    compile: bool = (
        False  # torch.compile the training forward (GPU: faster steps after a compile of minutes)
    )
    extra: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def validation_confusion(
    model: nn.Module,
    split: ResidentSplit,
    batch_size: int,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
) -> torch.Tensor:
    """Dataset-level confusion matrix of the model's arg-max predictions over ``split`` (on device)."""
    model.eval()
    cm = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64, device=split.device)
    for images, masks in split.batches(batch_size):
        with torch.autocast(split.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(to_model_input(images, channels_last))
        cm += confusion_matrix(logits.argmax(1), masks)
    return cm


def _format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def train(
    settings: TrainSettings,
    *,
    cache_dir: str | os.PathLike[str],
    split_file: str | os.PathLike[str],
    class_weights_file: str | os.PathLike[str],
    best_checkpoint: str | os.PathLike[str],
    last_checkpoint: str | os.PathLike[str],
    history_file: str | os.PathLike[str],
) -> dict[str, Any]:
    """Trains (or resumes) one encoder; see the module docstring and :func:`load_resumable`.

    SIGTERM / SIGUSR1 (what SLURM sends before a time limit with ``--signal``) let the current
    step finish, save its position in the epoch to ``last_checkpoint`` and exit with status
    128 + signal number, so ``--retries`` or a SLURM requeue resumes from that very step.
    """
    generator = seed_everything(settings.seed)
    device = devices.pick_device(settings.device)
    amp_dtype = devices.autocast_dtype(device, settings.mixed_precision)
    channels_last = settings.channels_last and device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    cache = load_cache(cache_dir)
    split = read_json(split_file)
    weights = read_json(class_weights_file)
    train_split = ResidentSplit(cache.images, cache.masks, cache.positions(split["train"]), device)
    val_split = ResidentSplit(cache.images, cache.masks, cache.positions(split["val"]), device)
    if len(train_split) == 0 or len(val_split) == 0:
        raise ValueError(
            f"{split_file}: the split has an empty side ({len(train_split)} train, {len(val_split)} val): "
            "use more artworks or change split.val_fraction"
        )

    model = build_model(
        settings.encoder, image_size=cache.size, encoder_weights=settings.encoder_weights
    )
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    # The compiled callable shares the model's parameters; checkpoints keep the plain model's keys.
    forward = torch.compile(model) if settings.compile else model
    loss_fn = build_loss(settings.loss, weights["weights"], smooth=settings.dice_smooth).to(device)
    batch_size = min(settings.batch_size, len(train_split))
    steps_per_epoch = max(1, len(train_split) // batch_size)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
        fused=device.type == "cuda",
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=settings.learning_rate,
        total_steps=settings.epochs * steps_per_epoch,
        pct_start=settings.pct_start,
    )
    augmentation = Augmentation(**settings.augmentation)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    n_params = count_parameters(model)
    log.info(
        "training %s (%.1f M parameters) on %s, precision %s: %d train / %d val images at %d px, "
        "batch %d, %d steps/epoch, %d epochs, max lr %.3g, class weights %s",
        settings.encoder,
        n_params / 1e6,
        devices.describe(device),
        amp_dtype or "fp32",
        len(train_split),
        len(val_split),
        cache.size,
        batch_size,
        steps_per_epoch,
        settings.epochs,
        settings.learning_rate,
        weights["method"],
    )

    encoder_file = (
        settings.encoder_weights if settings.encoder_weights not in (None, "imagenet") else None
    )
    fingerprint = run_fingerprint(
        settings,
        {
            "cache/images.npy": Path(cache_dir) / "images.npy",
            "cache/masks.npy": Path(cache_dir) / "masks.npy",
            "cache/index.csv": Path(cache_dir) / "index.csv",
            "split": split_file,
            "class_weights": class_weights_file,
            **({"encoder_weights": encoder_file} if encoder_file else {}),
        },
    )

    # The start: random init, or a weights file (fetched ImageNet or local), named by its SHA-256.
    weights_record = encoder_weights_record(settings.encoder_weights)

    def metadata(epoch: int, val_miou: float) -> dict[str, Any]:
        return {
            "encoder": settings.encoder,
            "image_size": cache.size,
            # How the model sees a scan: evaluation, predict and export apply it the same way.
            "scan_view": scan_view.of_cache(cache.view, cache.size, cache.input_scale).record(),
            "num_classes": NUM_CLASSES,
            "class_names": list(CLASS_NAMES),
            "normalisation": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "scale": 255},
            "epoch": epoch,
            "val_mIoU": val_miou,
            # The best epoch is chosen on `val`; the split's `test` side is never read here.
            "selected_on": "val",
            "encoder_weights": weights_record,
            "settings": asdict(settings),
            "fingerprint": fingerprint,
        }

    history: list[dict[str, float]] = []
    best_miou = -math.inf
    best_epoch = 0
    best_state: dict[str, torch.Tensor] | None = None
    completed = 0  # epochs finished
    position: dict[str, Any] | None = None  # where an interrupted epoch stopped
    state = load_resumable(last_checkpoint, fingerprint)
    if state is not None:
        model.load_state_dict(state["model_state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        restore_rng_states(state["rng"], generator)
        history = list(state["history"])
        completed, best_epoch = state["epoch"], state["best_epoch"]
        best_miou = state["best_val_mIoU"] if best_epoch else -math.inf
        position = state.get("position")
        if best_epoch:
            best_state = state.get("best_model_state_dict") or state["model_state_dict"]
            # Snakemake deleted the failed job's outputs: put back what the checkpoint knows.
            _save(
                metadata(best_epoch, best_miou) | {"model_state_dict": best_state}, best_checkpoint
            )
        if history:
            _write_history(history, history_file)
        where = (
            f"epoch {position['epoch']} step {position['step']}/{steps_per_epoch}"
            if position
            else f"epoch {completed}"
        )
        log.info(
            "resumed at %s from %s (best val mIoU so far %.2f%% at epoch %d)",
            where,
            last_checkpoint,
            100 * best_miou if best_epoch else float("nan"),
            best_epoch,
        )

    def save_last(position: dict[str, Any] | None = None) -> None:
        checkpoint = metadata(completed, history[-1]["val_mIoU"] if history else float("nan")) | {
            "format": CHECKPOINT_FORMAT,
            "model_state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rng_states(generator),
            "history": history,
            "best_epoch": best_epoch,
            "best_val_mIoU": best_miou,
            "position": position,
        }
        if best_state is not None and (position is not None or best_epoch != completed):
            checkpoint["best_model_state_dict"] = best_state
        _save(checkpoint, last_checkpoint)

    stop = StopRequest()
    started = time.perf_counter()
    with stop.installed():
        for epoch in range(completed + 1, settings.epochs + 1):
            model.train()
            epoch_start = time.perf_counter()
            if position is not None:  # the rest of an interrupted epoch, in its own order
                order = position["order"]
                first_step = position["step"]
                loss_sum = torch.as_tensor(position["loss_sum"], dtype=torch.float32).to(device)
                seen = int(position["seen"])
                position = None
            else:
                order = train_split.shuffled_order(generator)
                first_step = 0
                loss_sum = torch.zeros((), device=device)
                seen = 0
            last_progress = epoch_start
            for step, (images, masks) in enumerate(
                train_split.batches(
                    batch_size, order=order, drop_last=True, start_batch=first_step
                ),
                start=first_step + 1,
            ):
                images, masks = augment(images, masks, generator, augmentation)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = forward(to_model_input(images, channels_last))
                loss = loss_fn(logits, masks)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                loss_sum += loss.detach()
                seen += images.shape[0]
                if stop.signum is not None and step < steps_per_epoch:
                    save_last(
                        {
                            "epoch": epoch,
                            "step": step,
                            "order": order,
                            "loss_sum": loss_sum.cpu(),
                            "seen": seen,
                        }
                    )
                    stop.exit(f"epoch {epoch} step {step}/{steps_per_epoch}", last_checkpoint)
                now = time.perf_counter()
                if now - last_progress > 30:
                    log.info(
                        "  epoch %d step %d/%d, %.1f img/s",
                        epoch,
                        step,
                        steps_per_epoch,
                        seen / (now - epoch_start),
                    )
                    last_progress = now
            devices.synchronize(device)
            train_seconds = time.perf_counter() - epoch_start
            mean_loss = float(loss_sum) / steps_per_epoch  # the one host read of the epoch
            if not math.isfinite(mean_loss) or not _parameters_finite(model):
                what = (
                    f"training loss is {mean_loss}"
                    if not math.isfinite(mean_loss)
                    else "model weights are not finite"
                )
                kept = (
                    f"the last good checkpoint ({last_checkpoint}, epoch {completed}; "
                    f"best from epoch {best_epoch}) kept"
                    if completed
                    else "nothing saved"
                )
                raise NonFiniteLossError(
                    f"epoch {epoch}: {what}; stopping with {kept}. Lower the learning rate "
                    f"(encoders.{settings.encoder}.learning_rate or training.base_learning_rate) or check "
                    "the data; a run with other settings starts afresh."
                )
            summary = summarise(
                validation_confusion(
                    model, val_split, settings.eval_batch_size, amp_dtype, channels_last
                )
            )
            val_miou = summary["mIoU"] if summary["mIoU"] is not None else float("nan")
            epoch_seconds = time.perf_counter() - epoch_start
            row = {
                "epoch": epoch,
                "train_loss": mean_loss,
                "val_mIoU": val_miou,
                "val_damage_mIoU": summary["damage_mIoU"]
                if summary["damage_mIoU"] is not None
                else float("nan"),
                "lr": scheduler.get_last_lr()[0],
                "train_imgs_per_s": seen / train_seconds,
                "epoch_seconds": epoch_seconds,
                "peak_memory_mb": devices.peak_memory_mb(device),
            }
            history.append(row)
            completed = epoch
            improved = val_miou > best_miou
            if improved:
                best_miou, best_epoch = val_miou, epoch
                best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
                _save(metadata(epoch, val_miou) | {"model_state_dict": best_state}, best_checkpoint)
            save_last()
            _write_history(history, history_file)
            elapsed = time.perf_counter() - started
            eta = (
                elapsed
                / max(1, epoch - (state["epoch"] if state else 0))
                * (settings.epochs - epoch)
            )
            log.info(
                "epoch %d/%d loss %.4f val mIoU %.2f%% (best %.2f%% @%d) lr %.2e %.1f img/s %.1fs ETA %s%s",
                epoch,
                settings.epochs,
                mean_loss,
                100 * val_miou,
                100 * best_miou,
                best_epoch,
                row["lr"],
                row["train_imgs_per_s"],
                epoch_seconds,
                _format_duration(eta),
                " *" if improved else "",
            )
            if stop.signum is not None and epoch < settings.epochs:
                stop.exit(f"the end of epoch {epoch}", last_checkpoint)
    if best_epoch == 0:
        raise NonFiniteLossError(
            f"no epoch gave a finite validation mIoU, so there is no best checkpoint: check the data "
            f"and the split ({split_file})"
        )
    log.info(
        "done in %s; best val mIoU %.2f%% at epoch %d",
        _format_duration(time.perf_counter() - started),
        100 * best_miou,
        best_epoch,
    )
    return {"best_val_mIoU": best_miou, "best_epoch": best_epoch, "parameters": n_params}


def _parameters_finite(model: nn.Module) -> bool:
    flags = [torch.isfinite(p).all() for p in model.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


class StopRequest:
    """Records SIGTERM / SIGUSR1 instead of dying at once, so the loop can save where it is."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self) -> None:
        self.signum: int | None = None

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = signum

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if (
            threading.current_thread() is not threading.main_thread()
        ):  # signals only reach the main thread
            yield
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def exit(self, where: str, checkpoint: str | os.PathLike[str]) -> NoReturn:
        assert self.signum is not None
        name = signal.Signals(self.signum).name
        log.warning(
            "%s received: saved the position at %s to %s; exiting with status %d so that a rerun "
            "(snakemake --retries, or a SLURM requeue) resumes from there",
            name,
            where,
            checkpoint,
            128 + self.signum,
        )
        raise SystemExit(128 + self.signum)


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
    if (
        states["cuda"]
        and torch.cuda.is_available()
        and len(states["cuda"]) == torch.cuda.device_count()
    ):
        torch.cuda.set_rng_state_all(states["cuda"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    generator.set_state(states["generator"])


# Settings that do not change what is computed: a checkpoint may be resumed across them.
# Settings that change how fast a run goes, not what it computes: a resume may change them.
RESUME_NEUTRAL_SETTINGS = frozenset({"device", "eval_batch_size", "compile"})


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
            "not resuming from %s: not a resumable checkpoint of this version; starting from epoch 1",
            path,
        )
        return None
    reason = fingerprint_difference(state.get("fingerprint"), fingerprint)
    if reason:
        log.warning(
            "not resuming from %s: it was trained with other settings or inputs (%s); starting from epoch 1",
            path,
            reason,
        )
        return None
    return state


def _save(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def _write_history(rows: list[dict[str, float]], path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
