from pathlib import Path

from heritage_damage_seg.data.dataset import CropView, build_cache, build_cache_from_parquet
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:
    params, inputs = snakemake.params, snakemake.input
    out_dir = Path(snakemake.output.index).parent
    crops = None
    if params.view == "crops":
        crops = CropView(
            params.crops["crop_scale"], params.crops["crops_per_image"], params.crops["seed"]
        )
    settings = {
        "size": params.image_size,
        "workers": snakemake.threads,
        "working_max_side": params.working_max_side,
        "crops": crops,
        "exif_orientation": params.exif_orientation,
    }
    if params.format == "parquet":
        index = build_cache_from_parquet(params.parquet_path, out_dir, **settings)
    else:
        index = build_cache(
            inputs.images, inputs.masks, out_dir, metadata=inputs.get("metadata"), **settings
        )
    scans = index["scan"].nunique() if crops else len(index)
    log.info(
        "cached %d images (%d scans) from %d artworks", len(index), scans, index["group"].nunique()
    )
