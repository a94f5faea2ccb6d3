from pathlib import Path

import pandas as pd
import torch

from heritage_damage_seg.data.cache import read_index
from heritage_damage_seg.evaluation.correction_curve import (
    POOL_COLUMNS,
    check_ks,
    correction_orders,
    split_new_collection,
)
from heritage_damage_seg.evaluation.evaluate import load_evaluation
from heritage_damage_seg.evaluation.uncertainty import low_confidence_shares
from heritage_damage_seg.io import atomic_path, read_json
from heritage_damage_seg.logs import logged

params = snakemake.params
with logged(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    fold_split = read_json(snakemake.input.fold_split)
    index = read_index(snakemake.input.index)
    pool, scored = split_new_collection(
        fold_split["test_groups"], params.scored_fraction, params.seed
    )
    check_ks(params.ks, len(pool), fold_split["fold"])
    run = load_evaluation(
        snakemake.input.checkpoint,
        Path(snakemake.input.cache[0]).parent,
        batch_size=params.batch_size,
        mixed_precision=params.mixed_precision,
        device_preference=params.device,
        mode="cache",
        sliding=None,
    )
    in_pool = index["group"].astype(str).isin(pool)
    shares = low_confidence_shares(
        run, index.loc[in_pool, "id"].astype(str).tolist(), params.low_confidence
    )
    rows = index.loc[in_pool, ["id", "group"]].assign(
        low_confidence_pct=lambda frame: frame["id"].astype(str).map(shares)
    )
    table = rows.groupby("group", as_index=False).agg(
        rows=("id", "size"), low_confidence_pct=("low_confidence_pct", "mean")
    )
    orders = correction_orders(table, params.seed)
    for order, groups in orders.items():
        ranks = {g: i + 1 for i, g in enumerate(groups)}
        table[f"{order}_rank"] = table["group"].map(ranks).astype("Int64")
    table["role"] = "pool"
    scored_rows = index.loc[index["group"].astype(str).isin(scored)].groupby("group").size()
    table = pd.concat(
        [
            table,
            pd.DataFrame(
                {"group": scored_rows.index, "rows": scored_rows.values, "role": "scored"}
            ),
        ],
        ignore_index=True,
    )[list(POOL_COLUMNS)]
    with atomic_path(snakemake.output[0]) as tmp:
        table.to_csv(tmp, index=False)
    log.info(
        "%s %r: %d artworks to correct (most unsure first: %s), %d scored (never corrected): %s",
        fold_split["family"],
        fold_split["held_out"],
        len(pool),
        ", ".join(orders["uncertainty"]),
        len(scored),
        ", ".join(scored),
    )
