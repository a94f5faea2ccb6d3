import pandas as pd

from heritage_damage_seg.data.cache import read_index
from heritage_damage_seg.evaluation.correction_curve import correction_split, replay_groups
from heritage_damage_seg.io import read_json, write_json
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:
    pool = pd.read_csv(snakemake.input.pool, dtype={"group": str})
    order, k = snakemake.wildcards.order, int(snakemake.wildcards.k)
    correctable = pool[pool["role"] == "pool"].sort_values(f"{order}_rank")
    corrected = correctable["group"].tolist()[:k]
    scored = pool.loc[pool["role"] == "scored", "group"].tolist()
    fold_split = read_json(snakemake.input.fold_split)
    replay = replay_groups(fold_split, snakemake.params.replay, snakemake.params.seed)
    split = correction_split(
        fold_split, read_index(snakemake.input.index), corrected, scored, replay
    )
    write_json(snakemake.output[0], split)
    log.info(
        "%s order, k=%d: corrected %s + %d replay artworks (%d images) / %d val / %d scored images",
        order,
        k,
        ", ".join(corrected),
        len(replay),
        split["n_train"],
        split["n_val"],
        split["n_test"],
    )
