rule split:
    """Seeded train/validation/test split over artworks (all views of one artwork on one side):
    validation chooses, test is reported (split.test_fraction: 0 is the prototype's two-way split).
    """
    input:
        index=rules.prepare_cache.output.index,
    output:
        "results/split.json",
    log:
        "results/logs/split.log",
    benchmark:
        "results/benchmarks/split.tsv"
    conda:
        "../../envs/pytorch.yaml"
    params:
        val_fraction=config["split"]["val_fraction"],
        test_fraction=config["split"]["test_fraction"],
        seed=config["split"]["seed"],
    script:
        "../scripts/split.py"


rule class_weights:
    """Loss weights from the pixel frequencies of the training split only."""
    input:
        masks=rules.prepare_cache.output.masks,
        index=rules.prepare_cache.output.index,
        split=rules.split.output[0],
    output:
        "results/class_weights.json",
    log:
        "results/logs/class_weights.log",
    benchmark:
        "results/benchmarks/class_weights.tsv"
    conda:
        "../../envs/pytorch.yaml"
    params:
        method=config["class_weights"]["method"],
    script:
        "../scripts/class_weights.py"
