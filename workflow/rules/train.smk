rule encoder_weights:
    """The encoder's ImageNet weights, downloaded once through smp/timm's own loaders on the host
    running Snakemake (a local rule); training jobs read only this file. Offline: fails at once,
    naming the file to put in place and the weights: <path> alternative."""
    output:
        "resources/weights/{encoder}.imagenet.pth",
    log:
        "results/logs/encoder_weights/{encoder}.log",
    conda:
        "../../envs/pytorch.yaml"
    params:
        image_size=config["prepare"]["image_size"],
    script:
        "../scripts/encoder_weights.py"


rule train:
    """One encoder trained on the training split; best checkpoint by validation mIoU."""
    input:
        cache=CACHE_FILES,
        split=rules.split.output[0],
        class_weights=rules.class_weights.output[0],
        encoder_weights=encoder_weights_inputs,
    output:
        best="results/{encoder}/model_best.pt",
        history="results/{encoder}/history.csv",
    log:
        "results/logs/train/{encoder}.log",
    benchmark:
        "results/benchmarks/train/{encoder}.tsv"
    # A killed or timed-out attempt (SIGTERM/SIGUSR1 save the position first) is rerun and resumes
    # from model_last.pt; the log is appended to, with a "resumed at epoch N" line.
    # Retried by the Snakemake that submits the job, not by the one inside a SLURM job: there a retry
    # would run on in the allocation that is about to time out.
    retries: config["training"]["retries"] if workflow.is_main_process else 0
    conda:
        "../../envs/pytorch.yaml"
    threads: config["training"]["threads"]
    # One GPU (or training.gpus × training.nodes for DDP), alone among the run's GPU jobs (timed),
    # SIGTERM before the limit (common.smk: training_resources).
    resources:
        **training_resources(config["training"]["runtime_minutes"], timed=True),
    params:
        settings=lambda wildcards: train_settings(wildcards.encoder),
        # Not an output: Snakemake deletes the outputs of a failed job, and this file is what a
        # rerun resumes from.
        last_checkpoint=lambda wildcards: f"results/{wildcards.encoder}/model_last.pt",
    script:
        "../scripts/train.py"


use rule train as train_seed with:
    """The same encoder trained with a further seed of training.seeds, beside the first seed's run."""
    output:
        best="results/{encoder}/seed_{seed}/model_best.pt",
        history="results/{encoder}/seed_{seed}/history.csv",
    log:
        "results/logs/train/{encoder}/seed_{seed}.log",
    benchmark:
        "results/benchmarks/train/{encoder}/seed_{seed}.tsv"
    params:
        settings=lambda wildcards: train_settings(wildcards.encoder, wildcards.seed),
        last_checkpoint=lambda wildcards: f"results/{wildcards.encoder}/seed_{wildcards.seed}/model_last.pt",
