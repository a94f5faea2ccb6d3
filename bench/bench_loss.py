"""6. Loss: peak memory and time of the Dice loss, forward + backward, before / after issue 17.

Before: the one-hot formulation the loss had until issue 17 (an int64 B×H×W×C one-hot of the
target with the ignored pixels masked, float copies of it and of the probabilities, per-class
sums of their products); copied below as it was, the reference ``tests/test_losses.py`` holds
too. After: today's :class:`~heritage_damage_seg.model.losses.WeightedDiceLoss` (per-class sums
by gather / scatter_add, no one-hot volume). Both on the same logits and uint8 targets with
ignored (255) pixels and absent classes. Logits come as the forward returns them: bf16 on CUDA
(autocast), fp32 on the CPU; the CPU also runs a bf16 row, whose proportions (one-hot int64 = 4×
the logits) are the GPU's.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, less
what the inputs already hold; on the CPU the peak RSS of a fresh child process per row, less its
RSS once the inputs exist (after a warm-up on a tiny batch, so that the libraries' one-off
buffers are not counted). The child runs with a fixed glibc mmap threshold
(``MALLOC_MMAP_THRESHOLD_``), so every tensor is mapped when allocated and unmapped when freed and
the RSS follows the live tensors instead of the allocator's cache. Time: best of a few passes.

    python bench/bench_loss.py       # GPU: batch 96 at 384 px (the prototype's); CPU: batch 8 at 128 px
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from common import best_of, child_peak_rss_mb, run_child, save

from heritage_damage_seg.classes import IGNORE_INDEX, NUM_CLASSES
from heritage_damage_seg.device import describe, pick_device
from heritage_damage_seg.model.losses import WeightedDiceLoss

BENCH_DIR = Path(__file__).resolve().parent
FORMULATIONS = {"before": "one_hot", "after": "scatter"}
PRESENT_CLASSES = 12  # classes 12-15 absent from the targets, as in most batches
IGNORED_PERCENT = 10
# Every allocation above 64 KiB its own mapping: RSS then tracks the live tensors.
CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def one_hot_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor,
    smooth: float = 1.0,
    eps: float = 1e-7,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """The former WeightedDiceLoss.forward: a B×C×H×W one-hot volume (int64 from ``one_hot``, then
    a float copy masked by the scored pixels), masked probabilities, sums over (B, H, W)."""
    num_classes = logits.shape[1]
    probs = logits.float().softmax(dim=1)
    target = target.long()
    scored = (target != ignore_index).unsqueeze(1)
    one_hot = F.one_hot(torch.where(scored.squeeze(1), target, 0), num_classes)  # B×H×W×C int64
    one_hot = one_hot.permute(0, 3, 1, 2).to(probs.dtype) * scored
    probs = probs * scored
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)
    cardinality = probs.sum(dims) + one_hot.sum(dims)
    dice = (2.0 * intersection + smooth) / (cardinality + smooth).clamp_min(eps)
    present = weights * (one_hot.sum(dims) > 0)
    return ((1.0 - dice) * present).sum() / present.sum().clamp_min(eps)


def inputs(
    batch: int, size: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits (requiring grad), uint8 targets with ignored pixels, class weights."""
    generator = torch.Generator(device=device).manual_seed(0)
    logits = torch.randn(
        batch, NUM_CLASSES, size, size, generator=generator, device=device, dtype=dtype
    )
    logits.requires_grad_()
    # uint8 draws straight away: no wider temporaries to raise the child's RSS before its baseline
    shape = (batch, size, size)
    target = torch.randint(
        0, PRESENT_CLASSES, shape, generator=generator, device=device, dtype=torch.uint8
    )
    ignored = torch.randint(0, 100, shape, generator=generator, device=device, dtype=torch.uint8)
    target[ignored < IGNORED_PERCENT] = IGNORE_INDEX
    del ignored
    weights = torch.linspace(0.5, 3.0, NUM_CLASSES, device=device)
    return logits, target, weights


def loss_function(formulation: str, weights: torch.Tensor) -> LossFunction:
    if formulation == "one_hot":
        return lambda logits, target: one_hot_dice_loss(logits, target, weights)
    return WeightedDiceLoss(weights).to(weights.device)


def forward_backward(loss_fn: LossFunction, logits: torch.Tensor, target: torch.Tensor):
    logits.grad = None
    loss = loss_fn(logits, target)
    loss.backward()
    return loss.detach()


def measure_cuda(
    formulation: str, batch: int, size: int, dtype: str, repeats: int
) -> dict[str, float]:
    device = torch.device("cuda")
    logits, target, weights = inputs(batch, size, device, getattr(torch, dtype))
    loss_fn = loss_function(formulation, weights)
    forward_backward(loss_fn, logits, target)  # warm-up: kernels, allocator
    logits.grad = None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    held = torch.cuda.memory_allocated()
    loss = forward_backward(loss_fn, logits, target)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    seconds = best_of(repeats, lambda: forward_backward(loss_fn, logits, target))
    return {
        "loss": float(loss),
        "peak_mb": (peak - held) / 2**20,
        "inputs_mb": held / 2**20,
        "ms": 1000 * seconds,
    }


