# Values derived from the validated config, shared by every stage.
import json
from dataclasses import asdict, replace
from pathlib import Path

from heritage_damage_seg.checks import CORRECTIONS_LAYOUT, check_config
from heritage_damage_seg.data.sources import SOURCES, configured_source
from heritage_damage_seg.data.split import loo_encoders
from heritage_damage_seg.seeds import seed_run, training_seeds
from heritage_damage_seg.model.weights import fetched_path
from heritage_damage_seg.data.split import FOLD_NAME_PATTERN, LOO_COLUMNS
from heritage_damage_seg.evaluation.correction_curve import ORDERS as CORRECTION_ORDERS
from heritage_damage_seg.training.settings import TrainSettings, rank_count

# Paths, weights files and sizes the schema cannot check: fail now, naming the key.
check_config(config)

ENCODER_NAMES = list(config["encoders"])
# The training cache (rule prepare_cache) as every consumer lists it.
CACHE_FILES = multiext("results/cache/", "images.npy", "masks.npy", "index.csv")
# Seed repeats (training.seeds): the first seed's run is results/{encoder}/, the others
# results/{encoder}/seed_<seed>/ (see heritage_damage_seg.seeds).
SEEDS = training_seeds(config["training"])
EXTRA_SEEDS = SEEDS[1:]
# Leave-one-out families run by `all` (workflow/rules/loo.smk); any family's targets can be asked for.
LOO_FAMILIES = config["split"]["leave_one_out"]
LOO_ENCODERS = loo_encoders(config["split"]["leave_one_out_encoders"], ENCODER_NAMES)


wildcard_constraints:
    encoder="|".join(ENCODER_NAMES),
    family="|".join(LOO_COLUMNS),
    fold=FOLD_NAME_PATTERN,
    seed="[0-9]+",
    order="|".join(CORRECTION_ORDERS),
    k="[0-9]+",


localrules:
    all,
    encoder_weights,
    split,
    class_weights,
    compare,
    plot_metrics,
    plot_samples,
    plot_training,
    plot_comparison,
    loo_folds,
    loo_split,
    loo_class_weights,
    loo_summary,
    finetune_split,
    finetune_compare,


# --- What the jobs need: one GPU per GPU job, threads and memory, a runtime (SLURM's -t) ---------
# These resources are what `snakemake --executor slurm` sends to sbatch (snakemake-executor-plugin-
# slurm: gpu → --gpus, threads → --cpus-per-gpu / --cpus-per-task, mem_mb → --mem, runtime → -t,
# slurm_extra appended); a local run ignores all but gpu_slot and mem_mb. Sites only add partitions
# and accounts (profiles/slurm), see docs/slurm.md.
#
# gpu_slot serialises GPU work: profiles/default caps it at GPU_SLOT_POOL. The timed jobs of the
# default split (train, evaluate: their imgs/s and ms/image are the benchmark) take the whole pool,
# so they never share a node or GPU with another GPU job of the run; every other GPU job (the
# leave-one-out folds, evaluate_other_mode, predict) takes GPU_SLOT_POOL // gpu_jobs (config), so
# gpu_jobs of them run at once, each on a GPU of its own under SLURM.
GPU_SLOT_POOL = 100


def gpu_slot(timed):
    return GPU_SLOT_POOL if timed else GPU_SLOT_POOL // config["gpu_jobs"]


def gpu_resources(runtime, timed):
    """Resources of a GPU rule: one GPU, the rule's threads per GPU, memory, a runtime, and SIGTERM
    training.signal_seconds before the time limit (to every process of the job step, so the
    training script itself saves its position; the retry resumes from it)."""
    return {
        "gpu": 1,
        "gpu_slot": gpu_slot(timed),
        "mem_mb": config["training"]["mem_mb"],
        "runtime": runtime,
        "slurm_extra": f"--signal=TERM@{config['training']['signal_seconds']}",
    }


def training_resources(runtime, timed):
    """A training job's resources: one GPU, or for training.gpus × training.nodes ranks (DDP)
    training.gpus GPUs on each of training.nodes nodes (sbatch --gres=gpu:G --nodes=N) and G
    tasks on each (--ntasks-per-node=G), which the job's own srun starts with one GPU each (--gpus-per-task=1; the plugin's
    `mpi` resource runs the job script unwrapped, so it can call srun itself).

    tasks_per_gpu is 0 on purpose: otherwise the plugin submits --ntasks-per-gpu (from `tasks`),
    which SLURM exports to the job as SLURM_NTASKS_PER_GPU, and the inner srun then refuses
    --gpus-per-task ("mutually exclusive with --ntasks-per-gpu and SLURM_NTASKS_PER_GPU").
    """
    resources = gpu_resources(runtime, timed)
    gpus, nodes = config["training"]["gpus"], config["training"]["nodes"]
    if rank_count(gpus, nodes) == 1:
        return resources
    per_node = {key: value for key, value in resources.items() if key != "gpu"}
    # G tasks on every node (--ntasks-per-node, as the inner srun lays them out); the plugin takes
    # tasks_per_node only above 1, so one GPU per node asks for N tasks over N nodes instead.
    tasks = {"tasks_per_node": gpus} if gpus > 1 else {"tasks": nodes}
    return (
        per_node
        | tasks
        | {
            "gres": f"gpu:{gpus}",
            "nodes": nodes,
            "tasks_per_gpu": 0,
            "mpi": "srun",
            # per node: each rank's share
            "mem_mb": config["training"]["mem_mb"] * gpus,
        }
    )


