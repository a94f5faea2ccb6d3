from pathlib import Path

from heritage_damage_seg.dataset import build_cache, build_cache_from_parquet
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    params, inputs = snakemake.params, snakemake.input  # noqa: F821
    out_dir = Path(snakemake.output.index).parent  # noqa: F821
    settings = {"size": params.image_size, "workers": snakemake.threads, "working_max_side": params.working_max_side}  # noqa: F821
    if params.format == "parquet":
        index = build_cache_from_parquet(params.parquet_path, out_dir, **settings)
    else:
        index = build_cache(inputs.images, inputs.masks, out_dir, metadata=inputs.get("metadata"), **settings)
    log.info("cached %d images from %d artworks", len(index), index["group"].nunique())
