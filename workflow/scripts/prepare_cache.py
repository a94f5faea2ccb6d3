from pathlib import Path

from heritage_damage_seg.dataset import build_cache
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    index = build_cache(
        snakemake.input.images,  # noqa: F821
        snakemake.input.masks,  # noqa: F821
        Path(snakemake.output.index).parent,  # noqa: F821
        size=snakemake.params.image_size,  # noqa: F821
        metadata=snakemake.input.get("metadata"),  # noqa: F821
        workers=snakemake.threads,  # noqa: F821
    )
    log.info("cached %d images from %d artworks", len(index), index["group"].nunique())
