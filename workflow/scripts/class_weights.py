import numpy as np

from heritage_damage_seg.data import class_weights
from heritage_damage_seg.data.cache import read_index
from heritage_damage_seg.io import read_json, write_json
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:
    index = read_index(snakemake.input.index)
    train_ids = set(read_json(snakemake.input.split)["train"])
    positions = np.flatnonzero(index["id"].isin(train_ids).to_numpy())
    masks = np.load(snakemake.input.masks, mmap_mode="r")
    counts = class_weights.pixel_counts(masks[positions])
    result = class_weights.compute(counts, snakemake.params.method)
    write_json(snakemake.output[0], result)
    log.info(
        "%s weights (max/min %.1f×): %s",
        result["method"],
        result["max_min_ratio"] or 0,
        ", ".join(f"{w:.3g}" for w in result["weights"]),
    )
