import torch

from heritage_damage_seg.logs import logged
from heritage_damage_seg.predict import predict_folder
from heritage_damage_seg.sliding import SlidingSettings

with logged(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    predict_folder(
        snakemake.params.inputs,  # noqa: F821
        snakemake.params.out_dir,  # noqa: F821
        checkpoint=snakemake.params.checkpoint,  # noqa: F821
        results_dir="results",
        settings=SlidingSettings(**snakemake.params.sliding),  # noqa: F821
        artwork_masks=snakemake.params.artwork_masks,  # noqa: F821
        overlay_max_side=snakemake.params.overlay_max_side,  # noqa: F821
        mixed_precision=snakemake.params.mixed_precision,  # noqa: F821
        device_preference=snakemake.params.device,  # noqa: F821
    )
