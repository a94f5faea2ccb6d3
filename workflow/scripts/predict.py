import torch

from heritage_damage_seg.inference.outlines import OutlineSettings
from heritage_damage_seg.inference.predict import check_failures, predict_folder
from heritage_damage_seg.inference.products import ProductSettings
from heritage_damage_seg.logs import logged
from heritage_damage_seg.model.sliding import SlidingSettings

with logged(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    products = snakemake.params.products
    summary = predict_folder(
        snakemake.params.inputs,
        snakemake.params.out_dir,
        checkpoint=snakemake.params.checkpoint,
        results_dir="results",
        settings=SlidingSettings(**snakemake.params.sliding),
        artwork_masks=snakemake.params.artwork_masks,
        overlay_max_side=snakemake.params.overlay_max_side,
        mixed_precision=snakemake.params.mixed_precision,
        device_preference=snakemake.params.device,
        products=ProductSettings(
            viewer=products["viewer"],
            low_confidence=products["low_confidence"],
            outlines=OutlineSettings(products["outline_tolerance"], products["outline_min_area"]),
            iiif=products["iiif"],
            iiif_base_url=products["iiif_base_url"],
        ),
        dpi=snakemake.params.dpi,
        dpi_table=snakemake.params.dpi_table,
    )
    check_failures(summary, keep_going=snakemake.params.keep_going)
