from pathlib import Path

import torch

from heritage_damage_seg.evaluation.evaluate import evaluate
from heritage_damage_seg.io import read_json, write_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.model.sliding import SlidingSettings
from heritage_damage_seg.seeds import seed_summary

with logged(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    metrics = evaluate(
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
    )
    # Seed repeats: results/{encoder}/metrics.json (this run, the first seed) names every seed it
    # covers, with the mean, std and each seed's figure (the other seeds' runs are inputs).
    others = [read_json(path) for path in getattr(snakemake.input, "seed_metrics", [])]
    runs = {metrics["seed"]: metrics, **{other["seed"]: other for other in others}}
    write_json(snakemake.output.metrics, {**metrics, "seeds": seed_summary(runs)})
