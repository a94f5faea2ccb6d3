from pathlib import Path

from heritage_damage_seg.classes import CLASS_NAMES
from heritage_damage_seg.data.split import scored_side
from heritage_damage_seg.io import read_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.report import plots, samples

with logged(snakemake.log[0]) as log:
    settings = snakemake.params.settings
    encoder = snakemake.wildcards.encoder
    dpi, seed = settings["dpi"], settings["seed"]
    cache_dir = Path(snakemake.input.cache[0]).parent
    predictions_dir = snakemake.input.predictions
    metrics = read_json(snakemake.input.metrics)
    # Samples come from the split the figures report (test), never from the one that chose the
    # epoch.
    split = read_json(snakemake.input.split)
    scored_ids = sorted(split[scored_side(split)])

    grid_ids = samples.choose_samples(scored_ids, settings["samples"], seed)
    images, masks, predictions = samples.load_samples(grid_ids, cache_dir, predictions_dir)
    plots.plot_prediction_grid(
        grid_ids,
        images,
        masks,
        predictions,
        snakemake.output.grid,
        encoder,
        dpi,
        "test" if scored_side(split) == "test" else "validation",
    )
    log.info("prediction grid: %s", ", ".join(grid_ids))

    error_ids = samples.choose_samples(scored_ids, settings["error_map_samples"], seed + 1)
    images, masks, predictions = samples.load_samples(error_ids, cache_dir, predictions_dir)
    plots.plot_error_maps(
        error_ids, images, masks, predictions, snakemake.output.errors, encoder, dpi
    )
    log.info("error maps: %s", ", ".join(error_ids))

    # The classes depend on the ground truth only, so every encoder shows the same ones.
    _, all_masks, _ = samples.load_samples(scored_ids, cache_dir, predictions_dir)
    classes = samples.focus_classes(
        all_masks, settings["focus_classes"], settings["n_focus_classes"]
    )
    for class_id, path in zip(classes, snakemake.output.focus):
        ids = samples.class_samples(
            all_masks, scored_ids, class_id, settings["focus_samples"], seed
        )
        images, masks, predictions = samples.load_samples(ids, cache_dir, predictions_dir)
        iou = metrics["per_class"][CLASS_NAMES[class_id]]["IoU"]
        plots.plot_class_focus(class_id, ids, images, masks, predictions, path, encoder, iou, dpi)
        log.info(
            "%s: class %d %s on %s",
            Path(path).name,
            class_id,
            CLASS_NAMES[class_id],
            ", ".join(ids),
        )
