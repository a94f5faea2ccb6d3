"""1. Data preparation: the prototype's RAM preload vs our prepared cache, on the same files.

The prototype (UPSTREAM-FACTS) decoded every image and mask with PIL at its stored resolution and kept
them as uint8 arrays in Python lists, every training run (30.33 GB, ~30 min for 1,458 files), and
resized on every step. We decode and resize once into a uint8 cache at the training size; a
training run then memory-maps it. Reported: the prototype's preload vs our one-off build, vs our
per-run load, and the memory each holds during training.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import run_child, save

SEED_PRELOAD = """
import json, time, resource, numpy as np
from pathlib import Path
from PIL import Image
Image.MAX_IMAGE_PIXELS = 250_000_000
root = Path({root!r}); start = time.perf_counter(); images, masks = [], []
for path in sorted((root / "images").glob("*.png")):
    images.append(np.array(Image.open(path).convert("RGB")))
    masks.append(np.array(Image.open(root / "annotations" / path.name)))
held = sum(a.nbytes for a in images) + sum(m.nbytes for m in masks)
print(json.dumps({{"seconds": time.perf_counter() - start, "held_mb": held / 2**20,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

OUR_BUILD = """
import json, time, resource
from heritage_damage_seg.data.folder import build_cache
root = {root!r}; start = time.perf_counter()
build_cache(root + "/images", root + "/annotations", {cache!r}, size={size}, workers={workers})
print(json.dumps({{"seconds": time.perf_counter() - start,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

OUR_LOAD = """
import json, time, resource, numpy as np, torch
from heritage_damage_seg.data.cache import load_cache
start = time.perf_counter(); cache = load_cache({cache!r})
images = torch.from_numpy(np.ascontiguousarray(cache.images))
masks = torch.from_numpy(np.ascontiguousarray(cache.masks))
print(json.dumps({{"seconds": time.perf_counter() - start, "held_mb": (images.nbytes + masks.nbytes) / 2**20,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--artworks", type=int, default=40, help="synthetic artworks (×3 views)")
    parser.add_argument("--min-side", type=int, default=500)
    parser.add_argument("--max-side", type=int, default=3000)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    from heritage_damage_seg.data.synthetic import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        frame = generate_dataset(
            root,
            n_artworks=args.artworks,
            views_per_artwork=3,
            seed=1,
            min_side=args.min_side,
            max_side=args.max_side,
            background_fraction=0.3,
            workers=args.workers,
        )
        cache = str(Path(tmp) / "cache")
        seed = run_child(SEED_PRELOAD.format(root=str(root)))
        build = run_child(
            OUR_BUILD.format(root=str(root), cache=cache, size=args.size, workers=args.workers)
        )
        load = run_child(OUR_LOAD.format(cache=cache))
    save(
        "prepare",
        {
            "command": (
                f"python bench/bench_prepare.py --artworks {args.artworks} "
                f"--min-side {args.min_side} --max-side {args.max_side}"
            ),
            "images": len(frame),
            "seed_preload_seconds": seed["seconds"],
            "seed_held_mb": seed["held_mb"],
            "seed_peak_rss_mb": seed["peak_rss_mb"],
            "our_build_seconds": build["seconds"],
            "our_build_peak_rss_mb": build["peak_rss_mb"],
            "our_per_run_load_seconds": load["seconds"],
            "our_held_mb": load["held_mb"],
            "our_load_peak_rss_mb": load["peak_rss_mb"],
            "ratio_seed_preload_vs_our_build": seed["seconds"] / build["seconds"],
            "ratio_seed_preload_vs_our_per_run_load": seed["seconds"] / load["seconds"],
            "ratio_dataset_memory_seed_vs_ours": seed["held_mb"] / load["held_mb"],
            "targets": "time ratio >= 50, memory ratio >= 25",
        },
    )


if __name__ == "__main__":
    main()
