# Damage segmentation on heritage scans: data → cache → split → class weights → train →
# evaluate → compare. See README.md; the stages live in workflow/rules/, the logic in the
# heritage_damage_seg package.
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


# Anchored to this file, so `--directory elsewhere` still starts from the project defaults.
configfile: Path(workflow.basedir) / "config" / "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/inference_common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/loo.smk"
include: "workflow/rules/corrections.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/plots.smk"


rule all:
    default_target: True
    input:
        expand("results/{encoder}/metrics.json", encoder=ENCODER_NAMES),
        "results/model_comparison.json",
        plot_targets(),
        expand(
            "results/{encoder}/evaluation_modes.html",
            encoder=ENCODER_NAMES if config["evaluation"]["compare_modes"] else [],
        ),
        expand("results/loo_{family}/summary.json", family=LOO_FAMILIES),
        expand(
            "results/finetune/{encoder}/comparison.json",
            encoder=(
                [FINETUNE["encoder"]]
                if FINETUNE["corrections"] and FINETUNE["encoder"]
                else []
            ),
        ),
