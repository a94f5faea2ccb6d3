from heritage_damage_seg.data.cache import read_index
from heritage_damage_seg.evaluation.finetune import finetune_split
from heritage_damage_seg.io import read_json, write_json
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:
    params, inputs = snakemake.params, snakemake.input
    split = finetune_split(
        read_index(inputs.corrections),
        read_json(inputs.original_split),
        read_index(inputs.original),
        scored_fraction=params.scored_fraction,
        choose_fraction=params.choose_fraction,
        replay=params.replay,
        seed=params.seed,
        corrections_file=str(inputs.corrections),
    )
    write_json(snakemake.output[0], split)
    log.info(
        "corrections: %d artworks to train on, %d to choose on, %d scored; %d replay artworks "
        "(%d images); %d train / %d val / %d test images",
        len(split["corrected_groups"]),
        len(split["choose_groups"]),
        len(split["scored_groups"]),
        len(split["replay_groups"]),
        len(split["replay"]),
        split["n_train"],
        split["n_val"],
        split["n_test"],
    )
