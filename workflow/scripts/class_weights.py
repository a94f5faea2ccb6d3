import numpy as np
import pandas as pd

from heritage_damage_seg import class_weights
from heritage_damage_seg.io import read_json, write_json
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    index = pd.read_csv(snakemake.input.index, dtype={"id": str}, keep_default_na=False)  # noqa: F821
    train_ids = set(read_json(snakemake.input.split)["train"])  # noqa: F821
    positions = np.flatnonzero(index["id"].isin(train_ids).to_numpy())
    masks = np.load(snakemake.input.masks, mmap_mode="r")  # noqa: F821
    counts = class_weights.pixel_counts(masks[positions])
    result = class_weights.compute(counts, snakemake.params.method)  # noqa: F821
    write_json(snakemake.output[0], result)  # noqa: F821
    log.info("%s weights (max/min %.1f×): %s", result["method"], result["max_min_ratio"] or 0,
             ", ".join(f"{w:.3g}" for w in result["weights"]))
