# Fine-tuning on a corrections dataset (config finetune; docs/corrections.md): a trained
# results/{encoder}/model_best.pt trained further on the folder dataset import-corrections writes,
# mixed with replay artworks of the original training split, its best epoch chosen on a part of
# the corrections and scored, before and after, on corrected scans that neither trained nor chose
# (heritage_damage_seg.evaluation.finetune). Asked for by name:
#   snakemake results/finetune/convnext_tiny/comparison.json
# The corrections are prepared by the prepare_cache rule's code and joined with the replay rows
# into one cache, so that training and evaluation are the train and evaluate rules.


use rule prepare_cache as finetune_prepare_cache with:
    input:
        unpack(corrections_inputs),
    output:
        images=f"{CORRECTIONS_CACHE}/images.npy",
        masks=f"{CORRECTIONS_CACHE}/masks.npy",
        index=f"{CORRECTIONS_CACHE}/index.csv",
        working=directory(f"{CORRECTIONS_CACHE}/working"),
    log:
        "results/logs/finetune/prepare_cache.log",
    benchmark:
        "results/benchmarks/finetune/prepare_cache.tsv"
    params:
        image_size=config["prepare"]["image_size"],
        working_max_side=config["prepare"]["working_max_side"],
        exif_orientation=config["prepare"]["exif_orientation"],
        view=config["prepare"]["view"],
        crops={
            key: config["prepare"][key]
            for key in ("crop_scale", "crops_per_image", "seed")
        },
        format="folder",


rule finetune_split:
    """The corrections' artworks drawn into train / choose (val) / scored (test), seeded, with
    replay artworks of the original training side added to train."""
    input:
        corrections=rules.finetune_prepare_cache.output.index,
        original=rules.prepare_cache.output.index,
        original_split=rules.split.output[0],
    output:
        FINETUNE_SPLIT,
    log:
        "results/logs/finetune/split.log",
    conda:
        "../../envs/pytorch.yaml"
    params:
        scored_fraction=FINETUNE["scored_fraction"],
        choose_fraction=FINETUNE["choose_fraction"],
        replay=FINETUNE["replay"],
        seed=FINETUNE["seed"],
    script:
        "../scripts/finetune_split.py"


rule finetune_cache:
    """One cache of every corrections row and the replay rows of the training cache."""
    input:
        corrections=multiext(
            f"{CORRECTIONS_CACHE}/", "images.npy", "masks.npy", "index.csv"
        ),
        original=CACHE_FILES,
        split=FINETUNE_SPLIT,
    output:
        images=FINETUNE_CACHE_FILES[0],
        masks=FINETUNE_CACHE_FILES[1],
        index=FINETUNE_CACHE_FILES[2],
    log:
        "results/logs/finetune/cache.log",
    benchmark:
        "results/benchmarks/finetune/cache.tsv"
    conda:
        "../../envs/pytorch.yaml"
    resources:
        mem_mb=4000,
    script:
        "../scripts/finetune_cache.py"


use rule train as finetune_train with:
    input:
        cache=FINETUNE_CACHE_FILES,
        split=FINETUNE_SPLIT,
        class_weights=rules.class_weights.output[0],
        init="results/{encoder}/model_best.pt",
    output:
        best=f"{FINETUNE_RUN}/model_best.pt",
        history=f"{FINETUNE_RUN}/history.csv",
    log:
        "results/logs/finetune/{encoder}/train.log",
    benchmark:
        "results/benchmarks/finetune/{encoder}/train.tsv"
    resources:
        **training_resources(config["training"]["runtime_minutes"], timed=False),
    params:
        settings=started_from_init(FINETUNE),
        last_checkpoint=lambda wildcards: expand(
            f"{FINETUNE_RUN}/model_last.pt", **wildcards
        )[0],


use rule evaluate as finetune_evaluate with:
    input:
        unpack(finetune_evaluation_inputs(f"{FINETUNE_RUN}/model_best.pt")),
    output:
        metrics=f"{FINETUNE_RUN}/metrics.json",
        per_image_confusion=f"{FINETUNE_RUN}/per_image_confusion.npz",
        predictions=directory(f"{FINETUNE_RUN}/predictions"),
    log:
        "results/logs/finetune/{encoder}/evaluate.log",
    benchmark:
        "results/benchmarks/finetune/{encoder}/evaluate.tsv"
    resources:
        **gpu_resources(30, timed=False),


use rule evaluate as finetune_evaluate_before with:
    """The trained model, before any fine-tuning, scored on the same scans."""
    input:
        unpack(finetune_evaluation_inputs("results/{encoder}/model_best.pt")),
    output:
        metrics=f"{FINETUNE_RUN}/before/metrics.json",
        per_image_confusion=f"{FINETUNE_RUN}/before/per_image_confusion.npz",
        predictions=directory(f"{FINETUNE_RUN}/before/predictions"),
    log:
        "results/logs/finetune/{encoder}/evaluate_before.log",
    benchmark:
        "results/benchmarks/finetune/{encoder}/evaluate_before.tsv"
    resources:
        **gpu_resources(30, timed=False),


rule finetune_compare:
    """mIoU and damage mIoU of the scored corrections before and after the fine-tuning, with paired
    bootstrap intervals over the scored artworks."""
    input:
        split=FINETUNE_SPLIT,
        before=rules.finetune_evaluate_before.output.per_image_confusion,
        after=rules.finetune_evaluate.output.per_image_confusion,
    output:
        json=f"{FINETUNE_RUN}/comparison.json",
        csv=f"{FINETUNE_RUN}/comparison.csv",
    log:
        "results/logs/finetune/{encoder}/compare.log",
    conda:
        "../../envs/pytorch.yaml"
    params:
        bootstrap=config["bootstrap"],
        corrections=FINETUNE["corrections"],
    script:
        "../scripts/finetune_compare.py"
