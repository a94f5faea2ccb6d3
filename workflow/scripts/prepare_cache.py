from pathlib import Path

from heritage_damage_seg.data.geometry import CropView
from heritage_damage_seg.data.sources import build_cache
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
    index = build_cache(params.format, inputs, out_dir, **settings)
    scans = index["scan"].nunique() if crops else len(index)
    log.info(
        "cached %d images (%d scans) from %d artworks", len(index), scans, index["group"].nunique()
    )
