from heritage_damage_seg.data.cache import read_index
from heritage_damage_seg.data.split import grouped_split
from heritage_damage_seg.io import write_json
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:
    index = read_index(snakemake.input.index)
    split = grouped_split(
        index["id"].tolist(),
        index["group"].tolist(),
        val_fraction=snakemake.params.val_fraction,
        test_fraction=snakemake.params.test_fraction,
        seed=snakemake.params.seed,
    )
    write_json(snakemake.output[0], split)
    log.info(
        "%d train / %d val / %d test images (%d / %d / %d artworks)",
        split["n_train"],
        split["n_val"],
        split["n_test"],
        len(split["train_groups"]),
        len(split["val_groups"]),
        len(split["test_groups"]),
    )
