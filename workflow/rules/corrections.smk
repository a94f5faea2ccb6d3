# The correction curve (config correction_curve): how much better a leave-one-out fold's model
# gets on its held-out collection once k of those artworks are corrected, for k in ks and for each
# order of correcting them (heritage_damage_seg.evaluation.correction_curve). Asked for by name:
#   snakemake results/correction_curve/convnext_tiny/curve.csv
# Its fine-tunings reuse the train and evaluate rules with their own split; the fold's model is
# the loo_train rule's.


rule correction_pool:
    """The held-out collection drawn into artworks to score (never corrected) and a pool to
    correct, the pool ranked by the fold model's own uncertainty and at random."""
    input:
        fold_split=of_curve_fold("results/loo_{family}/{fold}/split.json"),
        checkpoint=of_curve_fold(f"{LOO_RUN}/model_best.pt"),
        index=rules.prepare_cache.output.index,
        cache=CACHE_FILES,
    output:
        f"{CURVE_DIR}/pool.csv",
    log:
        "results/logs/correction_curve/{encoder}/pool.log",
    benchmark:
        "results/benchmarks/correction_curve/{encoder}/pool.tsv"
    conda:
        "../../envs/pytorch.yaml"
    threads: config["training"]["threads"]
    resources:
        **gpu_resources(30, timed=False),
    params:
        **EVALUATION_PARAMS,
        scored_fraction=CURVE["scored_fraction"],
        seed=CURVE["seed"],
        ks=CURVE["ks"],
        low_confidence=config["predict"]["low_confidence"],
    script:
        "../scripts/correction_pool.py"


rule correction_split:
    """One fine-tuning's split: the first k pool artworks of the order (+ replay artworks of the
    fold's training side) / the fold's inner validation / the scored artworks."""
    input:
        pool=rules.correction_pool.output[0],
        fold_split=of_curve_fold("results/loo_{family}/{fold}/split.json"),
        index=rules.prepare_cache.output.index,
    output:
        f"{CURVE_RUN}/split.json",
    log:
        "results/logs/correction_curve/{encoder}/{order}/k{k}/split.log",
    conda:
        "../../envs/pytorch.yaml"
    params:
        replay=CURVE["replay"],
        seed=CURVE["seed"],
    script:
        "../scripts/correction_split.py"


use rule train as correction_finetune with:
    input:
        cache=CACHE_FILES,
        split=rules.correction_split.output[0],
        class_weights=of_curve_fold("results/loo_{family}/{fold}/class_weights.json"),
        init=of_curve_fold(f"{LOO_RUN}/model_best.pt"),
    output:
        best=f"{CURVE_RUN}/model_best.pt",
        history=f"{CURVE_RUN}/history.csv",
    log:
        "results/logs/correction_curve/{encoder}/{order}/k{k}/train.log",
    benchmark:
        "results/benchmarks/correction_curve/{encoder}/{order}/k{k}/train.tsv"
    resources:
        **training_resources(config["training"]["runtime_minutes"], timed=False),
    params:
        settings=started_from_init(CURVE),
        last_checkpoint=lambda wildcards: expand(
            f"{CURVE_RUN}/model_last.pt", **wildcards
        )[0],


use rule evaluate as correction_evaluate with:
    input:
        **evaluation_inputs(
            EVALUATION_MODE, run=CURVE_RUN, split=rules.correction_split.output[0]
        ),
    output:
        metrics=f"{CURVE_RUN}/metrics.json",
        per_image_confusion=f"{CURVE_RUN}/per_image_confusion.npz",
        predictions=directory(f"{CURVE_RUN}/predictions"),
    log:
        "results/logs/correction_curve/{encoder}/{order}/k{k}/evaluate.log",
    benchmark:
        "results/benchmarks/correction_curve/{encoder}/{order}/k{k}/evaluate.tsv"
    resources:
        **gpu_resources(30, timed=False),


rule correction_curve:
    """mIoU and damage mIoU of the scored artworks before and after each fine-tuning, with paired
    bootstrap intervals over those artworks, as a CSV, a JSON and a plot."""
    input:
        pool=rules.correction_pool.output[0],
        before=of_curve_fold(f"{LOO_RUN}/per_image_confusion.npz"),
        runs=lambda wildcards: [
            path
            for run in curve_runs(wildcards)
            for path in (run["split"], run["per_image_confusion"])
        ],
    output:
        csv=f"{CURVE_DIR}/curve.csv",
        json=f"{CURVE_DIR}/curve.json",
        png=report(
            f"{CURVE_DIR}/curve.png",
            caption="../report/correction_curve.rst",
            category="Corrections",
            labels={"encoder": "{encoder}", "figure": "correction curve"},
        ),
    log:
        "results/logs/correction_curve/{encoder}/curve.log",
    conda:
        "../../envs/pytorch.yaml"
    params:
        runs=curve_runs,
        bootstrap=config["bootstrap"],
        family=CURVE["family"],
        fold=curve_fold,
    script:
        "../scripts/correction_curve.py"
