"""Training one encoder: AdamW + OneCycleLR, weighted Dice, mixed precision where the GPU has it.

The run is a few named steps, each replaceable on its own: :func:`build_run` (data on the device,
model, loss, optimizer), :func:`resume`, :func:`train_one_epoch`, :func:`validate`,
:func:`record_epoch` and :func:`save_progress`; :func:`train` strings them together. What changes as
training goes lives in :class:`~heritage_damage_seg.training.state.TrainingState`, which becomes the
resumable checkpoint.

The best epoch is chosen by validation mIoU (:func:`heritage_damage_seg.metrics.summarise`) on the
split's ``val`` side; ``test`` is never read here. The training step never waits on the host:
losses are summed on the device and read once per epoch.

Resuming: ``model_last.pt`` (not a Snakemake output, so a failed job keeps it) holds everything a
rerun needs to continue bit-identically on the CPU, with a fingerprint of the settings and input
files (:func:`~heritage_damage_seg.training.checkpoints.run_fingerprint`); a checkpoint with
another fingerprint is not resumed. SIGTERM / SIGUSR1 save the position inside the epoch (after
the current step) and exit with 128 + signal number; SIGKILL falls back to the last checkpoint
(the last epoch, or at most ``checkpoint_minutes`` old).

Data parallelism (``training.gpus`` × ``training.nodes`` ranks, :mod:`.distributed`): every rank
runs these same steps on its shard of the split with its part of each global batch; rank 0 alone
writes. The checkpoint is the file one process writes; a run resumes mid-epoch with the same
number of ranks, and from an epoch's end with any number.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from heritage_damage_seg import device as devices
from heritage_damage_seg.classes import CLASS_NAMES, NUM_CLASSES
from heritage_damage_seg.data.cache import PreparedCache, load_cache
from heritage_damage_seg.io import read_json
from heritage_damage_seg.logs import format_duration
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
from heritage_damage_seg.training import distributed
from heritage_damage_seg.training.batches import (
    Augmentation,
    ResidentSplit,
    augment,
    epoch_order,
    rank_order,
    shard_positions,
    steps_per_epoch,
)
from heritage_damage_seg.training.checkpoints import (
    ResumeError,
    encoder_weights_record,
    load_resumable,
    run_fingerprint,
    save_checkpoint,
)
from heritage_damage_seg.training.distributed import ONE_PROCESS, Ranks
from heritage_damage_seg.training.history import write_history
from heritage_damage_seg.training.settings import TrainSettings, check_batch_shares
from heritage_damage_seg.training.signals import StopRequest
from heritage_damage_seg.training.state import Position, TrainingState

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 30  # a progress line inside an epoch at most this often


class NonFiniteLossError(RuntimeError):
    pass


@dataclass(frozen=True)
class RunFiles:
    """The files one training run reads and writes."""

    cache_dir: Path
    split_file: Path
    class_weights_file: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history_file: Path


@dataclass
class Run:
    """What a training run works with and does not change: built once by :func:`build_run`."""

    settings: TrainSettings
    files: RunFiles
    ranks: Ranks
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    cache: PreparedCache
    train_split: ResidentSplit  # this rank's shard
    val_split: ResidentSplit  # this rank's shard
    train_images: int  # in the whole training split
    shards: int  # of the sample order (the number of ranks)
    # The model, or DDP around it, or their torch.compile'd callable (same parameters).
    forward: nn.Module
    loss_fn: nn.Module
    augmentation: Augmentation
    batch_size: int  # the global batch
    steps_per_epoch: int
    fingerprint: dict[str, Any]
    class_weights_method: str

    def metadata(self, epoch: int, val_miou: float) -> dict[str, Any]:
        """What every checkpoint says about the model, for evaluation, predict and export."""
        cache = self.cache
        return {
            "encoder": self.settings.encoder,
            "image_size": cache.size,
            # How the model sees a scan: evaluation, predict and export apply it the same way.
            "scan_view": scan_view.of_cache(cache.view, cache.size, cache.input_scale).record(),
            "num_classes": NUM_CLASSES,
            "class_names": list(CLASS_NAMES),
            "normalisation": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "scale": 255},
            "epoch": epoch,
            "val_mIoU": val_miou,
            "selected_on": "val",
            "precision": devices.precision_name(self.amp_dtype),
            "encoder_weights": encoder_weights_record(self.settings.encoder_weights),
            "settings": asdict(self.settings),
            "fingerprint": self.fingerprint,
        }


@dataclass
class EpochSteps:
    """What one pass over the training batches measured."""

    mean_loss: float
    images: int  # images stepped by all ranks (a resumed epoch counts only its rest)
    seconds: float


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _prepare_device(
    settings: TrainSettings, ranks: Ranks
) -> tuple[torch.device, torch.dtype | None, bool]:
    device = devices.pick_device(settings.device, ranks.local_rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp_dtype = devices.autocast_dtype(device, settings.mixed_precision)
    return device, amp_dtype, settings.channels_last and device.type == "cuda"


def _resident_splits(
    cache: PreparedCache, split_file: Path, device: torch.device, ranks: Ranks
) -> tuple[ResidentSplit, ResidentSplit, int]:
    """This rank's shards of the train and val sides (all of them in one process), and the size
    of the whole train side."""
    split = read_json(split_file)
    train, val = cache.positions(split["train"]), cache.positions(split["val"])
    if len(train) < ranks.world or len(val) < ranks.world:
        raise ValueError(
            f"{split_file}: {len(train)} train and {len(val)} val images cannot be shared by "
            f"{ranks.world} ranks: use more artworks, or fewer training.gpus × training.nodes"
            if len(train) and len(val)
            else f"{split_file}: the split has an empty side ({len(train)} train, {len(val)} "
            "val): use more artworks or change split.val_fraction"
        )
    shard = (ranks.rank, ranks.world)
    train_rows, val_rows = shard_positions(train, *shard), shard_positions(val, *shard)
    resident = _resident_on(device, cache, len(train_rows) + len(val_rows))
    train_split = ResidentSplit(cache.images, cache.masks, train_rows, device, resident)
    val_split = ResidentSplit(cache.images, cache.masks, val_rows, device, resident)
    if not resident:
        log.info(
            "the split (%.1f GB) stays in host memory beside the model: batches are copied to %s "
            "through pinned memory",
            (train_split.nbytes + val_split.nbytes) / 1e9,
            device,
        )
    return train_split, val_split, len(train)


def _resident_on(device: torch.device, cache: PreparedCache, rows: int) -> bool:
    """Train and val together on the device, or both on the host: decided once, before the model
    takes its share."""
    if device.type != "cuda":
        return True
    row_bytes = cache.images[0].nbytes + cache.masks[0].nbytes
    return devices.data_fits_on_gpu(rows * row_bytes, device)


def _global_batch(settings: TrainSettings, train_images: int, shards: int) -> int:
    batch = min(settings.batch_size, train_images)
    check_batch_shares(settings.encoder, batch, shards)
    return batch


def _sample_shards(settings: TrainSettings, ranks: Ranks) -> int:
    """Ranks hold their own shard, so the order has one shard per rank; a single process may
    follow a several-shard order (sample_shards) to reproduce a data-parallel run."""
    shards = settings.sample_shards or ranks.world
    if ranks.distributed and shards != ranks.world:
        raise ValueError(f"sample_shards {shards} must equal the number of ranks {ranks.world}")
    return shards


def _fingerprint(settings: TrainSettings, files: RunFiles) -> dict[str, Any]:
    weights = settings.encoder_weights
    local_weights = weights if weights not in (None, "imagenet") else None
    return run_fingerprint(
        settings,
        {
            "cache/images.npy": files.cache_dir / "images.npy",
            "cache/masks.npy": files.cache_dir / "masks.npy",
            "cache/index.csv": files.cache_dir / "index.csv",
            "split": files.split_file,
            "class_weights": files.class_weights_file,
            **({"encoder_weights": local_weights} if local_weights else {}),
            **({"init_checkpoint": settings.init_checkpoint} if settings.init_checkpoint else {}),
        },
    )


def start_from_checkpoint(model: nn.Module, path: str, encoder: str, image_size: int) -> None:
    """Fine-tuning: the weights of a trained ``model_best.pt``, which must be of the same encoder
    and training size (a model of another architecture or resolution would start from the wrong
    weights or not load at all)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    trained = (checkpoint.get("encoder"), checkpoint.get("image_size"))
    if trained != (encoder, image_size):
        raise ValueError(
            f"{path} is a {trained[0]} model at {trained[1]} px, but this fine-tuning trains "
            f"{encoder} at {image_size} px: start from a checkpoint of the same encoder and size"
        )
    model.load_state_dict(checkpoint["model_state_dict"])
    log.info("starting from %s (epoch %s of its training)", path, checkpoint.get("epoch"))


