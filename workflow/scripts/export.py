import torch

from heritage_damage_seg.export import export_model
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    export_model(
        snakemake.input.checkpoint,  # noqa: F821
        snakemake.params.out_dir,  # noqa: F821
        metrics_file=snakemake.input.metrics,  # noqa: F821
        torchscript=snakemake.params.torchscript,  # noqa: F821
    )
