import pandas as pd

from heritage_damage_seg.evaluation.compare import compare
from heritage_damage_seg.io import atomic_path, write_json
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:
    encoders = snakemake.params.encoders
    bootstrap = snakemake.params.bootstrap
    n_seeds = snakemake.params.n_seeds
    files = list(snakemake.input.per_image_confusion)
    histories = list(snakemake.input.histories)
    # One file per seed and encoder, encoder-major (rule compare).
    per_seed = {e: files[i * n_seeds : (i + 1) * n_seeds] for i, e in enumerate(encoders)}
    comparison = compare(
        dict(zip(encoders, snakemake.input.metrics)),
        {e: histories[i * n_seeds : (i + 1) * n_seeds] for i, e in enumerate(encoders)},
        per_seed,
        n_resamples=bootstrap["resamples"],
        seed=bootstrap["seed"],
        confidence=bootstrap["confidence"],
    )
    write_json(snakemake.output.json, comparison)
    table = pd.DataFrame(
        [{k: v for k, v in m.items() if k != "per_class_IoU"} for m in comparison["models"]]
    )
    with atomic_path(snakemake.output.csv) as tmp:
        table.to_csv(tmp, index=False)
    log.info(
        "ranking by mIoU:\n%s",
        table[
            [
                "encoder",
                "mIoU",
                "mIoU_ci_low",
                "mIoU_ci_high",
                "damage_mIoU",
                "trivial_baseline_mIoU",
            ]
        ].to_string(),
    )
    for pair in comparison["pairwise"]:
        d = pair["mIoU"]
        log.info(
            "%s − %s: mIoU %+.4f [%s, %s], %s wins %.1f%% of %d resamples",
            pair["a"],
            pair["b"],
            d["difference"] or 0.0,
            d["low"],
            d["high"],
            pair["a"],
            100 * (d["a_wins_share"] or 0.0),
            bootstrap["resamples"],
        )