def one_cycle(
    optimizer: torch.optim.Optimizer, settings: TrainSettings, steps: int, done: int = 0
) -> torch.optim.lr_scheduler.OneCycleLR:
    """The run's learning-rate schedule over ``epochs × steps`` steps, ``done`` of them taken."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=settings.learning_rate,
        total_steps=settings.epochs * steps,
        pct_start=settings.pct_start,
        last_epoch=done - 1,
    )


def fit_schedule(run: Run, state: TrainingState) -> None:
    """A run resumed at an epoch's end with another number of ranks may have another number of
    steps per epoch: the schedule is laid anew over the new length, at the same epoch."""
    total = run.settings.epochs * run.steps_per_epoch
    if state.scheduler.total_steps == total:  # type: ignore[attr-defined]
        return
    state.scheduler = one_cycle(
        state.optimizer, run.settings, run.steps_per_epoch, state.completed * run.steps_per_epoch
    )
    log.info(
        "learning-rate schedule laid over %d steps/epoch from epoch %d",
        run.steps_per_epoch,
        state.completed + 1,
    )


def _parallel(model: nn.Module, ranks: Ranks, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """The model to train and the callable to run it: DDP over BatchNorm synchronised across
    ranks, or the model itself in one process."""
    if not ranks.distributed:
        return model, model
    model = distributed.synchronise_batch_norm(model)
    return model, distributed.wrap(model, device)


def build_run(
    settings: TrainSettings, files: RunFiles, ranks: Ranks = ONE_PROCESS
) -> tuple[Run, TrainingState]:
    """Seeds, device, the resident splits, the model and its optimisation, in the order that
    fixes the random state (the model's initialisation draws from the seeded generator, alike on
    every rank)."""
    generator = seed_everything(settings.seed)
    device, amp_dtype, channels_last = _prepare_device(settings, ranks)
    distributed.start(ranks, device)
    cache = load_cache(files.cache_dir)
    train_split, val_split, train_images = _resident_splits(cache, files.split_file, device, ranks)
    model = build_model(
        settings.encoder, image_size=cache.size, encoder_weights=settings.encoder_weights
    )
    if settings.init_checkpoint:
        start_from_checkpoint(model, settings.init_checkpoint, settings.encoder, cache.size)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model, forward = _parallel(model, ranks, device)
    class_weights = read_json(files.class_weights_file)
    loss_fn = build_loss(
        settings.loss,
        class_weights["weights"],
        smooth=settings.dice_smooth,
        sum_across=distributed.sum_across_ranks if ranks.distributed else None,
    )
    shards = _sample_shards(settings, ranks)
    batch_size = _global_batch(settings, train_images, shards)
    steps = steps_per_epoch(train_images, batch_size, shards)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
        fused=device.type == "cuda",
    )
    scheduler = one_cycle(optimizer, settings, steps)
    augmentation = Augmentation(**settings.augmentation)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    run = Run(
        settings=settings,
        files=files,
        ranks=ranks,
        device=device,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
        cache=cache,
        train_split=train_split,
        val_split=val_split,
        train_images=train_images,
        shards=shards,
        # The compiled callable shares the model's parameters; checkpoints keep plain keys.
        forward=torch.compile(forward) if settings.compile else forward,
        loss_fn=loss_fn.to(device),
        augmentation=augmentation,
        batch_size=batch_size,
        steps_per_epoch=steps,
        fingerprint=_fingerprint(settings, files),
        class_weights_method=class_weights["method"],
    )
    return run, TrainingState(model, optimizer, scheduler, scaler, generator)


def log_start(run: Run, state: TrainingState) -> None:
    settings = run.settings
    log.info(
        "training %s (%.1f M parameters) on %s%s, precision %s: %d train / %d val images at %d px, "
        "batch %d, %d steps/epoch, %d epochs, max lr %.3g, class weights %s",
        settings.encoder,
        count_parameters(state.model) / 1e6,
        devices.describe(run.device),
        _describe_ranks(run),
        devices.precision_name(run.amp_dtype),
        run.train_images,
        len(run.val_split) * run.ranks.world,
        run.cache.size,
        run.batch_size,
        run.steps_per_epoch,
        settings.epochs,
        settings.learning_rate,
        run.class_weights_method,
    )


def _describe_ranks(run: Run) -> str:
    ranks = run.ranks
    if not ranks.distributed:
        return ""
    return (
        f" as rank {ranks.rank} of {ranks.world} (DistributedDataParallel, "
        f"{run.batch_size // ranks.world} images of each batch, {len(run.train_split)} train "
        f"images held here)"
    )


def resume(run: Run, state: TrainingState) -> bool:
    """Continues from ``model_last.pt`` when it was written by this very run (settings and
    inputs); puts back the outputs Snakemake deleted after the failed attempt."""
    checkpoint = load_resumable(run.files.last_checkpoint, run.fingerprint)
    if checkpoint is None:
        return False
    state.restore(checkpoint)
    position = state.position
    if position is not None and position.shards != run.shards:
        raise ResumeError(
            f"{run.files.last_checkpoint} stopped inside epoch {position.epoch} of a run with "
            f"{position.shards} rank(s); its rest can only run with that many "
            f"(training.gpus × training.nodes = {position.shards}). Resume with them, or delete "
            "the file to start over; a checkpoint from an epoch's end resumes with any number"
        )
    if position is None:
        fit_schedule(run, state)
    if state.best_epoch:
        save_best(run, state)
    if state.history and run.ranks.writes:
        write_history(state.history, run.files.history_file)
    where = (
        f"epoch {position.epoch} step {position.step}/{run.steps_per_epoch}"
        if position
        else f"epoch {state.completed}"
    )
    log.info(
        "resumed at %s from %s (best val mIoU so far %.2f%% at epoch %d)",
        where,
        run.files.last_checkpoint,
        100 * state.best_miou if state.best_epoch else float("nan"),
        state.best_epoch,
    )
    return True


def _epoch_start(run: Run, state: TrainingState, epoch: int) -> Position:
    """A fresh epoch's shuffled order, or the rest of the interrupted one."""
    if state.position is not None:
        position, state.position = state.position, None
        position.loss_sum = position.loss_sum.to(run.device)
        return position
    order = epoch_order(run.train_images, run.batch_size, run.shards, state.generator)
    return Position(epoch, 0, order, torch.zeros((), device=run.device), 0, run.shards)


