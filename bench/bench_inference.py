"""4. Inference: ms per image per encoder at batch 1 and batch 32 (eval mode, no grad)."""

from __future__ import annotations

import argparse

import torch
from common import best_of, save

from heritage_damage_seg import device as devices
from heritage_damage_seg.device import autocast_dtype, describe, pick_device
from heritage_damage_seg.model.models import ENCODERS, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    device = pick_device("auto")
    amp = autocast_dtype(device, True)
    repeats = args.repeats or (20 if device.type == "cuda" else 2)
    rows: dict[str, dict[str, float]] = {}
    for encoder in ENCODERS:
        model = build_model(encoder, image_size=args.size).to(device).eval()
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        rows[encoder] = {}
        for batch in args.batches:
            x = torch.randn(batch, 3, args.size, args.size, device=device)

            @torch.no_grad()
            def forward(model=model, x=x) -> None:
                with devices.autocast(device, amp):
                    model(x).argmax(1)

            forward()
            rows[encoder][f"batch_{batch}_ms_per_image"] = 1000 * best_of(repeats, forward) / batch
        print(encoder, rows[encoder], flush=True)
    save(
        f"inference_{device.type}",
        {
            "command": f"python bench/bench_inference.py --size {args.size}",
            "device": describe(device),
            "size": args.size,
            "encoders": rows,
        },
    )


if __name__ == "__main__":
    main()