# The dataset's format (dataset.format, or what auto finds) and its registry entry.
DATASET_FORMAT, DATASET_SOURCE = configured_source(config["dataset"])


def dataset_inputs():
    """Where the images, masks and metadata come from: the configured dataset, as its format lists
    its files, or the synthetic set."""
    dataset = config["dataset"]
    if dataset["path"] is None:
        return {
            "images": "resources/synthetic/images",
            "masks": "resources/synthetic/annotations",
            "metadata": "resources/synthetic/metadata.csv",
        }
    return DATASET_SOURCE.inputs(Path(dataset["path"]), dataset)


def encoder_weights_inputs(wildcards):
    """The encoder's weights file when it has one (fetched ImageNet weights or a local file)."""
    weights = config["encoders"][wildcards.encoder].get("weights")
    if weights is None:
        return []
    return [fetched_path(wildcards.encoder) if weights == "imagenet" else weights]


def train_settings(encoder, seed=None):
    """One encoder's training settings (TrainSettings.from_config: lr scaling, seed, weights)."""
    settings = TrainSettings.from_config(config, encoder, seed, fetched_path(encoder))
    return asdict(settings)


# Figures (workflow/rules/plots.smk): each is also an item of the HTML report.
PLOTS = config["plots"]
N_FOCUS = (
    len(PLOTS["focus_classes"]) if PLOTS["focus_classes"] else PLOTS["n_focus_classes"]
)
FOCUS_RANKS = list(range(1, N_FOCUS + 1))


def encoder_report(path, caption, subcategory, figure):
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category="{encoder}",
        subcategory=subcategory,
        labels={"figure": figure},
    )


def comparison_report(path, caption, figure):
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category="Model comparison",
        labels={"figure": figure},
    )


def plot_targets():
    """Every figure and table of the report."""
    per_encoder = [
        "results/{encoder}/plots/confusion_matrix.png",
        "results/{encoder}/plots/per_class_iou.png",
        "results/{encoder}/plots/class_distribution.png",
        "results/{encoder}/metrics_table.html",
        "results/{encoder}/plots/prediction_grid.png",
        "results/{encoder}/plots/error_maps.png",
        "results/{encoder}/plots/training_curves.png",
    ] + [f"results/{{encoder}}/plots/class_focus_{rank}.png" for rank in FOCUS_RANKS]
    return expand(per_encoder, encoder=ENCODER_NAMES) + [
        "results/comparison/miou_ci.png",
        "results/comparison/iou_heatmap.png",
        "results/comparison/accuracy_vs_speed.png",
        "results/comparison/comparison_table.html",
    ]


def loo_fold_files(wildcards):
    """The family's folds file, and per fold its split and per encoder its metrics: {"folds":
    path, "splits": {fold: path}, "metrics": {encoder: {fold: path}}}. The folds are known once
    the checkpoint has read the index."""
    # A plain str: the checkpoint's output file object would carry its rule into the script's pickle.
    folds_file = str(checkpoints.loo_folds.get(family=wildcards.family).output[0])
    with open(folds_file) as handle:
        folds = [fold["fold"] for fold in json.load(handle)["folds"]]
    family = f"results/loo_{wildcards.family}"
    return {
        "folds": folds_file,
        "splits": {fold: f"{family}/{fold}/split.json" for fold in folds},
        "metrics": {
            encoder: {fold: f"{family}/{fold}/{encoder}/metrics.json" for fold in folds}
            for encoder in LOO_ENCODERS
        },
    }


def loo_summary_inputs(wildcards):
    """loo_fold_files as the rule's flat inputs (the script reads the files by name, through the
    same mapping in its params)."""
    files = loo_fold_files(wildcards)
    return {
        "folds": files["folds"],
        "splits": list(files["splits"].values()),
        "metrics": [
            path for by_fold in files["metrics"].values() for path in by_fold.values()
        ],
    }