def _seed_rank_step(seed: int, rank: int, epoch: int, step: int) -> None:
    """The global RNG (dropout and drop-path masks) of a rank's step, from where the step is: ranks
    draw independent masks, and a resumed run draws the same ones without every rank's RNG state
    in the checkpoint. (One process keeps its single seeded stream, as before.)"""
    entropy = np.random.SeedSequence([seed, rank, epoch, step]).generate_state(1, np.uint64)
    torch.manual_seed(int(entropy[0]) % 2**63)


def train_one_epoch(run: Run, state: TrainingState, epoch: int, stop: StopRequest) -> EpochSteps:
    """The epoch's steps; a stop request saves the position after the current step and exits."""
    state.model.train()
    start = time.perf_counter()
    position = _epoch_start(run, state, epoch)
    resumed_at, last_progress = position.seen, start
    ranks = run.ranks
    batches = run.train_split.batches(
        run.batch_size // ranks.world,
        order=rank_order(position.order, run.batch_size, ranks.rank, ranks.world),
        drop_last=True,
        start_batch=position.step,
    )
    part = (run.batch_size, ranks.part(run.batch_size)) if ranks.distributed else None
    for step, (images, masks) in enumerate(batches, start=position.step + 1):
        position.step = step
        if ranks.distributed:
            _seed_rank_step(run.settings.seed, ranks.rank, epoch, step)
        images, masks = augment(images, masks, state.generator, run.augmentation, part)
        with devices.autocast(run.device, run.amp_dtype):
            logits = run.forward(to_model_input(images, run.channels_last))
        loss = run.loss_fn(logits, masks)
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.scheduler.step()
        position.loss_sum += loss.detach()  # the global batch's loss, alike on every rank
        position.seen += images.shape[0] * ranks.world
        if stop.after_step() and position.step < run.steps_per_epoch:
            save_progress(run, state, position)
            distributed.barrier()  # no rank exits (and so ends the job) before rank 0 saved
            stop.exit(
                f"epoch {epoch} step {position.step}/{run.steps_per_epoch}",
                run.files.last_checkpoint,
            )
        if time.perf_counter() - last_progress > PROGRESS_SECONDS:
            last_progress = time.perf_counter()
            log.info(
                "  epoch %d step %d/%d, %.1f img/s",
                epoch,
                position.step,
                run.steps_per_epoch,
                (position.seen - resumed_at) / (last_progress - start),
            )
    devices.synchronize(run.device)
    mean_loss = float(position.loss_sum) / run.steps_per_epoch  # the one host read of the epoch
    return EpochSteps(mean_loss, position.seen - resumed_at, time.perf_counter() - start)


