"""The acceptance run for a lent GPU (bash bench/gpu-acceptance.sh), in steps that each write a
JSON file and one summary table, results/gpu/summary.md:

1. the data the workflow makes (synthetic scans → cache → grouped split → class weights), by the
   code the rules' scripts call (Snakemake itself is not on the GPU machine);
2. ``train`` — the function the train rule runs — for every encoder at the configured size and
   epochs on the GPU;
3. a SIGTERM in the middle of an epoch, then the rerun's resume, against the uninterrupted run;
4. evaluate and predict on the GPU against the same checkpoint on the CPU (share of equal pixels).

``--device cpu`` with small sizes runs the same steps on a CPU (tests/test_gpu_acceptance.py), so
the driver itself is tested where no GPU is.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from heritage_damage_seg import device as devices  # noqa: E402
from heritage_damage_seg.data import class_weights  # noqa: E402
from heritage_damage_seg.data.cache import read_index  # noqa: E402
from heritage_damage_seg.data.folder import build_cache  # noqa: E402
from heritage_damage_seg.data.split import grouped_split  # noqa: E402
from heritage_damage_seg.data.synthetic import generate_dataset  # noqa: E402
from heritage_damage_seg.evaluation.evaluate import evaluate  # noqa: E402
from heritage_damage_seg.inference.predict import predict_folder  # noqa: E402
from heritage_damage_seg.inference.products import ProductSettings  # noqa: E402
from heritage_damage_seg.io import read_json, write_json  # noqa: E402
from heritage_damage_seg.logs import logged  # noqa: E402
from heritage_damage_seg.training.history import TIMING_COLUMNS  # noqa: E402
from heritage_damage_seg.training.settings import TrainSettings  # noqa: E402
from heritage_damage_seg.training.train import train  # noqa: E402

ENCODERS = ("convnext_tiny", "segformer_b3", "maxvit_tiny")
AGREEMENT_NEEDED = 0.99  # share of pixels on which the GPU and the CPU must predict the same class


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu")
    parser.add_argument("--work", type=Path, default=Path("/tmp/hds-gpu-acceptance"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--artworks", type=int, default=48, help="synthetic artworks (× 3 views)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS))
    parser.add_argument("--compare-scans", type=int, default=4, help="scans predicted on both")
    parser.add_argument("--threads", type=int, default=min(16, os.cpu_count() or 1))
    parser.add_argument("--train-one", type=Path, help=argparse.SUPPRESS)  # the child of step 3
    return parser.parse_args(argv)


def config_for(args: argparse.Namespace) -> dict[str, Any]:
    """config/config.yaml (every key at its default) with the acceptance run's sizes."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["synthetic"] |= {"n_artworks": args.artworks, "min_side": 400, "max_side": 1200}
    config["prepare"]["image_size"] = args.size
    config["training"] |= {"epochs": args.epochs, "device": args.device, "threads": args.threads}
    for encoder in args.encoders:
        config["encoders"][encoder] |= {"batch_size": args.batch, "weights": None}
    # As the workflow reads it: checked, and every key the file leaves out at its schema default.
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def prepare_data(config: dict[str, Any], work: Path, threads: int) -> dict[str, Any]:
    """What the synthetic_dataset, prepare_cache, split and class_weights rules write."""
    started = time.perf_counter()
    data, cache = work / "synthetic", work / "cache"
    if not (data / "metadata.csv").exists():
        generate_dataset(data, workers=threads, **config["synthetic"])
    if not (cache / "index.csv").exists():
        build_cache(
            data / "images",
            data / "annotations",
            cache,
            size=config["prepare"]["image_size"],
            metadata=data / "metadata.csv",
            workers=threads,
        )
    index = read_index(cache / "index.csv")
    split_settings = config["split"]
    split = grouped_split(
        index["id"].tolist(),
        index["group"].tolist(),
        val_fraction=split_settings["val_fraction"],
        test_fraction=split_settings["test_fraction"],
        seed=split_settings["seed"],
    )
    write_json(work / "split.json", split)
    train_rows = np.flatnonzero(index["id"].isin(set(split["train"])).to_numpy())
    masks = np.load(cache / "masks.npy", mmap_mode="r")
    weights = class_weights.compute(
        class_weights.pixel_counts(masks[train_rows]), config["class_weights"]["method"]
    )
    write_json(work / "class_weights.json", weights)
    return {
        "images": len(index),
        "train": split["n_train"],
        "val": split["n_val"],
        "test": split["n_test"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def run_files(work: Path, name: str) -> dict[str, str]:
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "cache_dir": str(work / "cache"),
        "split_file": str(work / "split.json"),
        "class_weights_file": str(work / "class_weights.json"),
        "best_checkpoint": str(folder / "model_best.pt"),
        "last_checkpoint": str(folder / "model_last.pt"),
        "history_file": str(folder / "history.csv"),
    }


def train_encoder(config: dict[str, Any], encoder: str, work: Path) -> dict[str, Any]:
    """One training as the train rule runs it (one process, the configured device)."""
    settings = TrainSettings.from_config(config, encoder)
    files = run_files(work, encoder)
    with logged(work / encoder / "train.log"):
        summary = train(settings, **files)
    history = _history(files["history_file"])
    last = history[-1]
    return {
        "encoder": encoder,
        "precision": last["precision"],
        "best_val_mIoU": summary["best_val_mIoU"],
        "train_imgs_per_s": last["train_imgs_per_s"],
        "epoch_imgs_per_s": last["epoch_imgs_per_s"],
        "peak_memory_mb": last["peak_memory_mb"],
        "epoch_seconds": [row["epoch_seconds"] for row in history],
    }


def _history(path: str | Path) -> list[dict[str, Any]]:
    import pandas as pd

    return pd.read_csv(path).to_dict("records")


def interrupted_and_resumed(
    config: dict[str, Any], encoder: str, work: Path, reference: Path
) -> dict[str, Any]:
    """Trains ``encoder`` again in a child process, sends it SIGTERM inside epoch 2 (timed from
    epoch 1's measured speed), reruns it (the rerun resumes), and compares the result with the
    uninterrupted run in ``reference``."""
    name = f"{encoder}_resumed"
    files = run_files(work, name)
    for stale in ("last_checkpoint", "best_checkpoint", "history_file"):
        Path(files[stale]).unlink(missing_ok=True)
    job = work / name / "job.json"
    job.write_text(json.dumps({"config": config, "encoder": encoder, "files": files}))
    log = work / name / "train.log"
    child = subprocess.Popen([sys.executable, __file__, "--train-one", str(job)])
    history = Path(files["history_file"])
    while not history.exists() and child.poll() is None:
        time.sleep(0.05)
    first = _history(history)[0] if history.exists() else None
    if first is not None:
        # Half a step of epoch 1 into epoch 2: inside its first steps even where epoch 2 runs
        # several times faster than epoch 1 (its warm-up, or a machine whose load drops: measured
        # 13.6 s then 3.4 s, and a signal at 40 % of epoch 1's time landed after training ended).
        step_seconds = (
            TrainSettings.from_config(config, encoder).batch_size / first["train_imgs_per_s"]
        )
        time.sleep(0.5 * step_seconds)
        child.send_signal(signal.SIGTERM)
    stopped_status = child.wait()
    stopped_at = _stop_line(log)
    resumed_status = subprocess.call([sys.executable, __file__, "--train-one", str(job)])
    got, want = _history(history), _history(reference / "history.csv")
    return {
        "encoder": encoder,
        "signal_exit_status": stopped_status,  # 143 = 128 + SIGTERM
        "stopped_at": stopped_at,
        "mid_epoch": bool(stopped_at and "step" in stopped_at),
        "resume_exit_status": resumed_status,
        "resumed": "resumed at" in log.read_text(),
        **_compare_histories(got, want),
    }


def _stop_line(log: Path) -> str | None:
    for line in log.read_text().splitlines():
        if "saved" in line and ("step" in line or "end of epoch" in line):
            return line.split(" ", 2)[-1]
    return None


def _compare_histories(got: list[dict], want: list[dict]) -> dict[str, Any]:
    if len(got) != len(want):
        return {"equal_epochs": False, "max_loss_rel_diff": None, "max_miou_diff": None}
    loss = max(
        abs(g["train_loss"] - w["train_loss"]) / abs(w["train_loss"]) for g, w in zip(got, want)
    )
    miou = max(abs(g["val_mIoU"] - w["val_mIoU"]) for g, w in zip(got, want))
    same = all(
        g[key] == w[key]
        for g, w in zip(got, want)
        for key in g
        if key not in TIMING_COLUMNS and key not in ("train_loss", "val_mIoU", "val_damage_mIoU")
    )
    return {
        "equal_epochs": True,
        "other_columns_equal": same,
        "max_loss_rel_diff": loss,
        "max_miou_diff": miou,
    }


def train_one(job_file: Path) -> int:
    """The child of :func:`interrupted_and_resumed`: the train rule's call, with its log."""
    job = json.loads(job_file.read_text())
    settings = TrainSettings.from_config(job["config"], job["encoder"])
    log = Path(job["files"]["history_file"]).with_name("train.log")
    resuming = Path(job["files"]["last_checkpoint"]).exists()
    with logged(log, append=resuming):
        train(settings, **job["files"])
    return 0


def gpu_against_cpu(config: dict[str, Any], encoder: str, work: Path) -> dict[str, Any]:
    """evaluate and predict with the same checkpoint on the GPU and on the CPU: the share of
    pixels whose class agrees (bf16/fp16 against fp32 may flip pixels near a class boundary)."""
    checkpoint = work / encoder / "model_best.pt"
    masks: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    for tag, device in (("gpu", config["training"]["device"]), ("cpu", "cpu")):
        out = work / f"compare_{tag}"
        started = time.perf_counter()
        evaluate(
            checkpoint,
            cache_dir=work / "cache",
            split_file=work / "split.json",
            metrics_file=out / "metrics.json",
            per_image_confusion_file=out / "per_image.npz",
            predictions_dir=out / "predictions",
            batch_size=config["evaluation"]["batch_size"],
            device_preference=device,
        )
        seconds[f"evaluate_{tag}_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        predict_folder(
            _scans(work, config), out / "predict", checkpoint=checkpoint,
            device_preference=device, products=ProductSettings(viewer=False),
        )  # fmt: skip
        seconds[f"predict_{tag}_s"] = round(time.perf_counter() - started, 1)
        masks[tag] = out
    return {
        "encoder": encoder,
        "evaluate_agreement": _agreement(
            masks["gpu"] / "predictions", masks["cpu"] / "predictions"
        ),
        "predict_agreement": _agreement(
            masks["gpu"] / "predict" / "masks", masks["cpu"] / "predict" / "masks"
        ),
        "gpu_mIoU": read_json(masks["gpu"] / "metrics.json")["mIoU"],
        "cpu_mIoU": read_json(masks["cpu"] / "metrics.json")["mIoU"],
        "gpu_precision": read_json(masks["gpu"] / "metrics.json")["precision"],
        **seconds,
    }


def _scans(work: Path, config: dict[str, Any]) -> list[Path]:
    test = read_json(work / "split.json")["test"]
    index = read_index(work / "cache" / "index.csv").set_index("id")
    return [Path(index.loc[i, "image_path"]) for i in test[: config["compare_scans"]]]


def _agreement(gpu: Path, cpu: Path) -> float:
    equal = total = 0
    for path in sorted(cpu.glob("*.png")):
        a, b = np.asarray(Image.open(path)), np.asarray(Image.open(gpu / path.name))
        equal += int((a == b).sum())
        total += a.size
    return equal / total if total else float("nan")


def summary_table(results: dict[str, Any]) -> str:
    lines = ["# GPU acceptance", "", f"device: {results['device']}", ""]
    lines += ["| encoder | precision | best val mIoU | train img/s | epoch img/s | peak MB |"]
    lines += ["|---|---|---|---|---|---|"]
    for row in results["training"]:
        lines.append(
            f"| {row['encoder']} | {row['precision']} | {100 * row['best_val_mIoU']:.2f} % | "
            f"{row['train_imgs_per_s']:.1f} | {row['epoch_imgs_per_s']:.1f} | "
            f"{row['peak_memory_mb']:.0f} |"
        )
    resume = results.get("resume")
    if resume:
        lines += ["", f"SIGTERM: {resume['stopped_at']} (exit {resume['signal_exit_status']}); "
                  f"resumed: {resume['resumed']}; max train-loss rel. diff "
                  f"{resume['max_loss_rel_diff']}, max val mIoU diff {resume['max_miou_diff']}"]  # fmt: skip
    compare = results.get("compare")
    if compare:
        lines += ["", f"GPU vs CPU ({compare['encoder']}): evaluate {100 * compare['evaluate_agreement']:.3f} % "
                  f"of pixels equal, predict {100 * compare['predict_agreement']:.3f} % "
                  f"(needed ≥ {100 * AGREEMENT_NEEDED:.0f} %)"]  # fmt: skip
    lines += ["", f"verdict: {'PASS' if results['passed'] else 'FAIL'}: {results['why']}"]
    return "\n".join(lines) + "\n"


def verdict(results: dict[str, Any]) -> tuple[bool, str]:
    problems = []
    resume = results["resume"]
    if not (resume["resumed"] and resume["resume_exit_status"] == 0 and resume["equal_epochs"]):
        problems.append("the interrupted run did not resume to the end")
    elif resume["max_loss_rel_diff"] > 1e-2 or resume["max_miou_diff"] > 0.02:
        problems.append("the resumed run differs from the uninterrupted one")
    if not resume["mid_epoch"]:
        problems.append("the signal did not land inside an epoch")
    compare = results["compare"]
    for key in ("evaluate_agreement", "predict_agreement"):
        if not compare[key] >= AGREEMENT_NEEDED:
            problems.append(f"{key} {compare[key]:.4f} < {AGREEMENT_NEEDED}")
    return not problems, "; ".join(problems) or "every check held"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.train_one:
        return train_one(args.train_one)
    if args.device != "cpu":
        devices.pick_device(args.device)  # refuses a GPU without kernels, with the fix
    config = config_for(args)
    config["compare_scans"] = args.compare_scans
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"device": devices.describe(devices.pick_device(args.device))}
    results["data"] = prepare_data(config, args.work, args.threads)
    print("data:", results["data"], flush=True)
    results["training"] = []
    for encoder in args.encoders:
        results["training"].append(train_encoder(copy.deepcopy(config), encoder, args.work))
        print("trained:", results["training"][-1], flush=True)
    first = args.encoders[0]
    results["resume"] = interrupted_and_resumed(config, first, args.work, args.work / first)
    print("resume:", results["resume"], flush=True)
    results["compare"] = gpu_against_cpu(config, first, args.work)
    print("gpu vs cpu:", results["compare"], flush=True)
    results["passed"], results["why"] = verdict(results)
    write_json(args.out / "acceptance.json", results)
    (args.out / "summary.md").write_text(summary_table(results))
    print(summary_table(results), flush=True)
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
