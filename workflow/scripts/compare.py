import pandas as pd

from heritage_damage_seg.evaluation.bootstrap import resampling
from heritage_damage_seg.evaluation.compare import compare
from heritage_damage_seg.io import atomic_path, write_json
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:
    params = snakemake.params
    bootstrap = params.bootstrap
    comparison = compare(
        params.metrics,
        params.histories,
        params.per_image_confusion,
        **resampling(bootstrap),
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
