import pandas as pd

from heritage_damage_seg.io import write_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.split import grouped_split

with logged(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    index = pd.read_csv(snakemake.input.index, dtype={"id": str, "group": str}, keep_default_na=False)  # noqa: F821
    split = grouped_split(
        index["id"].tolist(),
        index["group"].tolist(),
        val_fraction=snakemake.params.val_fraction,  # noqa: F821
        test_fraction=snakemake.params.test_fraction,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
    )
    write_json(snakemake.output[0], split)  # noqa: F821
    log.info("%d train / %d val / %d test images (%d / %d / %d artworks)", split["n_train"], split["n_val"],
             split["n_test"], len(split["train_groups"]), len(split["val_groups"]), len(split["test_groups"]))
