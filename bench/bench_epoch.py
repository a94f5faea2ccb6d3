"""7. Epochs: the share of training's wall time spent in training steps, before / after issue 17.

Runs the real :func:`heritage_damage_seg.training.train.train` (the config's settings for each
encoder: loss, augmentation, precision, channels_last, eval batch) on a synthetic cache written to
a temporary folder: random uint8 scans and masks (some pixels 255) in ``images.npy`` /
``masks.npy``, an ``index.csv`` (id, group), ``split.json`` (train / val / test ids) and
``class_weights.json`` computed by the package from the training masks. Each variant runs in a
fresh process, so both start cold alike.

* before: ``validate_every: 1``, ``checkpoint_minutes: 0`` (today's defaults and the behaviour
  before issue 17): every epoch validates and writes ``model_last.pt`` (model + AdamW state) and,
  when the epoch improved, ``model_best.pt``.
* after: ``validate_every: 5``, ``checkpoint_minutes: 10``: validation every 5th epoch and at the
  last, ``model_last.pt`` at most every 10 minutes and at the last epoch.

Step share = Σ over epochs (images / ``train_imgs_per_s``), i.e. the time of the training steps
read back from ``history.csv``, over the wall time of ``train()``; also over the epoch loop alone
(``train()`` less its one-off setup: cache load, fingerprint, model build, data to the device).
The setup, the validations, the checkpoint writes and the rest of each epoch's end are timed by
wrapping ``build_run``, ``validate``, ``save_checkpoint``, ``check_finite``, ``record_epoch`` and
``write_history`` in the training module (the bench's instrumentation only; train() is otherwise
untouched). ``epoch_imgs_per_s`` (history.csv: images / epoch wall time incl.
validation) is reported next to ``train_imgs_per_s``.

    python bench/bench_epoch.py   # GPU: ~300 train / ~80 val scans at 384 px, batch 96/32/48,
                                  # 10 epochs, the three encoders; CPU: 64 px, 48 / 16, batch 8,
                                  # 3 epochs, convnext_tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from common import run_child, save

from heritage_damage_seg.classes import IGNORE_INDEX, NUM_CLASSES
from heritage_damage_seg.data import class_weights
from heritage_damage_seg.device import describe, pick_device
from heritage_damage_seg.io import write_json
from heritage_damage_seg.model.models import ENCODERS
from heritage_damage_seg.training import train as training
from heritage_damage_seg.training.settings import TrainSettings

BENCH_DIR = Path(__file__).resolve().parent
CONFIG = BENCH_DIR.parent / "config" / "config.yaml"
SEED_BATCH = {"convnext_tiny": 96, "segformer_b3": 32, "maxvit_tiny": 48}
VARIANTS = {
    "before": {"validate_every": 1, "checkpoint_minutes": 0.0},
    "after": {"validate_every": 5, "checkpoint_minutes": 10.0},
}
CLASS_WEIGHTS_METHOD = "inverse_sqrt_log_scaled"


def write_inputs(root: Path, n_train: int, n_val: int, size: int) -> dict[str, str]:
    """A prepared cache of random scans plus the split and class weights train() reads."""
    rng = np.random.default_rng(0)
    n = n_train + n_val
    cache = root / "cache"
    cache.mkdir(parents=True)
    np.save(cache / "images.npy", rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))
    masks = rng.integers(0, NUM_CLASSES, (n, size, size), dtype=np.uint8)
    masks[rng.random((n, size, size)) < 0.3] = IGNORE_INDEX
    np.save(cache / "masks.npy", masks)
    ids = [f"scan{i:04d}" for i in range(n)]
    pd.DataFrame({"id": ids, "group": ids}).to_csv(cache / "index.csv", index=False)
    write_json(root / "split.json", {"train": ids[:n_train], "val": ids[n_train:], "test": []})
    counts = class_weights.pixel_counts(masks[:n_train])
    write_json(root / "class_weights.json", class_weights.compute(counts, CLASS_WEIGHTS_METHOD))
    return {
        "cache_dir": str(cache),
        "split_file": str(root / "split.json"),
        "class_weights_file": str(root / "class_weights.json"),
    }


def settings_for(encoder: str, batch: int, epochs: int, **overrides) -> TrainSettings:
    """The config's settings for ``encoder`` (random init: no weights to fetch), resized."""
    config = yaml.safe_load(CONFIG.read_text())
    settings = TrainSettings.from_config(config, encoder, fetched_weights=None)
    return dataclasses.replace(
        settings, encoder_weights=None, batch_size=batch, epochs=epochs, **overrides
    )


