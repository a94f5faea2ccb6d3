from heritage_damage_seg.logs import logged
from heritage_damage_seg.model.weights import fetch_imagenet

with logged(snakemake.log[0]):
    fetch_imagenet(
        snakemake.wildcards.encoder, snakemake.output[0], image_size=snakemake.params.image_size
    )
