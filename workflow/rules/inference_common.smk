# Values and input functions of the inference stages: evaluation modes, predict, export.
from pathlib import Path

EVALUATION_MODE = config["evaluation"]["mode"]
OTHER_MODE = "native" if EVALUATION_MODE == "cache" else "cache"


# What every evaluation job is told besides its mode (evaluate, evaluate_other_mode, loo_evaluate).
EVALUATION_PARAMS = {
    "batch_size": config["evaluation"]["batch_size"],
    "mixed_precision": config["training"]["mixed_precision"],
    "device": config["training"]["device"],
    "sliding": config["sliding"],
}


def evaluation_inputs(mode, run="results/{encoder}", split="results/split.json"):
    """The native mode reads the working copies that index.csv points to: the dataset's own files,
    or copies in results/cache/working/ (parquet rows, scans above prepare.working_max_side).

    ``run`` is the folder of the trained model, ``split`` the split it was trained on (both other
    for a leave-one-out fold, see loo.smk)."""
    inputs = {
        "checkpoint": f"{run}/model_best.pt",
        "cache": CACHE_FILES,
        "split": split,
    }
    if mode == "native":
        inputs |= {"working": "results/cache/working", **dataset_inputs()}
    return inputs


def metrics_of_mode(mode):
    if mode == EVALUATION_MODE:
        return "results/{encoder}/metrics.json"
    return f"results/{{encoder}}/evaluation_{mode}/metrics.json"


def predict_checkpoint_inputs(wildcards):
    """The configured encoder's checkpoint, or the comparison that names the best one."""
    predict = config["predict"]
    if not predict["input"]:
        raise ValueError(
            "set predict.input in your config to the folder of scans to predict"
        )
    if predict["encoder"] == "best":
        return {
            "scans": predict["input"],
            "comparison": "results/model_comparison.json",
        }
    # predict.encoder is one of encoders (checks.check_config, at parse time).
    return {
        "scans": predict["input"],
        "checkpoint": f"results/{predict['encoder']}/model_best.pt",
    }
