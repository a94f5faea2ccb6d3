"""Which device and numeric precision a job runs with, decided once per process.

Every decision that depends on the GPU is a plain function of what the GPU is (its compute
capability, the kernels the installed torch carries) so that it can be checked without one:
:func:`precision_for`, :func:`has_kernels_for`, :func:`fits_beside_model`. The functions that ask
the real GPU (:func:`pick_device`, :func:`autocast_dtype`) only gather those facts and call them.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence

import torch

# Set by SLURM in a job (step) that was given GPUs (sbatch/srun --gpus, --gres=gpu:…).
SLURM_GPU_VARIABLES = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES")

# The install that runs on GPUs the default lock has no kernels for (V100: sm_70), or on drivers
# too old for the default lock's CUDA 13 (docs/gpus.md).
OLD_GPU_INSTALL = "rm -rf .venv && bash scripts/setup.sh --lock sm70"

PRECISIONS = ("bf16", "fp16", "fp32")
AMP_DTYPES: dict[str, torch.dtype | None] = {
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": None,
}
NATIVE_BF16_CAPABILITY = (8, 0)  # Ampere: bf16 tensor cores; below it cuDNN emulates or refuses

GPU_MEMORY_SHARE_FOR_DATA = 0.35
"""The resident uint8 split (train and val together) stays on the GPU only if it takes at most this
share of the GPU's total memory and leaves the rest of the free memory for the model, its
activations and the optimizer (decided before the model exists, so free memory is still total
minus other processes); otherwise it stays in pageable host memory and each batch is copied
through a pinned staging buffer."""


def slurm_gpus() -> str | None:
    """The GPUs SLURM gave this job, as its environment names them; None outside SLURM or without a GPU."""
    if not os.environ.get("SLURM_JOB_ID"):
        return None
    for name in SLURM_GPU_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value and value not in {"NoDevFiles", "-1"}:
            return f"{name}={value}"
    return None


def pick_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """The one device of this process, always with its index (``cuda:N``, never bare ``cuda``, so
    that device comparisons hold): ``auto`` is the GPU if torch sees one, else the CPU, except in a
    SLURM job that was given a GPU which torch cannot see (no driver, a driver too old for this
    torch's CUDA, a CPU-only torch build, a fake GPU): that job fails, rather than run on the CPU of
    a GPU node for hours. ``cpu`` runs on the CPU on purpose (also there). A rank of a
    data-parallel run takes GPU ``local_rank`` of those it sees (srun may show each task one).

    The chosen GPU becomes the current CUDA device, and a GPU this torch build has no kernels for
    fails here, before any data is loaded."""
    if preference == "auto":
        if not torch.cuda.is_available():
            allotted = slurm_gpus()
            if allotted:
                raise RuntimeError(
                    f"SLURM gave this job a GPU ({allotted}, job {os.environ['SLURM_JOB_ID']}) but "
                    f"{describe_build()} sees no CUDA device{_driver_note()}; refusing to run on the "
                    "CPU. Check the node's driver; on a driver older than this build's CUDA install "
                    f"`{OLD_GPU_INSTALL}`; or set training.device: cpu to run on the CPU on purpose"
                )
            return torch.device("cpu")
        preference = "cuda"
    device = torch.device(preference)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"device '{preference}' was asked for but no CUDA GPU is visible to this job "
            f"({describe_build()}{_driver_note()})"
        )
    index = device.index if device.index is not None else local_rank % torch.cuda.device_count()
    device = torch.device("cuda", index)
    check_kernels(
        torch.cuda.get_device_name(device),
        torch.cuda.get_device_capability(device),
        torch.cuda.get_arch_list(),
    )
    torch.cuda.set_device(device)
    return device


def describe_build() -> str:
    return f"torch {torch.__version__} (CUDA {torch.version.cuda or 'none: a CPU-only build'})"


def _driver_note() -> str:
    """The driver's CUDA version where a driver answers (a driver too old for the build's CUDA
    makes torch see no GPU)."""
    try:
        version = torch._C._cuda_getDriverVersion()  # 0 without a driver
    except (AttributeError, RuntimeError):
        return ""
    if not version:
        return ", no NVIDIA driver found"
    return f", the driver supports CUDA up to {version // 1000}.{version % 1000 // 10}"


def has_kernels_for(capability: tuple[int, int], arch_list: Sequence[str]) -> bool:
    """Whether a torch build compiled for ``arch_list`` (``torch.cuda.get_arch_list()``: ``sm_XY``
    binaries, ``compute_XY`` PTX) runs on a GPU of ``capability``: a binary of the same major
    version and no higher minor one, or PTX of no higher version (compiled at load)."""
    major, minor = capability
    for arch in arch_list:
        kind, _, number = arch.partition("_")
        if not number.isdigit():
            continue
        arch_major, arch_minor = int(number[:-1]), int(number[-1])
        if kind == "sm" and arch_major == major and arch_minor <= minor:
            return True
        if kind == "compute" and (arch_major, arch_minor) <= (major, minor):
            return True
    return False


def check_kernels(name: str, capability: tuple[int, int], arch_list: Sequence[str]) -> None:
    """Fails at once, naming the GPU, the build and the fix, where the GPU would otherwise fail at
    its first kernel ("no kernel image is available for execution on the device")."""
    if has_kernels_for(capability, arch_list):
        return
    sm = f"sm_{capability[0]}{capability[1]}"
    raise RuntimeError(
        f"the GPU {name} ({sm}) cannot run {describe_build()}: its kernels are for "
        f"{', '.join(arch_list) or 'no GPU'}. Install a build with {sm} kernels: `{OLD_GPU_INSTALL}` "
        "(docs/gpus.md), or run on a newer GPU"
    )


def precision_for(device_type: str, capability: tuple[int, int] | None, mixed: bool) -> str:
    """``bf16`` where the GPU computes it natively (sm_80 and up), ``fp16`` (with a gradient
    scaler) on older GPUs, which only emulate bf16, ``fp32`` on the CPU (autocast there is slower
    than fp32 for these models) or when mixed precision is off."""
    if not mixed or device_type != "cuda":
        return "fp32"
    if capability is not None and tuple(capability) >= NATIVE_BF16_CAPABILITY:
        return "bf16"
    return "fp16"


def precision(device: torch.device, mixed_precision: bool) -> str:
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return precision_for(device.type, capability, mixed_precision)


def autocast_dtype(device: torch.device, mixed_precision: bool) -> torch.dtype | None:
    """The autocast dtype of :func:`precision` (None: full fp32)."""
    return AMP_DTYPES[precision(device, mixed_precision)]


def precision_name(amp_dtype: torch.dtype | None) -> str:
    """``bf16`` / ``fp16`` / ``fp32``: how history, metrics and the model card name it."""
    return {dtype: name for name, dtype in AMP_DTYPES.items()}[amp_dtype]


def fits_beside_model(nbytes: int, free: int, total: int) -> bool:
    """Whether ``nbytes`` of resident data may live on a GPU with ``free`` of ``total`` bytes free:
    at most :data:`GPU_MEMORY_SHARE_FOR_DATA` of the GPU, and of what is free now, so that other
    processes' memory is not counted as ours."""
    return nbytes <= GPU_MEMORY_SHARE_FOR_DATA * min(free, total)


def data_fits_on_gpu(nbytes: int, device: torch.device) -> bool:
    free, total = torch.cuda.mem_get_info(device)
    return fits_beside_model(nbytes, free, total)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
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
