import pandas as pd

from heritage_damage_seg.evaluation.bootstrap import bootstrap_models, resampling
from heritage_damage_seg.evaluation.compare import load_units
from heritage_damage_seg.evaluation.finetune import (
    AFTER,
    BEFORE,
    COMPARISON_COLUMNS,
    comparison_rows,
    same_units,
)
from heritage_damage_seg.io import atomic_path, read_json, write_json
from heritage_damage_seg.logs import logged

params, inputs = snakemake.params, snakemake.input


def percent(value):
    """A figure as % (n/a where no class was defined on the scored artworks)."""
    return "n/a" if value is None else f"{100 * value:.2f}%"


with logged(snakemake.log[0]) as log:
    split = read_json(inputs.split)
    per_artwork = {}
    # before last: the pair reads after − before
    for name, path in ((AFTER, inputs.after), (BEFORE, inputs.before)):
        _, names, stack = load_units(path)
        per_artwork[name] = (names, stack)
    same_units(
        {name: units for name, (units, _) in per_artwork.items()},
        split["scored_groups"],
        inputs.split,
    )
    bootstrap = params.bootstrap
    result = bootstrap_models(per_artwork, **resampling(bootstrap), split="scored")
    rows = comparison_rows(result, len(split["scored_groups"]))
    with atomic_path(snakemake.output.csv) as tmp:
        pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS)).to_csv(tmp, index=False)
    encoder = snakemake.wildcards.encoder
    write_json(
        snakemake.output.json,
        {
            "encoder": encoder,
            "corrections": params.corrections,
            "started_from": f"results/{encoder}/model_best.pt",
            "fine_tuned": f"results/finetune/{encoder}/model_best.pt",
            "trained_on": {
                "corrected_artworks": split["corrected_groups"],
                "replay_artworks": split["replay_groups"],
                "n_images": split["n_train"],
            },
            "chosen_on": {"artworks": split["choose_groups"], "n_images": split["n_val"]},
            "scored_on": {"artworks": split["scored_groups"], "n_images": split["n_test"]},
            "per_image_confusion": {"before": inputs.before, "after": inputs.after},
            "method": result["method"],
            "confidence": bootstrap["confidence"],
            "rows": rows,
        },
    )
    for row in rows:
        log.info(
            "%s %s → %s (gain %s, %.0f%% interval %s … %s) on %d scored artworks",
            row["metric"],
            percent(row["before"]),
            percent(row["after"]),
            percent(row["gain"]),
            100 * bootstrap["confidence"],
            percent(row["gain_low"]),
            percent(row["gain_high"]),
            row["n_scored_artworks"],
        )
