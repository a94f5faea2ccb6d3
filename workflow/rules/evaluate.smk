rule evaluate:
    """Test-split metrics (one dataset-level confusion matrix), inference time, predicted masks,
    in the configured evaluation.mode (cache or native)."""
    input:
        **evaluation_inputs(EVALUATION_MODE),
        # Seed repeats: the other seeds' metrics, summarised in this metrics.json.
        seed_metrics=lambda wildcards: seed_files(
            "metrics.json", [wildcards.encoder], EXTRA_SEEDS
        ),
    output:
        metrics="results/{encoder}/metrics.json",
        per_image_confusion="results/{encoder}/per_image_confusion.npz",
        predictions=directory("results/{encoder}/predictions"),
    log:
        "results/logs/evaluate/{encoder}.log",
    benchmark:
        "results/benchmarks/evaluate/{encoder}.tsv"
    conda:
        "../../envs/pytorch.yaml"
    threads: config["training"]["threads"]
    resources:
        **gpu_resources(30, timed=True),
    params:
        **EVALUATION_PARAMS,
        mode=EVALUATION_MODE,
    script:
        "../scripts/evaluate.py"


use rule evaluate as evaluate_seed with:
    input:
        **evaluation_inputs(EVALUATION_MODE, run="results/{encoder}/seed_{seed}"),
    output:
        metrics="results/{encoder}/seed_{seed}/metrics.json",
        per_image_confusion="results/{encoder}/seed_{seed}/per_image_confusion.npz",
        predictions=directory("results/{encoder}/seed_{seed}/predictions"),
    log:
        "results/logs/evaluate/{encoder}/seed_{seed}.log",
    benchmark:
        "results/benchmarks/evaluate/{encoder}/seed_{seed}.tsv"


use rule evaluate as evaluate_other_mode with:
    """The evaluation in the mode that evaluation.mode did not pick (for the per-class comparison)."""
    input:
        **evaluation_inputs(OTHER_MODE),
    output:
        metrics=f"results/{{encoder}}/evaluation_{OTHER_MODE}/metrics.json",
        per_image_confusion=f"results/{{encoder}}/evaluation_{OTHER_MODE}/per_image_confusion.npz",
        predictions=directory(
            f"results/{{encoder}}/evaluation_{OTHER_MODE}/predictions"
        ),
    log:
        f"results/logs/evaluate_{OTHER_MODE}/{{encoder}}.log",
    benchmark:
        f"results/benchmarks/evaluate_{OTHER_MODE}/{{encoder}}.tsv"
    # Not timed: its ms/image are not the benchmark's, so it may share the GPUs (gpu_jobs).
    resources:
        **gpu_resources(60, timed=False),
    params:
        **EVALUATION_PARAMS,
        mode=OTHER_MODE,


rule evaluation_modes:
    """Per-class IoU scored on the cache vs. at native resolution (native − cache, percentage points)."""
    input:
        cache=metrics_of_mode("cache"),
        native=metrics_of_mode("native"),
    output:
        csv="results/{encoder}/evaluation_modes.csv",
        html=encoder_report(
            "results/{encoder}/evaluation_modes.html",
            "evaluation_modes",
            "metrics",
            "evaluation modes",
        ),
    log:
        "results/logs/evaluation_modes/{encoder}.log",
    conda:
        "../../envs/pytorch.yaml"
    script:
        "../scripts/evaluation_modes.py"


rule compare:
    """All encoders side by side, ranked by test mIoU (mean over seeds), with bootstrap confidence
    intervals over test artworks × seeds; the best encoder for predict chosen on validation.
    """
    input:
        metrics=expand("results/{encoder}/metrics.json", encoder=ENCODER_NAMES),
        histories=seed_files("history.csv"),
        per_image_confusion=seed_files("per_image_confusion.npz"),
    output:
        json="results/model_comparison.json",
        csv="results/model_comparison.csv",
    log:
        "results/logs/compare.log",
    benchmark:
        "results/benchmarks/compare.tsv"
    conda:
        "../../envs/pytorch.yaml"
    params:
        # The inputs by encoder (and seed), as compare.py reads them.
        metrics={e: f"results/{e}/metrics.json" for e in ENCODER_NAMES},
        histories=seed_files_by_encoder("history.csv"),
        per_image_confusion=seed_files_by_encoder("per_image_confusion.npz"),
        bootstrap=config["bootstrap"],
    script:
        "../scripts/compare.py"