def seed_files(name, encoders=None, seeds=None):
    """``results/{encoder}[/seed_<seed>]/<name>`` for every encoder (encoder-major) and seed."""
    return [
        f"{seed_run(encoder, seed, SEEDS)}/{name}"
        for encoder in (ENCODER_NAMES if encoders is None else encoders)
        for seed in (SEEDS if seeds is None else seeds)
    ]


def seed_files_by_encoder(name):
    """{encoder: [its seed_files(name), one per seed]}: the same files as seed_files(name), in the
    form a script reads them (by encoder, never by position in the flat input list)."""
    return {encoder: seed_files(name, [encoder]) for encoder in ENCODER_NAMES}


CURVE = config["correction_curve"]
# The correction curve (workflow/rules/corrections.smk): its folder and one fine-tuning's.
CURVE_DIR = "results/correction_curve/{encoder}"
CURVE_RUN = "results/correction_curve/{encoder}/{order}/k{k}"


def curve_fold(wildcards):
    """The held-out collection: correction_curve.fold, or the fold with the most artworks (ties:
    the first by name), read from the family's folds.json once it exists."""
    if CURVE["fold"]:
        return CURVE["fold"]
    folds_file = checkpoints.loo_folds.get(family=CURVE["family"]).output[0]
    folds = sorted(
        json.loads(Path(folds_file).read_text())["folds"], key=lambda f: f["fold"]
    )
    return max(folds, key=lambda f: f["n_test_groups"])["fold"]


def of_curve_fold(template):
    """An input function: ``template`` (a loo.smk path) for the curve's family and fold."""

    def path(wildcards):
        return template.format(
            family=CURVE["family"],
            fold=curve_fold(wildcards),
            encoder=wildcards.encoder,
        )

    return path


def started_from_init(block):
    """A params function: the encoder's training settings, started from the rule's ``init``
    checkpoint for ``block``'s epochs at its learning_rate_scale × the encoder's learning rate
    (``block``: the correction_curve or the finetune config section)."""

    def settings_of(wildcards, input):
        settings = TrainSettings.from_config(config, wildcards.encoder)
        return asdict(
            replace(
                settings,
                epochs=block["epochs"],
                learning_rate=settings.learning_rate * block["learning_rate_scale"],
                encoder_weights=None,
                init_checkpoint=str(input.init),
            )
        )

    return settings_of


def curve_runs(wildcards):
    """Every fine-tuning of the curve: its order, k and the files the curve reads."""
    return [
        {
            "order": order,
            "k": k,
            **{
                name: expand(
                    f"{CURVE_RUN}/{name}.{ext}", order=order, k=k, **wildcards
                )[0]
                for name, ext in (("split", "json"), ("per_image_confusion", "npz"))
            },
        }
        for order in CURVE["orders"]
        for k in CURVE["ks"]
    ]


# Fine-tuning on a corrections dataset (workflow/rules/finetune.smk).
FINETUNE = config["finetune"]
FINETUNE_RUN = "results/finetune/{encoder}"
# The corrections as the prepare_cache rule's code caches them, then joined with the replay rows.
CORRECTIONS_CACHE = "results/finetune/corrections_cache"
FINETUNE_CACHE_FILES = multiext(
    "results/finetune/cache/", "images.npy", "masks.npy", "index.csv"
)
FINETUNE_SPLIT = "results/finetune/split.json"
# The folder dataset import-corrections writes (docs/corrections.md, "The corrections dataset").
CORRECTIONS_DATASET = {"path": FINETUNE["corrections"], **CORRECTIONS_LAYOUT}


def corrections_inputs(wildcards=None):
    """The corrections folder's images, masks and metadata.csv, as the folder format lists them."""
    if FINETUNE["corrections"] is None:
        raise ValueError(
            "set finetune.corrections in your config to the folder import-corrections wrote"
        )
    return SOURCES["folder"].inputs(Path(FINETUNE["corrections"]), CORRECTIONS_DATASET)


def _flat(values):
    return [
        item
        for value in values
        for item in (value if isinstance(value, list) else [value])
    ]


def finetune_evaluation_inputs(checkpoint):
    """An input function: what the evaluate rule reads for ``checkpoint`` on the fine-tuning's
    cache and split; the native mode also reads both datasets' working copies."""

    def inputs(wildcards):
        files = {
            "checkpoint": checkpoint.format(encoder=wildcards.encoder),
            "cache": FINETUNE_CACHE_FILES,
            "split": FINETUNE_SPLIT,
        }
        if EVALUATION_MODE == "native":
            files |= {
                "working": ["results/cache/working", f"{CORRECTIONS_CACHE}/working"],
                "dataset": _flat(dataset_inputs().values()),
                "corrections": _flat(corrections_inputs().values()),
            }
        return files

    return inputs
