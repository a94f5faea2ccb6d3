"""Everything a training run changes as it goes, in one object that knows how to become the
resumable checkpoint (``model_last.pt``) and how to come back from it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from heritage_damage_seg.training.checkpoints import (
    CHECKPOINT_FORMAT,
    restore_rng_states,
    rng_states,
)


@dataclass
class Position:
    """Where an interrupted epoch stopped: the rest of it runs in its own order."""

    epoch: int
    step: int
    order: torch.Tensor
    loss_sum: torch.Tensor
    seen: int
    shards: int = 1  # of the order: the number of ranks that trained on it

    def record(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "order": self.order,
            "loss_sum": self.loss_sum.detach().cpu(),
            "seen": self.seen,
            "shards": self.shards,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Position:
        return cls(
            epoch=record["epoch"],
            step=record["step"],
            order=record["order"],
            loss_sum=torch.as_tensor(record["loss_sum"], dtype=torch.float32),
            seen=int(record["seen"]),
            shards=int(record.get("shards", 1)),
        )


@dataclass
class TrainingState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    history: list[dict[str, float]] = field(default_factory=list)
    completed: int = 0  # epochs finished
    best_epoch: int = 0  # 0: no epoch validated to a finite mIoU yet
    best_miou: float = -math.inf
    # The best epoch's weights, kept on the model's device: no host copy per improved epoch; they
    # reach the disk with the next checkpoint.
    best_weights: dict[str, torch.Tensor] | None = None
    position: Position | None = None
    best_saved_epoch: int = 0  # the epoch model_best.pt holds

    def keep_best(self, epoch: int, miou: float) -> None:
        self.best_epoch, self.best_miou = epoch, miou
        self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def last_val_miou(self) -> float:
        return self.history[-1]["val_mIoU"] if self.history else float("nan")

    def resumable(self, position: Position | None = None) -> dict[str, Any]:
        """The resumable part of ``model_last.pt`` (the caller adds the run's metadata)."""
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "model_state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_states(self.generator),
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_val_mIoU": self.best_miou,
            "position": position.record() if position else None,
        }
        # The best weights are the model's own at the end of the best epoch: stored only when not.
        if self.best_weights is not None and (position or self.best_epoch != self.completed):
            checkpoint["best_model_state_dict"] = self.best_weights
        return checkpoint

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model_state_dict"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        restore_scaler(self.scaler, checkpoint["scaler"])
        restore_rng_states(checkpoint["rng"], self.generator)
        self.history = list(checkpoint["history"])
        self.completed, self.best_epoch = checkpoint["epoch"], checkpoint["best_epoch"]
        self.best_miou = checkpoint["best_val_mIoU"] if self.best_epoch else -math.inf
        position = checkpoint.get("position")
        self.position = Position.from_record(position) if position else None
        if self.best_epoch:
            self.best_weights = (
                checkpoint.get("best_model_state_dict") or checkpoint["model_state_dict"]
            )


def restore_scaler(scaler: torch.amp.GradScaler, saved: dict[str, Any]) -> None:
    """The gradient scaler's state, across precisions: a run trained in bf16 or fp32 (no scaler:
    its state is ``{}``) and resumed on a GPU that trains in fp16 starts a fresh scaler, which
    torch's load would refuse ("The source state dict is empty"); a scaler's state resumed
    without fp16 is not needed."""
    if scaler.is_enabled() and saved:
        scaler.load_state_dict(saved)
