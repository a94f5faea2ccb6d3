from heritage_damage_seg.data.cache import read_index
from heritage_damage_seg.data.split import leave_one_out_split
from heritage_damage_seg.io import write_json
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:
    index = read_index(snakemake.input.index)
    family = snakemake.wildcards.family
    split = leave_one_out_split(
        index["id"].tolist(),
        index["group"].tolist(),
        index[family].tolist(),
        column=family,
        fold=snakemake.wildcards.fold,
        val_fraction=snakemake.params.val_fraction,
        seed=snakemake.params.seed,
    )
    write_json(snakemake.output[0], split)
    log.info(
        "holding out %s %r (test): %d train / %d inner val / %d test images (%d / %d / %d artworks)",
        family,
        split["held_out"],
        split["n_train"],
        split["n_val"],
        split["n_test"],
        len(split["train_groups"]),
        len(split["val_groups"]),
        len(split["test_groups"]),
    )
