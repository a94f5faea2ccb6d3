from pathlib import Path

import torch

from heritage_damage_seg.evaluation.evaluate import evaluate
from heritage_damage_seg.logs import logged
from heritage_damage_seg.model.sliding import SlidingSettings

with logged(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    evaluate(
        snakemake.input.checkpoint,
        cache_dir=Path(snakemake.input.cache[0]).parent,
        split_file=snakemake.input.split,
        metrics_file=snakemake.output.metrics,
        per_image_confusion_file=snakemake.output.per_image_confusion,
        predictions_dir=snakemake.output.predictions,
        batch_size=snakemake.params.batch_size,
        mixed_precision=snakemake.params.mixed_precision,
        device_preference=snakemake.params.device,
        mode=snakemake.params.mode,
        sliding=SlidingSettings(**snakemake.params.sliding),
        # Seed repeats: the first seed's metrics.json covers the other seeds' runs (its inputs).
        seed_metrics=getattr(snakemake.input, "seed_metrics", []),
    )
