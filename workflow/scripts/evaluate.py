from pathlib import Path

import torch

from heritage_damage_seg.evaluate import evaluate
from heritage_damage_seg.io import read_json, write_json
from heritage_damage_seg.seeds import seed_summary
from heritage_damage_seg.logs import logged
from heritage_damage_seg.sliding import SlidingSettings

with logged(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    metrics = evaluate(
        snakemake.input.checkpoint,  # noqa: F821
        cache_dir=Path(snakemake.input.cache[0]).parent,  # noqa: F821
        split_file=snakemake.input.split,  # noqa: F821
        metrics_file=snakemake.output.metrics,  # noqa: F821
        per_image_confusion_file=snakemake.output.per_image_confusion,  # noqa: F821
        predictions_dir=snakemake.output.predictions,  # noqa: F821
        batch_size=snakemake.params.batch_size,  # noqa: F821
        mixed_precision=snakemake.params.mixed_precision,  # noqa: F821
        device_preference=snakemake.params.device,  # noqa: F821
        mode=snakemake.params.mode,  # noqa: F821
        sliding=SlidingSettings(**snakemake.params.sliding),  # noqa: F821
    )
    # Seed repeats: results/{encoder}/metrics.json (this run, the first seed) names every seed it
    # covers, with the mean, std and each seed's figure (the other seeds' runs are inputs).
    others = [read_json(path) for path in getattr(snakemake.input, "seed_metrics", [])]  # noqa: F821
    runs = {metrics["seed"]: metrics, **{other["seed"]: other for other in others}}
    write_json(snakemake.output.metrics, {**metrics, "seeds": seed_summary(runs)})  # noqa: F821
