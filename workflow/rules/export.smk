rule export:
    """ONNX (+ TorchScript where the encoder traces) and a model card for one trained model."""
    input:
        checkpoint="results/{encoder}/model_best.pt",
        metrics="results/{encoder}/metrics.json",
    output:
        onnx="results/{encoder}/export/model.onnx",
        card="results/{encoder}/export/model_card.json",
    log:
        "results/logs/export/{encoder}.log",
    benchmark:
        "results/benchmarks/export/{encoder}.tsv"
    conda:
        "../../envs/pytorch.yaml"
    # A CPU job: the model is exported and checked on the CPU.
    threads: config["training"]["threads"]
    resources:
        mem_mb=config["training"]["mem_mb"],
        runtime=30,
    params:
        out_dir=lambda wildcards, output: str(Path(output.card).parent),
        torchscript=config["export"]["torchscript"],
    script:
        "../scripts/export.py"


rule export_all:
    """Every trained model exported."""
    input:
        expand("results/{encoder}/export/model_card.json", encoder=ENCODER_NAMES),
