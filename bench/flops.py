"""Model FLOPs and the GPU's measured peak, for MFU (model FLOPs utilisation).

FLOPs per image: forward + backward of one training step, counted by torch's
``FlopCounterMode`` (matmuls, convolutions, attention; 2 FLOPs per multiply-add), as the prototype
counted its 271.5 / 568.8 / 266.2 GFLOP per 384-px image. The model runs on the ``meta`` device,
so counting costs no arithmetic and works the same without a GPU.

Peak: the best of a few 8192³ bf16 matmuls on the GPU (cuBLAS), measured rather than taken from
a datasheet (an H100 SXM is sold as 989 TFLOP/s dense bf16 and sustains ~700-800 in practice).
MFU = imgs/s × FLOPs per image / that peak. Without CUDA the peak is not measured.

    python bench/flops.py [--size 384]     # prints ours vs the prototype's per encoder, the peak on a GPU
"""

from __future__ import annotations

import argparse

import torch
from common import save
from torch.utils.flop_counter import FlopCounterMode

from heritage_damage_seg.model.models import ENCODERS, build_model

# The prototype's figures (forward + backward, 384 px, torch FlopCounter), GFLOP per image.
SEED_GFLOP_PER_IMAGE = {"convnext_tiny": 271.5, "segformer_b3": 568.8, "maxvit_tiny": 266.2}
SEED_SIZE = 384
# The prototype's V100 (fp16 tensor cores, datasheet) behind its 27 / 37 / 14 % MFU.
V100_PEAK_TFLOPS = 125.0


def flops_per_image(encoder: str, size: int, batch: int = 2) -> float:
    """FLOPs of forward + backward per ``size``-px image for ``encoder`` (train mode).

    Counted at ``batch`` (2: batch norm in train mode wants more than one value per channel) on
    the meta device and divided by it; the count is linear in the batch.
    """
    model = build_model(encoder, image_size=size).to("meta").train()
    x = torch.empty(batch, 3, size, size, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(x).float().sum().backward()
    return counter.get_total_flops() / batch


def matmul_peak_flops(n: int = 8192, repeats: int = 5, inner: int = 10) -> float:
    """FLOP/s of the best of ``repeats`` timings of ``inner`` back-to-back n³ bf16 matmuls (CUDA)."""
    if not torch.cuda.is_available():
        raise RuntimeError("the matmul peak is measured on a CUDA GPU; none is visible")
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):  # warm-up: cuBLAS heuristics, clocks
        torch.mm(a, b, out=out)
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            torch.mm(a, b, out=out)
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1000 / inner)
    del a, b, out
    torch.cuda.empty_cache()
    return 2 * n**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=SEED_SIZE)
    parser.add_argument("--encoders", nargs="*", default=list(ENCODERS))
    args = parser.parse_args()
    rows = {}
    for encoder in args.encoders:
        gflop = flops_per_image(encoder, args.size) / 1e9
        row: dict[str, float | None] = {"gflop_per_image": gflop}
        if args.size == SEED_SIZE:
            row["seed_gflop_per_image"] = SEED_GFLOP_PER_IMAGE[encoder]
            row["ratio_to_seed"] = gflop / SEED_GFLOP_PER_IMAGE[encoder]
        rows[encoder] = row
        print(
            f"{encoder}: {gflop:.1f} GFLOP per {args.size}-px image (forward + backward)"
            + (f"; seed {SEED_GFLOP_PER_IMAGE[encoder]}" if args.size == SEED_SIZE else ""),
            flush=True,
        )
    peak = matmul_peak_flops() / 1e12 if torch.cuda.is_available() else None
    print(
        f"measured bf16 matmul peak: {peak:.0f} TFLOP/s"
        if peak
        else "bf16 matmul peak: not measured (no CUDA GPU)"
    )
    save(
        "flops",
        {
            "command": "python bench/flops.py"
            + (f" --size {args.size}" if args.size != SEED_SIZE else ""),
            "size": args.size,
            "counted_with": "torch.utils.flop_counter.FlopCounterMode, meta device, forward + backward",
            "encoders": rows,
            "bf16_matmul_peak_tflops": peak,
        },
    )


if __name__ == "__main__":
    main()
