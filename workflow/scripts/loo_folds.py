import pandas as pd

from heritage_damage_seg.io import write_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.loo import describe_folds

with logged(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    index = pd.read_csv(snakemake.input.index, dtype=str, keep_default_na=False)  # noqa: F821
    folds = describe_folds(index, snakemake.wildcards.family)  # noqa: F821
    write_json(snakemake.output[0], folds)  # noqa: F821
    log.info("leave-one-%s-out: %d folds: %s", folds["family"], folds["n_folds"],
             ", ".join(f"{f['fold']} ({f['n_test']} held out / {f['n_train']} train + inner val)" for f in folds["folds"]))
