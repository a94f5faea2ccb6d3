import pandas as pd

from heritage_damage_seg.io import write_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.split import leave_one_out_split

with logged(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    index = pd.read_csv(snakemake.input.index, dtype=str, keep_default_na=False)  # noqa: F821
    family = snakemake.wildcards.family  # noqa: F821
    split = leave_one_out_split(
        index["id"].tolist(),
        index["group"].tolist(),
        index[family].tolist(),
        column=family,
        fold=snakemake.wildcards.fold,  # noqa: F821
        val_fraction=snakemake.params.val_fraction,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
    )
    write_json(snakemake.output[0], split)  # noqa: F821
    log.info("holding out %s %r (test): %d train / %d inner val / %d test images (%d / %d / %d artworks)",
             family, split["held_out"], split["n_train"], split["n_val"], split["n_test"],
             len(split["train_groups"]), len(split["val_groups"]), len(split["test_groups"]))