def check_finite(run: Run, state: TrainingState, epoch: int, mean_loss: float) -> None:
    """Stops a diverged run before it overwrites the last good checkpoint."""
    if math.isfinite(mean_loss) and _parameters_finite(state.model):
        return
    what = (
        f"training loss is {mean_loss}"
        if not math.isfinite(mean_loss)
        else "model weights are not finite"
    )
    kept = (
        f"the last good checkpoint ({run.files.last_checkpoint}, epoch {state.completed}; "
        f"best from epoch {state.best_epoch}) kept"
        if state.completed
        else "nothing saved"
    )
    raise NonFiniteLossError(
        f"epoch {epoch}: {what}; stopping with {kept}. Lower the learning rate "
        f"(encoders.{run.settings.encoder}.learning_rate or training.base_learning_rate) or check "
        "the data; a run with other settings starts afresh."
    )


def _parameters_finite(model: nn.Module) -> bool:
    flags = [torch.isfinite(p).all() for p in model.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


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
        with devices.autocast(split.device, amp_dtype):
            logits = model(to_model_input(images, channels_last))
        cm += confusion_matrix(logits.argmax(1), masks)
    return cm


def validate(run: Run, state: TrainingState, epoch: int) -> dict[str, Any] | None:
    """The validation summary, or None on an epoch that ``validate_every`` skips (the last
    epoch is always validated, so the best checkpoint always exists)."""
    every, last = run.settings.validate_every, run.settings.epochs
    if epoch % every and epoch != last:
        return None
    cm = validation_confusion(
        state.model, run.val_split, run.settings.eval_batch_size, run.amp_dtype, run.channels_last
    )
    return summarise(distributed.add_across_ranks_(cm))  # every rank's shard of val


def _nan_if_undefined(value: float | None) -> float:
    """A figure for history.csv: NaN where the metric is undefined (None: no class present)."""
    return float("nan") if value is None else value


def record_epoch(
    run: Run, state: TrainingState, epoch: int, steps: EpochSteps, summary: dict[str, Any] | None
) -> bool:
    """Appends the epoch's history row and keeps the best weights; True when the epoch improved."""
    val_miou = _nan_if_undefined(summary["mIoU"]) if summary else float("nan")
    state.history.append(
        {
            "epoch": epoch,
            "train_loss": steps.mean_loss,
            "val_mIoU": val_miou,
            "val_damage_mIoU": _nan_if_undefined(summary["damage_mIoU"])
            if summary
            else float("nan"),
            "lr": state.scheduler.get_last_lr()[0],
            "train_imgs_per_s": steps.images / steps.seconds,
            "epoch_imgs_per_s": float("nan"),  # set by time_epoch
            "epoch_seconds": float("nan"),
            "peak_memory_mb": devices.peak_memory_mb(run.device),
            "precision": devices.precision_name(run.amp_dtype),
        }
    )
    state.completed = epoch
    improved = val_miou > state.best_miou
    if improved:
        state.keep_best(epoch, val_miou)
    return improved


def save_best(run: Run, state: TrainingState) -> None:
    """``model_best.pt`` (the Snakemake output evaluation reads), when the best epoch moved."""
    if (
        not run.ranks.writes
        or state.best_weights is None
        or state.best_saved_epoch == state.best_epoch
    ):
        return
    checkpoint = run.metadata(state.best_epoch, state.best_miou)
    save_checkpoint(
        checkpoint | {"model_state_dict": state.best_weights}, run.files.best_checkpoint
    )
    state.best_saved_epoch = state.best_epoch


def save_progress(run: Run, state: TrainingState, position: Position | None = None) -> None:
    """The best checkpoint if it moved, then ``model_last.pt`` (mid-epoch with ``position``);
    rank 0 alone writes."""
    if not run.ranks.writes:
        return
    save_best(run, state)
    checkpoint = run.metadata(state.completed, state.last_val_miou()) | state.resumable(position)
    save_checkpoint(checkpoint, run.files.last_checkpoint)


class CheckpointClock:
    """When the epoch's end writes ``model_last.pt``: every epoch (``checkpoint_minutes`` 0),
    else once that long has passed; the last epoch and a stop request always write."""

    def __init__(self, minutes: float) -> None:
        self.seconds = 60 * minutes
        self.last = time.perf_counter()

    def due(self, epoch: int, last_epoch: int, stopping: bool) -> bool:
        now = time.perf_counter()
        if epoch == last_epoch or stopping or now - self.last >= self.seconds:
            self.last = now
            return True
        return False


def time_epoch(state: TrainingState, steps: EpochSteps, seconds: float) -> None:
    """The epoch's wall time up to its checkpoint write (steps, validation, best weights) into its
    row, so the checkpoint's history equals history.csv; the write itself is logged."""
    row = state.history[-1]
    row["epoch_seconds"] = seconds
    row["epoch_imgs_per_s"] = steps.images / seconds


def log_epoch(
    run: Run, state: TrainingState, improved: bool, write_seconds: float, eta_seconds: float
) -> None:
    row = state.history[-1]
    log.info(
        "epoch %d/%d loss %.4f val mIoU %.2f%% (best %.2f%% @%d) lr %.2e "
        "%.1f img/s (%.1f with validation) %.1fs + %.1fs checkpoints ETA %s%s",
        row["epoch"],
        run.settings.epochs,
        row["train_loss"],
        100 * row["val_mIoU"],
        100 * state.best_miou,
        state.best_epoch,
        row["lr"],
        row["train_imgs_per_s"],
        row["epoch_imgs_per_s"],
        row["epoch_seconds"],
        write_seconds,
        format_duration(eta_seconds),
        " *" if improved else "",
    )


def train(
    settings: TrainSettings,
    *,
    cache_dir: str | os.PathLike[str],
    split_file: str | os.PathLike[str],
    class_weights_file: str | os.PathLike[str],
    best_checkpoint: str | os.PathLike[str],
    last_checkpoint: str | os.PathLike[str],
    history_file: str | os.PathLike[str],
    ranks: Ranks = ONE_PROCESS,
) -> dict[str, Any]:
    """Trains (or resumes) one encoder; see the module docstring. ``ranks``: this process's place
    in a data-parallel run (joined here; one process by default).

    SIGTERM / SIGUSR1 let the current step finish, save its position in the epoch to
    ``last_checkpoint`` and exit with status 128 + signal number, so ``--retries`` or a SLURM
    requeue resumes from that very step.
    """
    files = RunFiles(
        *map(
            Path,
            (
                cache_dir,
                split_file,
                class_weights_file,
                best_checkpoint,
                last_checkpoint,
                history_file,
            ),
        )
    )
    run, state = build_run(settings, files, ranks)
    log_start(run, state)
    first_epoch = (state.completed if resume(run, state) else 0) + 1
    clock = CheckpointClock(settings.checkpoint_minutes)
    started = time.perf_counter()
    with StopRequest().installed() as stop:
        for epoch in range(state.completed + 1, settings.epochs + 1):
            epoch_start = time.perf_counter()
            steps = train_one_epoch(run, state, epoch, stop)
            check_finite(run, state, epoch, steps.mean_loss)
            improved = record_epoch(run, state, epoch, steps, validate(run, state, epoch))
            time_epoch(state, steps, time.perf_counter() - epoch_start)
            write_start = time.perf_counter()
            stopping = stop.at_epoch_end()
            if clock.due(epoch, settings.epochs, stopping):
                save_progress(run, state)
            if run.ranks.writes:
                write_history(state.history, files.history_file)
            per_epoch = (time.perf_counter() - started) / (epoch - first_epoch + 1)
            log_epoch(
                run,
                state,
                improved,
                time.perf_counter() - write_start,
                per_epoch * (settings.epochs - epoch),
            )
            if stopping and epoch < settings.epochs:
                distributed.barrier()
                stop.exit(f"the end of epoch {epoch}", files.last_checkpoint)
    return finish(run, state, time.perf_counter() - started)


def finish(run: Run, state: TrainingState, seconds: float) -> dict[str, Any]:
    """The run's summary; a run whose every validation was non-finite has no best checkpoint."""
    if state.best_epoch == 0:
        raise NonFiniteLossError(
            "no epoch gave a finite validation mIoU, so there is no best checkpoint: check the "
            f"data and the split ({run.files.split_file})"
        )
    log.info(
        "done in %s; best val mIoU %.2f%% at epoch %d",
        format_duration(seconds),
        100 * state.best_miou,
        state.best_epoch,
    )
    return {
        "best_val_mIoU": state.best_miou,
        "best_epoch": state.best_epoch,
        "parameters": count_parameters(state.model),
    }
