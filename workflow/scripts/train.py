from pathlib import Path

import torch

from heritage_damage_seg.logs import logged
from heritage_damage_seg.training.launch import launch_ranks
from heritage_damage_seg.training.train import TrainSettings, train

# A rerun after a kill or a time limit resumes from the last checkpoint. Snakemake deletes the
# log before every attempt: <log>.attempts (not a declared file) keeps the earlier attempts' lines.
log_file = Path(snakemake.log[0])
resuming = Path(snakemake.params.last_checkpoint).exists()
settings = TrainSettings.from_record(snakemake.params.settings)
files = {
    "cache_dir": str(Path(snakemake.input.cache[0]).parent),
    "split_file": snakemake.input.split,
    "class_weights_file": snakemake.input.class_weights,
    "best_checkpoint": snakemake.output.best,
    "last_checkpoint": snakemake.params.last_checkpoint,
    "history_file": snakemake.output.history,
}
with logged(log_file, append=resuming, keep=log_file.with_name(log_file.name + ".attempts")):
    if settings.ranks > 1:  # training.gpus × training.nodes ranks, DistributedDataParallel
        launch_ranks(
            settings,
            files,
            threads=snakemake.threads,
            log_file=str(log_file),
            srun=snakemake.resources.get("mpi"),
        )
    else:
        torch.set_num_threads(snakemake.threads)
        train(settings, **files)