def measure_cpu_child(
    formulation: str, batch: int, size: int, dtype: str, repeats: int
) -> dict[str, float]:
    """Runs in a fresh process (:func:`measure_cpu`), so the peak RSS is this row's alone."""
    cpu, torch_dtype = torch.device("cpu"), getattr(torch, dtype)
    small_logits, small_target, small_weights = inputs(1, 32, cpu, torch_dtype)
    forward_backward(loss_function(formulation, small_weights), small_logits, small_target)
    logits, target, weights = inputs(batch, size, cpu, torch_dtype)
    loss_fn = loss_function(formulation, weights)
    held = child_peak_rss_mb()
    loss = forward_backward(loss_fn, logits, target)
    peak = child_peak_rss_mb()
    seconds = best_of(repeats, lambda: forward_backward(loss_fn, logits, target))
    return {
        "loss": float(loss),
        "peak_mb": peak - held,
        "inputs_mb": (logits.nbytes + target.nbytes) / 2**20,
        "process_peak_rss_mb": peak,
        "ms": 1000 * seconds,
    }


CHILD = """
import json, sys
sys.path.insert(0, {bench!r})
from bench_loss import measure_cpu_child
print(json.dumps(measure_cpu_child({formulation!r}, {batch}, {size}, {dtype!r}, {repeats})))
"""


def measure_cpu(
    formulation: str, batch: int, size: int, dtype: str, repeats: int
) -> dict[str, float]:
    code = CHILD.format(
        bench=str(BENCH_DIR),
        formulation=formulation,
        batch=batch,
        size=size,
        dtype=dtype,
        repeats=repeats,
    )
    return run_child(code, env=CHILD_ENV)


def compare(batch: int, size: int, dtype: str, repeats: int, gpu: bool) -> dict:
    measure = measure_cuda if gpu else measure_cpu
    rows = {}
    for when, formulation in FORMULATIONS.items():
        rows[when] = {"formulation": formulation} | measure(
            formulation, batch, size, dtype, repeats
        )
    before, after = rows["before"], rows["after"]
    result = {
        "logits_dtype": dtype,
        "before": before,
        "after": after,
        "peak_memory_ratio_before_over_after": before["peak_mb"] / after["peak_mb"],
        "time_ratio_before_over_after": before["ms"] / after["ms"],
        "abs_loss_difference": abs(before["loss"] - after["loss"]),
    }
    print(
        f"{dtype} logits: peak memory beyond the inputs {before['peak_mb']:.1f} MB (one-hot) -> "
        f"{after['peak_mb']:.1f} MB (scatter), "
        f"{result['peak_memory_ratio_before_over_after']:.2f}x less; time {before['ms']:.1f} -> "
        f"{after['ms']:.1f} ms ({result['time_ratio_before_over_after']:.2f}x); "
        f"|loss difference| {result['abs_loss_difference']:.1e}",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=None, help="default: 96 on GPU, 8 on CPU")
    parser.add_argument("--size", type=int, default=None, help="default: 384 on GPU, 128 on CPU")
    parser.add_argument(
        "--dtypes",
        nargs="*",
        default=None,
        choices=["float32", "bfloat16"],
        help="logits dtypes: default bfloat16 on GPU, float32 and bfloat16 on CPU",
    )
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    device = pick_device("auto")
    gpu = device.type == "cuda"
    batch = args.batch or (96 if gpu else 8)
    size = args.size or (384 if gpu else 128)
    dtypes = args.dtypes or (["bfloat16"] if gpu else ["float32", "bfloat16"])
    repeats = args.repeats or (10 if gpu else 5)
    print(
        f"Dice loss forward + backward, batch {batch} at {size} px, {NUM_CLASSES} classes, "
        f"{describe(device)}",
        flush=True,
    )
    start = time.perf_counter()
    rows = {dtype: compare(batch, size, dtype, repeats, gpu) for dtype in dtypes}
    options = (("batch", args.batch), ("size", args.size), ("repeats", args.repeats))
    command = "python bench/bench_loss.py" + "".join(
        f" --{name} {value}" for name, value in options if value
    )
    if args.dtypes:
        command += " --dtypes " + " ".join(args.dtypes)
    save(
        f"loss_{device.type}",
        {
            "command": command,
            "device": describe(device),
            "batch": batch,
            "size": size,
            "classes": NUM_CLASSES,
            "peak_memory": (
                "torch.cuda.max_memory_allocated after reset_peak_memory_stats, less the inputs"
                if gpu
                else "peak RSS of a fresh child process (MALLOC_MMAP_THRESHOLD_=65536), less its "
                "RSS once the inputs exist"
            ),
            "one_hot_int64_mb_arithmetic": batch * size * size * NUM_CLASSES * 8 / 2**20,
            "rows": rows,
            "seconds": time.perf_counter() - start,
        },
    )


if __name__ == "__main__":
    main()
