rule synthetic_dataset:
    """The embedded synthetic damage dataset, used when no real dataset is configured."""
    output:
        images=directory("resources/synthetic/images"),
        masks=directory("resources/synthetic/annotations"),
        metadata="resources/synthetic/metadata.csv",
    log:
        "results/logs/synthetic_dataset.log",
    benchmark:
        "results/benchmarks/synthetic_dataset.tsv"
    conda:
        "../../envs/pytorch.yaml"
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        settings=config["synthetic"],
    script:
        "../scripts/synthetic_dataset.py"


rule prepare_cache:
    """Every image and mask checked and resized (prepare.view resize) or cropped (crops) once to the
    training resolution, as uint8 arrays."""
    input:
        **dataset_inputs(),
    output:
        images="results/cache/images.npy",
        masks="results/cache/masks.npy",
        index="results/cache/index.csv",
        working=directory("results/cache/working"),
    log:
        "results/logs/prepare_cache.log",
    benchmark:
        "results/benchmarks/prepare_cache.tsv"
    conda:
        "../../envs/pytorch.yaml"
    threads: workflow.cores
    # Decoding large scans in parallel wants more memory than Snakemake's default.
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        image_size=config["prepare"]["image_size"],
        working_max_side=config["prepare"]["working_max_side"],
        exif_orientation=config["prepare"]["exif_orientation"],
        view=config["prepare"]["view"],
        crops={
            key: config["prepare"][key]
            for key in ("crop_scale", "crops_per_image", "seed")
        },
        format=DATASET_FORMAT,
    script:
        "../scripts/prepare_cache.py"
