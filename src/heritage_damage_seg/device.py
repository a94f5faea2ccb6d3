"""Which device and numeric precision a job runs with."""

from __future__ import annotations

import os
import resource

import torch

# Set by SLURM in a job (step) that was given GPUs (sbatch/srun --gpus, --gres=gpu:…).
SLURM_GPU_VARIABLES = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES")


def slurm_gpus() -> str | None:
    """The GPUs SLURM gave this job, as its environment names them; None outside SLURM or without a GPU."""
    if not os.environ.get("SLURM_JOB_ID"):
        return None
    for name in SLURM_GPU_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value and value not in {"NoDevFiles", "-1"}:
            return f"{name}={value}"
    return None


def pick_device(preference: str = "auto") -> torch.device:
    """``auto``: the GPU if torch sees one, else the CPU, except in a SLURM job that was given a GPU
    which torch cannot see (no driver, a CPU-only torch build, a fake GPU): that job fails, rather
    than run on the CPU of a GPU node for hours. ``cpu`` runs on the CPU on purpose (also there)."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        allotted = slurm_gpus()
        if allotted:
            raise RuntimeError(
                f"SLURM gave this job a GPU ({allotted}, job {os.environ['SLURM_JOB_ID']}) but torch "
                f"{torch.__version__} sees no CUDA device (torch.version.cuda={torch.version.cuda}); "
                "refusing to run on the CPU. Check the node's driver and the torch build, or set "
                "training.device: cpu to run on the CPU on purpose"
            )
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device '{preference}' was asked for but no CUDA GPU is visible to this job"
        )
    return device


def autocast_dtype(device: torch.device, mixed_precision: bool) -> torch.dtype | None:
    """bf16 where the GPU has it, else fp16 on CUDA; None (full fp32) on the CPU, where autocast
    is slower than fp32 for these models."""
    if not mixed_precision or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated on CUDA; peak resident set size of this process on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def autocast(device: torch.device | str, amp_dtype: torch.dtype | None) -> torch.autocast:
    """Mixed precision in ``amp_dtype`` (:func:`autocast_dtype`); full fp32 where it is None."""
    device_type = device if isinstance(device, str) else device.type
    return torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None)
