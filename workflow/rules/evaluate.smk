rule evaluate:
    """Validation metrics (one dataset-level confusion matrix), inference time, predicted masks."""
    input:
        checkpoint=rules.train.output.best,
        cache=multiext("results/cache/", "images.npy", "masks.npy", "index.csv"),
        split=rules.split.output[0],
    output:
        metrics="results/{encoder}/metrics.json",
        per_image_confusion="results/{encoder}/per_image_confusion.npz",
        predictions=directory("results/{encoder}/predictions"),
    params:
        batch_size=config["evaluation"]["batch_size"],
        mixed_precision=config["training"]["mixed_precision"],
        device=config["training"]["device"],
    log:
        "results/logs/evaluate/{encoder}.log",
    benchmark:
        "results/benchmarks/evaluate/{encoder}.tsv"
    threads: config["training"]["threads"]
    resources:
        gpu_slot=1,
        mem_mb=config["training"]["mem_mb"],
        runtime=30,
    conda:
        "../../envs/pytorch.yaml"
    script:
        "../scripts/evaluate.py"


rule compare:
    """All encoders side by side, ranked by validation mIoU, with bootstrap confidence intervals."""
    input:
        metrics=expand("results/{encoder}/metrics.json", encoder=ENCODER_NAMES),
        histories=expand("results/{encoder}/history.csv", encoder=ENCODER_NAMES),
        per_image_confusion=expand("results/{encoder}/per_image_confusion.npz", encoder=ENCODER_NAMES),
    output:
        json="results/model_comparison.json",
        csv="results/model_comparison.csv",
    params:
        encoders=ENCODER_NAMES,
        bootstrap=config["bootstrap"],
    log:
        "results/logs/compare.log",
    benchmark:
        "results/benchmarks/compare.tsv"
    conda:
        "../../envs/pytorch.yaml"
    script:
        "../scripts/compare.py"
