# Figures and HTML tables for people, each also an item of `snakemake --report report.html`.
# Captions (how to read each figure) live in workflow/report/*.rst.


rule plot_metrics:
    """Confusion matrix, per-class IoU, class distribution and the metrics as HTML tables."""
    input:
        metrics=rules.evaluate.output.metrics,
    output:
        confusion=encoder_report(
            "results/{encoder}/plots/confusion_matrix.png",
            "confusion_matrix",
            "metrics",
            "confusion matrix",
        ),
        iou=encoder_report(
            "results/{encoder}/plots/per_class_iou.png",
            "per_class_iou",
            "metrics",
            "IoU per class",
        ),
        distribution=encoder_report(
            "results/{encoder}/plots/class_distribution.png",
            "class_distribution",
            "metrics",
            "class distribution",
        ),
        table=encoder_report(
            "results/{encoder}/metrics_table.html",
            "metrics_table",
            "metrics",
            "metrics table",
        ),
    log:
        "results/logs/plots/metrics_{encoder}.log",
    benchmark:
        "results/benchmarks/plots/metrics_{encoder}.tsv"
    conda:
        "../../envs/pytorch.yaml"
    params:
        dpi=PLOTS["dpi"],
    script:
        "../scripts/plot_metrics.py"


rule plot_samples:
    """Prediction grid, error maps and TP/FP/FN views on seeded test samples (same for every encoder)."""
    input:
        predictions=rules.evaluate.output.predictions,
        metrics=rules.evaluate.output.metrics,
        cache=CACHE_FILES,
        split=rules.split.output[0],
    output:
        grid=encoder_report(
            "results/{encoder}/plots/prediction_grid.png",
            "prediction_grid",
            "samples",
            "prediction grid",
        ),
        errors=encoder_report(
            "results/{encoder}/plots/error_maps.png",
            "error_maps",
            "samples",
            "error maps",
        ),
        focus=[
            encoder_report(
                f"results/{{encoder}}/plots/class_focus_{rank}.png",
                "class_focus",
                "per-class views",
                f"class view {rank}",
            )
            for rank in FOCUS_RANKS
        ],
    log:
        "results/logs/plots/samples_{encoder}.log",
    benchmark:
        "results/benchmarks/plots/samples_{encoder}.tsv"
    conda:
        "../../envs/pytorch.yaml"
    params:
        settings=PLOTS,
    script:
        "../scripts/plot_samples.py"


rule plot_training:
    """Training loss, validation mIoU and learning rate per epoch."""
    input:
        history=rules.train.output.history,
    output:
        encoder_report(
            "results/{encoder}/plots/training_curves.png",
            "training_curves",
            "training",
            "training curves",
        ),
    log:
        "results/logs/plots/training_{encoder}.log",
    benchmark:
        "results/benchmarks/plots/training_{encoder}.tsv"
    conda:
        "../../envs/pytorch.yaml"
    params:
        dpi=PLOTS["dpi"],
    script:
        "../scripts/plot_training.py"


rule plot_comparison:
    """mIoU with bootstrap CIs, the models × classes IoU heatmap, accuracy vs speed, the comparison table."""
    input:
        comparison=rules.compare.output.json,
    output:
        ci=comparison_report(
            "results/comparison/miou_ci.png",
            "comparison_ci",
            "mIoU with confidence intervals",
        ),
        heatmap=comparison_report(
            "results/comparison/iou_heatmap.png", "iou_heatmap", "IoU heatmap"
        ),
        speed=comparison_report(
            "results/comparison/accuracy_vs_speed.png",
            "accuracy_vs_speed",
            "accuracy vs speed",
        ),
        table=comparison_report(
            "results/comparison/comparison_table.html",
            "comparison_table",
            "comparison table",
        ),
    log:
        "results/logs/plots/comparison.log",
    benchmark:
        "results/benchmarks/plots/comparison.tsv"
    conda:
        "../../envs/pytorch.yaml"
    params:
        dpi=PLOTS["dpi"],
    script:
        "../scripts/plot_comparison.py"
