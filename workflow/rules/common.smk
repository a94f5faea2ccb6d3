# Values derived from the validated config, shared by every stage.
from pathlib import Path

from heritage_damage_seg.checks import check_config

# Paths, weights files and sizes the schema cannot check: fail now, naming the key.
check_config(config)

ENCODER_NAMES = list(config["encoders"])


wildcard_constraints:
    encoder="|".join(ENCODER_NAMES),


localrules:
    all,
    split,
    class_weights,
    compare,


def dataset_inputs():
    """Where the images, masks and metadata come from: the configured folder, or the synthetic set."""
    dataset = config["dataset"]
    if dataset["path"] is None:
        return {
            "images": "resources/synthetic/images",
            "masks": "resources/synthetic/annotations",
            "metadata": "resources/synthetic/metadata.csv",
        }
    root = Path(dataset["path"])
    inputs = {"images": str(root / dataset["images_dir"]), "masks": str(root / dataset["masks_dir"])}
    if dataset.get("metadata"):
        inputs["metadata"] = str(root / dataset["metadata"])
    return inputs


def train_settings(encoder):
    """Training settings for one encoder; lr = base lr × batch / base batch unless set explicitly."""
    training = config["training"]
    chosen = config["encoders"][encoder]
    learning_rate = chosen.get("learning_rate") or (
        training["base_learning_rate"] * chosen["batch_size"] / training["base_batch_size"]
    )
    return {
        "encoder": encoder,
        "epochs": training["epochs"],
        "batch_size": chosen["batch_size"],
        "learning_rate": learning_rate,
        "weight_decay": training["weight_decay"],
        "pct_start": training["pct_start"],
        "dice_smooth": config["loss"]["dice_smooth"],
        "mixed_precision": training["mixed_precision"],
        "channels_last": training["channels_last"],
        "augment": training["augment"],
        "seed": training["seed"],
        "encoder_weights": chosen.get("weights"),
        "eval_batch_size": config["evaluation"]["batch_size"],
        "device": training["device"],
    }
