"""2. Input path: augmented training samples per second, ours vs the prototype's per-sample CPU path.

Ours: uint8 cache rows resident on the device, per-sample flips/transposes on the batch, then
normalisation (heritage_damage_seg.training.batches). The prototype's: per sample, resize the
stored-resolution
uint8 image to the training size, flip/rotate, normalise to float32, in DataLoader workers.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import best_of, save
from PIL import Image

from heritage_damage_seg.device import pick_device
from heritage_damage_seg.model.inputs import to_model_input
from heritage_damage_seg.training.batches import ResidentSplit, augment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--native-side", type=int, default=1200, help="stored size for the prototype's path"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    masks = rng.integers(0, 16, (args.images, args.size, args.size), dtype=np.uint8)
    results: dict[str, object] = {
        "command": f"python bench/bench_input.py --size {args.size} --batch {args.batch}"
    }
    for device_name in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        device = pick_device(device_name)
        split = ResidentSplit(images, masks, np.arange(args.images), device)
        generator = torch.Generator().manual_seed(0)

        def one_epoch(split=split, generator=generator, device=device) -> None:
            for x, y in split.batches(args.batch, generator=generator, drop_last=True):
                x, y = augment(x, y, generator)
                to_model_input(x, channels_last=device.type == "cuda")

        one_epoch()
        seconds = best_of(3, one_epoch)
        results[f"ours_{device_name}_samples_per_s"] = (
            args.images - args.images % args.batch
        ) / seconds

    native = rng.integers(
        0, 256, (args.native_side, int(args.native_side * 1.3), 3), dtype=np.uint8
    )
    native_mask = rng.integers(0, 16, native.shape[:2], dtype=np.uint8)
    mean, std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255

    def seed_samples(n: int = 32) -> None:
        for _ in range(n):
            image = np.asarray(
                Image.fromarray(native).resize((args.size, args.size), Image.Resampling.BILINEAR)
            )
            mask = np.asarray(
                Image.fromarray(native_mask).resize(
                    (args.size, args.size), Image.Resampling.NEAREST
                )
            )
            if rng.random() < 0.5:
                image, mask = image[:, ::-1], mask[:, ::-1]
            k = int(rng.integers(4))
            image, mask = np.rot90(image, k), np.rot90(mask, k)
            ((image.astype(np.float32) - mean) / std).transpose(2, 0, 1).copy()

    results["seed_cpu_samples_per_s_one_worker"] = 32 / best_of(3, seed_samples)
    results["ratio_ours_cpu_vs_seed_one_worker"] = (
        results["ours_cpu_samples_per_s"] / results["seed_cpu_samples_per_s_one_worker"]
    )
    results["target"] = ">= 1000 samples/s on the CPU (or GPU augmentation)"
    save("input", results)


if __name__ == "__main__":
    main()
