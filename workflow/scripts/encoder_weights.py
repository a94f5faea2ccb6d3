from heritage_damage_seg.logs import logged
from heritage_damage_seg.weights import fetch_imagenet

with logged(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    fetch_imagenet(snakemake.wildcards.encoder, snakemake.output[0], image_size=snakemake.params.image_size)  # noqa: F821
