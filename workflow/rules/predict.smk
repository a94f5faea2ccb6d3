rule predict:
    """Damage maps at native resolution for the folder predict.input: index masks, overlays, areas,
    confidence maps, damage outlines (GeoJSON, COCO), a condition report per scan, the damage
    viewer and the IIIF export (manifest, tiles, outlines as W3C annotations)."""
    input:
        unpack(predict_checkpoint_inputs),
    output:
        **(
            {"viewer": directory("results/predict/viewer")}
            if config["predict"]["viewer"]
            else {}
        ),
        **(
            {"iiif": directory("results/predict/iiif")}
            if config["predict"]["iiif"]
            else {}
        ),
        areas="results/predict/damage_areas.csv",
        summary="results/predict/prediction.json",
        masks=directory("results/predict/masks"),
        overlays=directory("results/predict/overlays"),
        confidence=directory("results/predict/confidence"),
        outlines=directory("results/predict/outlines"),
        reports=report(
            directory("results/predict/reports"),
            htmlindex="index.html",
            caption="../report/condition_reports.rst",
            category="Prediction",
        ),
    log:
        "results/logs/predict.log",
    benchmark:
        "results/benchmarks/predict.tsv"
    conda:
        "../../envs/pytorch.yaml"
    threads: config["training"]["threads"]
    resources:
        **gpu_resources(config["training"]["runtime_minutes"], timed=False),
    params:
        inputs=[config["predict"]["input"]] if config["predict"]["input"] else [],
        out_dir=lambda wildcards, output: str(Path(output.areas).parent),
        checkpoint=lambda wildcards, input: input.get("checkpoint"),
        sliding=config["sliding"],
        artwork_masks=config["predict"]["artwork_masks"],
        overlay_max_side=config["predict"]["overlay_max_side"],
        keep_going=config["predict"]["keep_going"],
        dpi=config["predict"]["dpi"],
        dpi_table=config["predict"]["dpi_table"],
        products={
            key: config["predict"][key]
            for key in (
                "viewer",
                "low_confidence",
                "outline_tolerance",
                "outline_min_area",
                "iiif",
                "iiif_base_url",
            )
        },
        mixed_precision=config["training"]["mixed_precision"],
        device=config["training"]["device"],
    script:
        "../scripts/predict.py"
