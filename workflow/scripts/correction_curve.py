import pandas as pd

from heritage_damage_seg.evaluation.bootstrap import bootstrap_models, resampling
from heritage_damage_seg.evaluation.compare import load_units
from heritage_damage_seg.evaluation.correction_curve import (
    CURVE_COLUMNS,
    curve_rows,
    restricted,
    run_name,
    which_order_helps,
)
from heritage_damage_seg.io import atomic_path, read_json, write_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.report.curve_plots import plot_correction_curve

params = snakemake.params
with logged(snakemake.log[0]) as log:
    pool = pd.read_csv(snakemake.input.pool, dtype={"group": str})
    scored = sorted(pool.loc[pool["role"] == "scored", "group"])
    runs, per_artwork = {}, {}
    for run in params.runs:
        order, k = run["order"], run["k"]
        runs[(order, k)] = read_json(run["split"])["corrected_groups"]
        _, names, stack = load_units(run["per_image_confusion"])
        per_artwork[run_name(order, k)] = restricted(names, stack, scored)
    # The fold's own evaluation scored the whole held-out collection: keep its scored part.
    _, names, stack = load_units(snakemake.input.before)
    per_artwork["before"] = restricted(names, stack, scored)  # last: pairs read after − before
    bootstrap = params.bootstrap
    result = bootstrap_models(per_artwork, **resampling(bootstrap), split="scored")
    rows = curve_rows(runs, result, len(scored))
    with atomic_path(snakemake.output.csv) as tmp:
        pd.DataFrame(rows, columns=list(CURVE_COLUMNS)).to_csv(tmp, index=False)
    answer = which_order_helps(rows)
    write_json(
        snakemake.output.json,
        {
            "family": params.family,
            "fold": params.fold,
            "encoder": snakemake.wildcards.encoder,
            "scored_artworks": scored,
            "before": result["models"]["before"],
            "method": result["method"],
            "confidence": bootstrap["confidence"],
            "rows": rows,
            "which_order_helps": answer,
        },
    )
    plot_correction_curve(
        rows, result["models"]["before"], snakemake.output.png, bootstrap["confidence"]
    )
    for row in rows:
        log.info(
            "%s k=%d: mIoU %.2f%% → %.2f%% (gain %+.2f pp, %.0f%% interval %+.2f … %+.2f)",
            row["order"],
            row["k"],
            100 * row["mIoU_before"],
            100 * row["mIoU_after"],
            100 * row["mIoU_gain"],
            100 * bootstrap["confidence"],
            100 * row["mIoU_gain_low"],
            100 * row["mIoU_gain_high"],
        )
    log.info(
        "better on average: %s (mean mIoU gain %s)",
        answer["better_on_average"],
        answer["mean_mIoU_gain"],
    )
