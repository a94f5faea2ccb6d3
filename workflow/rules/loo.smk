# Leave-one-group-out families (config split.leave_one_out): for each value of a metadata column
# (material or content), a fold trains on every other value (its best epoch chosen on an inner
# validation carved from them by artwork) and is scored on the held-out one (its test side).
# A fold's files live in results/loo_{family}/{fold}/, {fold} being the value made path-safe
# (split.fold_name: "Lime plaster" → Lime_plaster). Split, class weights, training and evaluation
# reuse the default rules with the fold's paths; results/{encoder}/… keeps meaning the default split.

LOO_RUN = "results/loo_{family}/{fold}/{encoder}"


checkpoint loo_folds:
    """The folds of one family: every value of the column in the cache index (data-dependent)."""
    input:
        index=rules.prepare_cache.output.index,
    output:
        "results/loo_{family}/folds.json",
    log:
        "results/logs/loo_{family}/folds.log",
    benchmark:
        "results/benchmarks/loo_{family}/folds.tsv"
    conda:
        "../../envs/pytorch.yaml"
    script:
        "../scripts/loo_folds.py"


rule loo_split:
    """One fold: test = the images of the held-out value; the others are split by artwork into
    training and an inner validation (split.val_fraction, split.seed) that chooses the best epoch.
    """
    input:
        index=rules.prepare_cache.output.index,
    output:
        "results/loo_{family}/{fold}/split.json",
    log:
        "results/logs/loo_{family}/{fold}/split.log",
    benchmark:
        "results/benchmarks/loo_{family}/{fold}/split.tsv"
    conda:
        "../../envs/pytorch.yaml"
    params:
        val_fraction=config["split"]["val_fraction"],
        seed=config["split"]["seed"],
    script:
        "../scripts/loo_split.py"


use rule class_weights as loo_class_weights with:
    input:
        masks=rules.prepare_cache.output.masks,
        index=rules.prepare_cache.output.index,
        split=rules.loo_split.output[0],
    output:
        "results/loo_{family}/{fold}/class_weights.json",
    log:
        "results/logs/loo_{family}/{fold}/class_weights.log",
    benchmark:
        "results/benchmarks/loo_{family}/{fold}/class_weights.tsv"


use rule train as loo_train with:
    input:
        cache=CACHE_FILES,
        split=rules.loo_split.output[0],
        class_weights=rules.loo_class_weights.output[0],
        encoder_weights=encoder_weights_inputs,
    output:
        best=f"{LOO_RUN}/model_best.pt",
        history=f"{LOO_RUN}/history.csv",
    log:
        "results/logs/loo_{family}/{fold}/train/{encoder}.log",
    benchmark:
        "results/benchmarks/loo_{family}/{fold}/train/{encoder}.tsv"
    # Independent of each other: gpu_jobs (config) folds train at once (common.smk).
    resources:
        **training_resources(config["training"]["runtime_minutes"], timed=False),
    params:
        # Only this key is replaced (use-rule params are merged by name): resume from the fold's own file.
        last_checkpoint=lambda wildcards: expand(
            f"{LOO_RUN}/model_last.pt", **wildcards
        )[0],


use rule evaluate as loo_evaluate with:
    input:
        **evaluation_inputs(
            EVALUATION_MODE, run=LOO_RUN, split=rules.loo_split.output[0]
        ),
    output:
        metrics=f"{LOO_RUN}/metrics.json",
        per_image_confusion=f"{LOO_RUN}/per_image_confusion.npz",
        predictions=directory(f"{LOO_RUN}/predictions"),
    log:
        "results/logs/loo_{family}/{fold}/evaluate/{encoder}.log",
    benchmark:
        "results/benchmarks/loo_{family}/{fold}/evaluate/{encoder}.tsv"
    resources:
        **gpu_resources(30, timed=False),


rule loo_summary:
    """One family across its folds: per encoder each fold's mIoU and damage mIoU, mean, std, worst fold."""
    input:
        unpack(loo_summary_inputs),
    output:
        json="results/loo_{family}/summary.json",
        csv="results/loo_{family}/summary.csv",
        html=report(
            "results/loo_{family}/summary.html",
            caption="../report/loo_summary.rst",
            category="Leave-one-out",
            labels={"family": "{family}"},
        ),
    log:
        "results/logs/loo_{family}/summary.log",
    benchmark:
        "results/benchmarks/loo_{family}/summary.tsv"
    conda:
        "../../envs/pytorch.yaml"
    params:
        # The inputs by fold and encoder, as loo_summary.py reads them.
        files=loo_fold_files,
    script:
        "../scripts/loo_summary.py"
