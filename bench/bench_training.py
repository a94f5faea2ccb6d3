"""3. Training: end-to-end imgs/s (our input path + step) vs the model-only ceiling, per encoder.

Model-only: the same model, batch and optimizer step on one pre-made, already-normalised batch
on the device (no indexing, no augmentation). End to end: batches gathered from the resident
uint8 split, augmented and normalised on the device, as train.py does. Target: ratio >= 0.9.

Also per encoder: FLOPs per image (forward + backward, torch's FlopCounterMode; bench/flops.py)
and the model FLOP/s they make at the measured imgs/s. On CUDA: MFU against a bf16 matmul peak
measured on the same card, peak memory (``max_memory_allocated``), the ratio to the prototype's V100
figures, and whether the steps run without a host synchronisation: a few end-to-end steps and a
validation pass under ``torch.cuda.set_sync_debug_mode("error")``, reported as passed / failed
(the bench goes on either way). Two scopes: ``steps`` (the epoch's sample order already on the
device, as a per-step check) and ``train_loop`` (the batches made as train.py makes them, the
order moved to the device once per epoch and per validation pass).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from common import save
from flops import SEED_GFLOP_PER_IMAGE, V100_PEAK_TFLOPS, flops_per_image, matmul_peak_flops

from heritage_damage_seg import device as devices
from heritage_damage_seg.classes import NUM_CLASSES
from heritage_damage_seg.device import autocast_dtype, describe, pick_device, synchronize
from heritage_damage_seg.metrics import confusion_matrix
from heritage_damage_seg.model.inputs import to_model_input
from heritage_damage_seg.model.losses import WeightedDiceLoss
from heritage_damage_seg.model.models import ENCODERS, build_model
from heritage_damage_seg.training.batches import ResidentSplit, augment

SEED_BATCH = {"convnext_tiny": 96, "segformer_b3": 32, "maxvit_tiny": 48}
SEED_V100_IMGS_PER_S = {"convnext_tiny": 122.6, "segformer_b3": 81.9, "maxvit_tiny": 65.1}
TARGET_MFU = 0.35  # issue 17: >= 35 % of the measured bf16 peak on an H100, end to end


def without_host_sync(run: Callable[[], None]) -> dict[str, object]:
    """Runs ``run`` once to warm up, then again under ``set_sync_debug_mode("error")``, where any
    synchronising CUDA call raises; the outcome, never an exception."""
    run()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        run()
        outcome: dict[str, object] = {"passed": True}
    except RuntimeError as error:
        outcome = {"passed": False, "error": str(error).strip().splitlines()[0][:300]}
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    return outcome


def measure(
    encoder: str, size: int, batch: int, steps: int, device: torch.device, compile: bool = False
) -> dict[str, object]:
    torch.manual_seed(0)
    gpu = device.type == "cuda"
    if gpu:  # as train.py sets them
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    amp = autocast_dtype(device, True)
    channels_last = gpu
    model = build_model(encoder, image_size=size).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    forward = torch.compile(model) if compile else model
    loss_fn = WeightedDiceLoss(torch.ones(NUM_CLASSES)).to(device)
    rng = np.random.default_rng(0)
    n = batch * 4
    split = ResidentSplit(
        rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        rng.integers(0, 16, (n, size, size), dtype=np.uint8),
        np.arange(n),
        device,
    )
    generator = torch.Generator().manual_seed(0)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with devices.autocast(device, amp):
            logits = forward(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    fixed_x, fixed_y = next(split.batches(batch))
    fixed_input = to_model_input(fixed_x, channels_last)

    def model_only(k: int) -> float:
        synchronize(device)
        start = time.perf_counter()
        for _ in range(k):
            step(fixed_input, fixed_y)
        synchronize(device)
        return k * batch / (time.perf_counter() - start)

    def stream_seconds(k: int, train: bool) -> float:
        """Seconds for ``k`` batches of our input path (gather, augment, normalise), each followed
        by a training step when ``train``."""
        done = 0
        synchronize(device)
        start = time.perf_counter()
        while done < k:
            for x, y in split.batches(batch, generator=generator, drop_last=True):
                x, y = augment(x, y, generator)
                model_input = to_model_input(x, channels_last)
                if train:
                    step(model_input, y)
                done += 1
                if done == k:
                    break
        synchronize(device)
        return time.perf_counter() - start

    def end_to_end(k: int) -> float:
        return k * batch / stream_seconds(k, train=True)

    def input_only(k: int) -> float:
        """Seconds per batch of the input path alone."""
        return stream_seconds(k, train=False) / k

    model_only(2)  # warm-up: allocator, kernel selection
    # Interleave the two measurements so that load from elsewhere hits both alike.
    ceiling = max(model_only(steps), model_only(steps))
    e2e = max(end_to_end(steps), end_to_end(steps))
    # Timed alone too: on a CPU the two loops above differ by noise larger than the input path.
    input_seconds = min(input_only(steps * 4), input_only(steps * 4))
    row: dict[str, object] = {
        "model_only_imgs_per_s": ceiling,
        "end_to_end_imgs_per_s": e2e,
        "ratio": e2e / ceiling,
        "non_model_share_of_step": max(0.0, 1 - e2e / ceiling),
        "input_path_ms_per_batch": input_seconds * 1000,
        "input_path_share_of_model_step": input_seconds / (batch / ceiling),
    }
    if not gpu:
        return row
    row["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20

    def validation(order: torch.Tensor | None) -> None:
        """A validation pass as train.validation_confusion makes it (the plain model)."""
        model.eval()
        cm = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64, device=device)
        with torch.no_grad():
            for x, y in split.batches(batch, order=order):
                with devices.autocast(device, amp):
                    logits = model(to_model_input(x, channels_last))
                cm += confusion_matrix(logits.argmax(1), y)
        model.train()

    def steps_then_validation(device_order: bool) -> Callable[[], None]:
        def run() -> None:
            order = split.shuffled_order(generator)
            if device_order:  # made once per epoch: what the check is about is the steps
                order = order.to(device)
            for x, y in split.batches(batch, order=order, drop_last=True):
                x, y = augment(x, y, generator)
                step(to_model_input(x, channels_last), y)
            validation(torch.arange(len(split), device=device) if device_order else None)

        return run

    row["no_host_sync"] = {
        "steps": without_host_sync(steps_then_validation(device_order=True)),
        "train_loop": without_host_sync(steps_then_validation(device_order=False)),
    }
    return row


def summary(encoder: str, row: dict) -> str:
    """One line of the figures the issue asks for; ``not measured`` where the CPU has none."""
    line = (
        f"{encoder}{' (compiled)' if row['compile'] else ''}: {row['end_to_end_imgs_per_s']:.1f} "
        f"imgs/s end to end ({row['model_only_imgs_per_s']:.1f} model-only), "
        f"{row['gflop_per_image']:.1f} GFLOP/img, {row['model_tflops_end_to_end']:.2f} TFLOP/s"
    )
    if "mfu_end_to_end" not in row:
        return line + "; MFU, peak memory, host-sync check: not measured (no CUDA)"
    sync = row["no_host_sync"]
    line += (
        f", MFU {100 * row['mfu_end_to_end']:.1f} % of {row['bf16_matmul_peak_tflops']:.0f} "
        f"TFLOP/s (target {TARGET_MFU:.0%}: {row['target_imgs_per_s_at_35pct_mfu']:.0f} imgs/s), "
        f"peak memory {row['peak_memory_mb']:.0f} MB, no host sync: steps "
        f"{'pass' if sync['steps']['passed'] else 'FAIL'}, train loop "
        f"{'pass' if sync['train_loop']['passed'] else 'FAIL'}"
    )
    if "ratio_vs_seed_v100" in row:
        line += (
            f"; {row['ratio_vs_seed_v100']:.2f}x the prototype's V100 "
            f"(MFU {100 * row['seed_v100_mfu']:.0f} %)"
        )
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=None, help="default: 384 on GPU, 128 on CPU")
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="default: the prototype's per encoder on GPU, 8 on CPU",
    )
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--encoders", nargs="*", default=list(ENCODERS))
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the forward (training.compile)"
    )
    args = parser.parse_args()
    device = pick_device("auto")
    gpu = device.type == "cuda"
    size = args.size or (384 if gpu else 128)
    steps = args.steps or (20 if gpu else 3)
    peak = matmul_peak_flops() if gpu else None
    if peak:
        print(f"measured bf16 matmul peak: {peak / 1e12:.0f} TFLOP/s", flush=True)
    rows = {}
    for encoder in args.encoders:
        batch = args.batch or (SEED_BATCH[encoder] if gpu else 8)
        flops = flops_per_image(encoder, size)
        row = measure(encoder, size, batch, steps, device, args.compile) | {
            "batch": batch,
            "size": size,
            "compile": args.compile,
            "gflop_per_image": flops / 1e9,
        }
        e2e, ceiling = row["end_to_end_imgs_per_s"], row["model_only_imgs_per_s"]
        row["model_tflops_end_to_end"] = e2e * flops / 1e12
        if peak:
            row["bf16_matmul_peak_tflops"] = peak / 1e12
            row["mfu_end_to_end"] = e2e * flops / peak
            row["mfu_model_only"] = ceiling * flops / peak
            row["target_imgs_per_s_at_35pct_mfu"] = TARGET_MFU * peak / flops
        if gpu and size == 384 and batch == SEED_BATCH[encoder]:
            seed = SEED_V100_IMGS_PER_S[encoder]
            row["ratio_vs_seed_v100"] = e2e / seed
            row["seed_v100_mfu"] = seed * SEED_GFLOP_PER_IMAGE[encoder] / (V100_PEAK_TFLOPS * 1e3)
        rows[encoder] = row
        print(encoder, row, flush=True)
        print(summary(encoder, row), flush=True)
    command = (
        "python bench/bench_training.py"
        + (f" --steps {args.steps}" if args.steps else "")
        + (" --compile" if args.compile else "")
    )
    save(
        f"training_{device.type}" + ("_compiled" if args.compile else ""),
        {
            "command": command,
            "device": describe(device),
            "encoders": rows,
            "target": (
                "end-to-end >= 0.9 × model-only; GPU: >= 4× seed V100 and >= 35 % MFU end to end"
            ),
        },
    )


if __name__ == "__main__":
    main()
