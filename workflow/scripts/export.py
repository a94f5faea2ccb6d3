import torch

from heritage_damage_seg.inference.export import export_model
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    export_model(
        snakemake.input.checkpoint,
        snakemake.params.out_dir,
        metrics_file=snakemake.input.metrics,
        torchscript=snakemake.params.torchscript,
    )
