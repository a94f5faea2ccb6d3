from heritage_damage_seg.data.cache import read_index
from heritage_damage_seg.evaluation.loo import describe_folds
from heritage_damage_seg.io import write_json
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:
    index = read_index(snakemake.input.index)
    folds = describe_folds(index, snakemake.wildcards.family)
    write_json(snakemake.output[0], folds)
    log.info(
        "leave-one-%s-out: %d folds: %s",
        folds["family"],
        folds["n_folds"],
        ", ".join(
            f"{f['fold']} ({f['n_test']} held out / {f['n_train']} train + inner val)"
            for f in folds["folds"]
        ),
    )
