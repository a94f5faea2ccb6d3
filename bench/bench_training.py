"""3. Training: end-to-end imgs/s (our input path + step) vs the model-only ceiling, per encoder.

Model-only: the same model, batch and optimizer step on one pre-made, already-normalised batch
on the device (no indexing, no augmentation). End to end: batches gathered from the resident
uint8 split, augmented and normalised on the device, as train.py does. Target: ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import save

from heritage_damage_seg import device as devices
from heritage_damage_seg.classes import NUM_CLASSES
from heritage_damage_seg.device import autocast_dtype, describe, pick_device, synchronize
from heritage_damage_seg.model.inputs import to_model_input
from heritage_damage_seg.model.losses import WeightedDiceLoss
from heritage_damage_seg.model.models import ENCODERS, build_model
from heritage_damage_seg.training.batches import ResidentSplit, augment

SEED_BATCH = {"convnext_tiny": 96, "segformer_b3": 32, "maxvit_tiny": 48}
SEED_V100_IMGS_PER_S = {"convnext_tiny": 122.6, "segformer_b3": 81.9, "maxvit_tiny": 65.1}


def measure(
    encoder: str, size: int, batch: int, steps: int, device: torch.device, compile: bool = False
) -> dict[str, float]:
    torch.manual_seed(0)
    amp = autocast_dtype(device, True)
    channels_last = device.type == "cuda"
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
    return {
        "model_only_imgs_per_s": ceiling,
        "end_to_end_imgs_per_s": e2e,
        "ratio": e2e / ceiling,
        "non_model_share_of_step": max(0.0, 1 - e2e / ceiling),
        "input_path_ms_per_batch": input_seconds * 1000,
        "input_path_share_of_model_step": input_seconds / (batch / ceiling),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=None, help="default: 384 on GPU, 128 on CPU")
    parser.add_argument(
        "--batch", type=int, default=None, help="default: the seed's per encoder on GPU, 8 on CPU"
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
    rows = {}
    for encoder in args.encoders:
        batch = args.batch or (SEED_BATCH[encoder] if gpu else 8)
        row = measure(encoder, size, batch, steps, device, args.compile) | {
            "batch": batch,
            "size": size,
            "compile": args.compile,
        }
        if gpu and size == 384 and batch == SEED_BATCH[encoder]:
            row["ratio_vs_seed_v100"] = row["end_to_end_imgs_per_s"] / SEED_V100_IMGS_PER_S[encoder]
        rows[encoder] = row
        print(encoder, row, flush=True)
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
            "target": "end-to-end >= 0.9 × model-only; GPU: >= 4× seed V100",
        },
    )


if __name__ == "__main__":
    main()
