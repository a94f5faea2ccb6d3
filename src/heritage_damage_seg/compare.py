"""The model comparison across encoders."""

from __future__ import annotations

from typing import Any

import pandas as pd

from heritage_damage_seg.io import read_json


def compare(metrics_files: dict[str, str], history_files: dict[str, str]) -> dict[str, Any]:
    """The cross-model table: one entry per encoder, ranked by mIoU."""
    models = []
    for encoder, path in metrics_files.items():
        metrics = read_json(path)
        history = pd.read_csv(history_files[encoder])
        # Epoch 1 includes start-up (allocation, kernel selection); it is not the steady rate.
        steady = history["train_imgs_per_s"].iloc[1:] if len(history) > 1 else history["train_imgs_per_s"]
        models.append(
            {
                "encoder": encoder,
                "smp_encoder": metrics["smp_encoder"],
                "family": metrics["family"],
                "mIoU": metrics["mIoU"],
                "damage_mIoU": metrics["damage_mIoU"],
                "pixel_accuracy": metrics["pixel_accuracy"],
                "trivial_baseline_mIoU": metrics["trivial_baseline"]["mIoU"],
                "per_class_IoU": {name: c["IoU"] for name, c in metrics["per_class"].items()},
                "parameters": metrics["parameters"],
                "train_imgs_per_s": float(steady.median()),
                "train_seconds": float(history["epoch_seconds"].sum()),
                "epochs": int(history["epoch"].max()),
                "best_epoch": metrics["checkpoint_epoch"],
                "inference_ms_per_image": metrics["inference_ms_per_image"],
                "device": metrics["device"],
            }
        )
    models.sort(key=lambda m: -(m["mIoU"] if m["mIoU"] is not None else -1.0))
    return {"ranked_by": "mIoU", "best_encoder": models[0]["encoder"] if models else None, "models": models}
