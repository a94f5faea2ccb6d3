from pathlib import Path

from heritage_damage_seg.data.cache_writer import combine_caches
from heritage_damage_seg.evaluation.finetune import combined_ids
from heritage_damage_seg.io import read_json
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:
    inputs = snakemake.input
    corrections, replay = combined_ids(read_json(inputs.split))
    index = combine_caches(
        [
            (Path(inputs.corrections[0]).parent, corrections),
            (Path(inputs.original[0]).parent, replay),
        ],
        Path(snakemake.output.index).parent,
    )
    log.info("combined cache: %d corrections rows + %d replay rows", len(corrections), len(replay))
