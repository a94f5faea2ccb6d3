from pathlib import Path

import torch

from heritage_damage_seg.logs import logged
from heritage_damage_seg.train import TrainSettings, train

# A rerun after a kill or a time limit resumes from the last checkpoint. Snakemake deletes the
# log before every attempt: <log>.attempts (not a declared file) keeps the earlier attempts' lines.
log_file = Path(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
resuming = Path(snakemake.params.last_checkpoint).exists()  # noqa: F821
with logged(log_file, append=resuming, keep=log_file.with_name(log_file.name + ".attempts")):
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    train(
        TrainSettings(**snakemake.params.settings),  # noqa: F821
        cache_dir=Path(snakemake.input.cache[0]).parent,  # noqa: F821
        split_file=snakemake.input.split,  # noqa: F821
        class_weights_file=snakemake.input.class_weights,  # noqa: F821
        best_checkpoint=snakemake.output.best,  # noqa: F821
        last_checkpoint=snakemake.params.last_checkpoint,  # noqa: F821
        history_file=snakemake.output.history,  # noqa: F821
    )
