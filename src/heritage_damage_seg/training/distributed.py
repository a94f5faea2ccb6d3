"""One training spread over several processes (ranks) with PyTorch's DistributedDataParallel.

Each rank is started by ``torchrun`` (one node) or as a task of ``srun`` (a SLURM job, one node
or several) and finds its place in the environment either sets. What keeps a run with N ranks
computing what one process computes with the same global batch:

- the loss's per-class sums are added across ranks before the Dice (and cross-entropy) is formed
  (:func:`sum_across_ranks`, differentiable), so every rank's loss is the loss of the whole
  global batch, not the mean of per-rank Dice scores;
- BatchNorm statistics are those of the whole global batch (:func:`synchronise_batch_norm`),
  without a host synchronisation per layer;
- DDP averages the gradients, which with the summed loss gives the global batch's gradient.

A single process never touches ``torch.distributed``: one GPU runs exactly as before.
"""

from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from timm.layers import BatchNormAct2d
from torch import nn

# A rank that waits longer than this for the others (a dead node, a hung collective) fails.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training's processes."""

    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def writes(self) -> bool:
        """Rank 0 alone writes checkpoints and history."""
        return self.rank == 0

    def part(self, batch: int) -> slice:
        """This rank's columns of a global batch of ``batch`` samples."""
        per_rank = batch // self.world
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    @classmethod
    def from_environment(cls) -> Ranks:
        """torchrun's RANK / LOCAL_RANK / WORLD_SIZE, else an srun task's SLURM_PROCID /
        SLURM_LOCALID / SLURM_NTASKS (set only by the launcher's srun, see launch.py)."""
        env = os.environ
        if "RANK" in env and "WORLD_SIZE" in env:
            return cls(int(env["RANK"]), int(env.get("LOCAL_RANK", 0)), int(env["WORLD_SIZE"]))
        if env.get("HDS_SRUN_RANKS") and "SLURM_PROCID" in env:
            return cls(
                int(env["SLURM_PROCID"]), int(env["SLURM_LOCALID"]), int(env["SLURM_NTASKS"])
            )
        return cls()


ONE_PROCESS = Ranks()


def start(ranks: Ranks, device: torch.device) -> None:
    """Joins the process group: NCCL between GPUs, gloo between CPU ranks."""
    if not ranks.distributed or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        rank=ranks.rank,
        world_size=ranks.world,
        timeout=COLLECTIVE_TIMEOUT,
        device_id=device if device.type == "cuda" else None,
    )


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class _SumAcrossRanks(torch.autograd.Function):
    """All-reduce (sum) whose gradient is the all-reduced gradient: every rank's loss depends on
    every rank's part of the sum."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total


def sum_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over all ranks, differentiable, or ``tensor`` itself in a single
    process. With DDP's gradient averaging (÷ ranks) the summed gradient gives every parameter
    the gradient of the loss of the whole global batch."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    return _SumAcrossRanks.apply(tensor)


def add_across_ranks_(tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum over all ranks of a tensor that needs no gradient (a confusion matrix)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _global_batch_norm(norm: nn.BatchNorm2d, input: torch.Tensor) -> torch.Tensor:
    """``norm`` applied with the statistics of the whole global batch: one differentiable
    all-reduce of the per-channel sums, squares and count (summed in fp32 whatever autocast gives),
    and no host synchronisation (torch's SyncBatchNorm boolean-indexes the gathered counts, a host
    sync in every BatchNorm layer of every forward)."""
    channels = input.shape[1]
    x = input.float()
    count = x.new_full((1,), x.numel() / channels)
    sums = sum_across_ranks(torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), count]))
    n = sums[-1]
    mean = sums[:channels] / n
    var = sums[channels : 2 * channels] / n - mean * mean
    if norm.track_running_stats and norm.running_mean is not None:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            momentum = norm.momentum if norm.momentum is not None else 0.1
            norm.running_mean.lerp_(mean.detach(), momentum)
            norm.running_var.lerp_(var.detach() * n / (n - 1), momentum)
    shape = (1, channels, 1, 1)
    normalised = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + norm.eps)
    if norm.affine:
        normalised = normalised * norm.weight.view(shape) + norm.bias.view(shape)
    return normalised.to(input.dtype)


def _synchronising() -> bool:
    return dist.is_available() and dist.is_initialized()


class RankSyncedBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch (CPU and GPU ranks)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and _synchronising()):
            return super().forward(input)
        return _global_batch_norm(self, input)


class RankSyncedBatchNormAct2d(BatchNormAct2d):
    """timm's BatchNorm + activation (MaxViT's stem and MBConv blocks), normalised alike."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and _synchronising()):
            return super().forward(input)
        return self.act(self.drop(_global_batch_norm(self, input)))


_SYNCED = {nn.BatchNorm2d: RankSyncedBatchNorm, BatchNormAct2d: RankSyncedBatchNormAct2d}


def synchronise_batch_norm(model: nn.Module) -> nn.Module:
    """Every BatchNorm layer of ``model`` normalising with the global batch's statistics across
    ranks, in place (parameters and buffers kept: the layers change class, not state)."""
    for module in model.modules():
        synced = _SYNCED.get(type(module))
        if synced is not None:
            module.__class__ = synced
        elif (
            isinstance(module, nn.modules.batchnorm._BatchNorm)
            and type(module) not in _SYNCED.values()
        ):
            raise NotImplementedError(
                f"{type(module).__name__} cannot be synchronised across ranks: train this encoder "
                "with training.gpus: 1"
            )
    return model


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``model`` (which keeps its plain parameter names)."""
    # No buffer broadcast before every forward (a collective per step): the synchronised BatchNorm
    # layers keep the running statistics equal on every rank, and those are the model's buffers.
    # (torch ≥ 2.12 names the option forward_sync_buffers; broadcast_buffers before.)
    parameters = inspect.signature(nn.parallel.DistributedDataParallel).parameters
    no_buffer_sync = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in parameters
        else {"broadcast_buffers": False}
    )
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None, **no_buffer_sync
    )