class Timed:
    """Wraps a function of the training module, summing the seconds of its calls (CUDA: the
    device is synchronised around each call, so the time is the call's own work)."""

    def __init__(self, name: str) -> None:
        self.name, self.inner = name, getattr(training, name)
        self.seconds, self.calls = 0.0, 0
        setattr(training, name, self)

    def __call__(self, *args, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - start
            self.calls += 1


def run_variant(
    inputs: dict[str, str], out: str, encoder: str, batch: int, epochs: int, variant: str
) -> dict:
    """One train() in this process (a child of :func:`main`), timed and taken apart."""
    settings = settings_for(encoder, batch, epochs, **VARIANTS[variant])
    setup, validation, writes = Timed("build_run"), Timed("validate"), Timed("save_checkpoint")
    # The rest of an epoch's end: the finite check, the history row and best weights, history.csv.
    rest = [Timed(name) for name in ("check_finite", "record_epoch", "write_history")]
    out_dir = Path(out)
    out_dir.mkdir(parents=True)
    start = time.perf_counter()
    training.train(
        settings,
        **inputs,
        best_checkpoint=out_dir / "model_best.pt",
        last_checkpoint=out_dir / "model_last.pt",
        history_file=out_dir / "history.csv",
    )
    wall = time.perf_counter() - start
    history = pd.read_csv(out_dir / "history.csv")
    images = len(json.loads(Path(inputs["split_file"]).read_text())["train"]) // batch * batch
    step_seconds = float((images / history["train_imgs_per_s"]).sum())
    loop = wall - setup.seconds
    return {
        "settings": {"batch_size": batch, "epochs": epochs, **VARIANTS[variant]},
        "train_wall_seconds": wall,
        "setup_seconds": setup.seconds,
        "loop_seconds": loop,
        "step_seconds": step_seconds,
        "validation_seconds": validation.seconds,
        "validations": int(history["val_mIoU"].notna().sum()),
        "checkpoint_write_seconds": writes.seconds,
        "checkpoint_writes": writes.calls,
        "epoch_end_seconds": {timed.name: timed.seconds for timed in rest},
        "other_loop_seconds": loop
        - step_seconds
        - validation.seconds
        - writes.seconds
        - sum(timed.seconds for timed in rest),
        "step_share_of_train": step_seconds / wall,
        "step_share_of_epoch_loop": step_seconds / loop,
        "train_imgs_per_s_mean": float(history["train_imgs_per_s"].mean()),
        "epoch_imgs_per_s_mean": float(history["epoch_imgs_per_s"].mean()),
        "imgs_per_s_over_train_wall": images * epochs / wall,
        "imgs_per_s_over_epoch_loop": images * epochs / loop,
        "last_checkpoint_mb": (out_dir / "model_last.pt").stat().st_size / 2**20,
        "peak_memory_mb": float(history["peak_memory_mb"].max()),
    }


CHILD = """
import json, sys
sys.path.insert(0, {bench!r})
from bench_epoch import run_variant
print(json.dumps(run_variant({inputs!r}, {out!r}, {encoder!r}, {batch}, {epochs}, {variant!r})))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoders", nargs="*", default=None, help="GPU: all three; CPU: convnext")
    parser.add_argument("--size", type=int, default=None, help="default: 384 on GPU, 64 on CPU")
    parser.add_argument("--train", type=int, default=None, help="scans; 300 on GPU, 48 on CPU")
    parser.add_argument("--val", type=int, default=None, help="scans; 80 on GPU, 16 on CPU")
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="default: the prototype's per encoder on GPU, 8 on CPU",
    )
    parser.add_argument("--epochs", type=int, default=None, help="default: 10 on GPU, 3 on CPU")
    parser.add_argument("--tmp", default=None, help="where the cache and checkpoints go")
    args = parser.parse_args()
    device = pick_device("auto")
    gpu = device.type == "cuda"
    encoders = args.encoders or (list(ENCODERS) if gpu else ["convnext_tiny"])
    size = args.size or (384 if gpu else 64)
    n_train, n_val = args.train or (300 if gpu else 48), args.val or (80 if gpu else 16)
    epochs = args.epochs or (10 if gpu else 3)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        inputs = write_inputs(Path(tmp), n_train, n_val, size)
        for encoder in encoders:
            batch = args.batch or (SEED_BATCH[encoder] if gpu else 8)
            row: dict = {}
            for variant in VARIANTS:
                code = CHILD.format(
                    bench=str(BENCH_DIR),
                    inputs=inputs,
                    out=f"{tmp}/{encoder}_{variant}",
                    encoder=encoder,
                    batch=batch,
                    epochs=epochs,
                    variant=variant,
                )
                row[variant] = run_child(code)
                print(encoder, variant, json.dumps(row[variant]), flush=True)
            before, after = row["before"], row["after"]
            row["step_share_ratio_after_over_before"] = (
                after["step_share_of_train"] / before["step_share_of_train"]
            )
            row["epoch_loop_speedup"] = before["loop_seconds"] / after["loop_seconds"]
            rows[encoder] = row
            print(
                f"{encoder}: steps are {100 * before['step_share_of_train']:.0f} % of train()'s "
                f"wall time before ({100 * before['step_share_of_epoch_loop']:.0f} % of the epoch "
                f"loop), {100 * after['step_share_of_train']:.0f} % after "
                f"({100 * after['step_share_of_epoch_loop']:.0f} %): "
                f"{row['step_share_ratio_after_over_before']:.2f}x; epoch loop "
                f"{row['epoch_loop_speedup']:.2f}x faster; train_imgs_per_s "
                f"{before['train_imgs_per_s_mean']:.1f} vs epoch_imgs_per_s "
                f"{before['epoch_imgs_per_s_mean']:.1f} before, "
                f"{after['epoch_imgs_per_s_mean']:.1f} after",
                flush=True,
            )
    options = (
        ("size", args.size),
        ("train", args.train),
        ("val", args.val),
        ("batch", args.batch),
        ("epochs", args.epochs),
    )
    command = "python bench/bench_epoch.py" + "".join(
        f" --{name} {value}" for name, value in options if value
    )
    if args.encoders:
        command += " --encoders " + " ".join(args.encoders)
    save(
        f"epoch_{device.type}",
        {
            "command": command,
            "device": describe(device),
            "size": size,
            "train_scans": n_train,
            "val_scans": n_val,
            "epochs": epochs,
            "variants": VARIANTS,
            "encoders": rows,
        },
    )


if __name__ == "__main__":
    main()
