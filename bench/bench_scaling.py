"""8. Data-parallel scaling: training images/s with N ranks over N × the images/s of one rank.

Runs the real training code on a synthetic cache (bench_epoch.write_inputs): one process, then
``--ranks`` DDP ranks started as the train rule starts them
(:func:`heritage_damage_seg.training.launch.launch_ranks`: torchrun on this machine), with the
same global batch, so each rank steps on batch / N images. Throughput is ``train_imgs_per_s`` of
history.csv (the steps' images of all ranks over the epoch's step time), averaged over the epochs
after the first (the first includes warm-up).

    scaling efficiency = imgs/s with N ranks / (N × imgs/s with 1)

GPU: every visible GPU (needs two or more), 384 px, the prototype's batch per encoder, the three
encoders. CPU: 2 ranks of ``--threads`` threads each against one process of as many threads (the
figure says how much the all-reduces and the smaller per-rank batch cost, not what GPUs gain).

    python bench/bench_scaling.py             # CPU: convnext_tiny, 64 px, 48 scans, batch 8
    python bench/bench_scaling.py --ranks 4   # on a machine with 4 GPUs
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
from bench_epoch import SEED_BATCH, settings_for, write_inputs
from common import save

from heritage_damage_seg.device import describe, pick_device
from heritage_damage_seg.model.models import ENCODERS
from heritage_damage_seg.training.launch import WORKER_MODULE, launch_ranks, write_job


def throughput(history_file: Path) -> float:
    history = pd.read_csv(history_file)
    rows = history.iloc[1:] if len(history) > 1 else history
    return float(rows["train_imgs_per_s"].mean())


def train_with(ranks: int, settings, inputs: dict, out: Path, threads: int) -> float:
    """Global training images/s of one run with ``ranks`` processes."""
    out.mkdir(parents=True)
    files = inputs | {
        "best_checkpoint": str(out / "model_best.pt"),
        "last_checkpoint": str(out / "model_last.pt"),
        "history_file": str(out / "history.csv"),
    }
    settings = dataclasses.replace(settings, gpus=ranks)
    if ranks == 1:
        job = write_job(out / "job.json", settings, files, threads, str(out / "train.log"))
        # The worker outside torchrun/srun is one process: the single-GPU path.
        subprocess.run([sys.executable, "-m", WORKER_MODULE, str(job)], check=True)
    else:
        launch_ranks(settings, files, threads=threads, log_file=str(out / "train.log"))
    return throughput(out / "history.csv")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ranks", type=int, default=None, help="GPU: all visible; CPU: 2")
    parser.add_argument("--encoders", nargs="*", default=None)
    parser.add_argument("--size", type=int, default=None, help="384 on GPU, 64 on CPU")
    parser.add_argument("--train", type=int, default=None, help="scans; 384 on GPU, 48 on CPU")
    parser.add_argument("--epochs", type=int, default=None, help="4 on GPU, 3 on CPU")
    parser.add_argument("--threads", type=int, default=1, help="per rank (CPU)")
    args = parser.parse_args()
    device = pick_device("auto")
    gpu = device.type == "cuda"
    ranks = args.ranks or (torch.cuda.device_count() if gpu else 2)
    if ranks < 2:
        raise SystemExit(f"bench_scaling: {ranks} GPU visible; scaling needs two or more")
    encoders = args.encoders or (list(ENCODERS) if gpu else ["convnext_tiny"])
    size, n_train = args.size or (384 if gpu else 64), args.train or (384 if gpu else 48)
    epochs = args.epochs or (4 if gpu else 3)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = write_inputs(Path(tmp), n_train, 16, size)
        for encoder in encoders:
            batch = SEED_BATCH[encoder] if gpu else 8
            batch -= batch % ranks
            settings = settings_for(encoder, batch, epochs, device="auto")
            one = train_with(1, settings, inputs, Path(tmp) / encoder / "one", args.threads)
            many = train_with(ranks, settings, inputs, Path(tmp) / encoder / "many", args.threads)
            rows[encoder] = {
                "batch_size": batch,
                "imgs_per_s_1_rank": one,
                f"imgs_per_s_{ranks}_ranks": many,
                "speed_up": many / one,
                "scaling_efficiency": many / (ranks * one),
            }
            print(
                f"{encoder}: 1 rank {one:.1f} img/s, {ranks} ranks {many:.1f} img/s: speed-up "
                f"{many / one:.2f}x, scaling efficiency {many / (ranks * one):.0%}"
            )
    save(
        "scaling",
        {
            "device": describe(device),
            "ranks": ranks,
            "threads_per_rank": args.threads,
            "size": size,
            "train_scans": n_train,
            "epochs": epochs,
            "results": rows,
            "command": "python bench/bench_scaling.py " + " ".join(sys.argv[1:]),
        },
    )


if __name__ == "__main__":
    main()
