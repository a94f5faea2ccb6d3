"""Checks of the validated config that the schema cannot express, run when the workflow is
parsed: a wrong path or size stops the run before any job starts, with the key to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heritage_damage_seg.data.sources import SOURCES, configured_source
from heritage_damage_seg.model.encoders import ModelConfigError, check_image_size, encoder_spec
from heritage_damage_seg.training.settings import check_batch_shares, rank_count


class ConfigError(ValueError):
    """A config value that cannot work: the message names the key and what to set."""


def check_config(config: dict[str, Any]) -> None:
    dataset = config["dataset"]
    if dataset["path"] is not None:
        root = Path(dataset["path"])
        if not root.exists():
            raise ConfigError(
                f"dataset.path: {root} does not exist: set it to the folder holding "
                f"{dataset['images_dir']}/ and {dataset['masks_dir']}/, or the parquet shards "
                "(or null for the synthetic data)"
            )
        problem = configured_source(dataset)[1].problem(root, dataset)
        if problem:
            raise ConfigError(problem)
    predicted = config["predict"]["encoder"]
    if predicted != "best" and predicted not in config["encoders"]:
        raise ConfigError(
            f"predict.encoder: {predicted!r} is not among encoders ({', '.join(config['encoders'])}): "
            "name one of them, or best"
        )
    size = config["prepare"]["image_size"]
    ranks = rank_count(config["training"]["gpus"], config["training"]["nodes"])
    for name, chosen in config["encoders"].items():
        try:
            check_batch_shares(name, chosen["batch_size"], ranks)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        try:
            encoder_spec(name)
            check_image_size(name, size)
        except ModelConfigError as err:
            raise ConfigError(f"encoders.{name} / prepare.image_size: {err}") from err
        weights = chosen.get("weights")
        if weights not in (None, "imagenet") and not Path(weights).is_file():
            raise ConfigError(
                f"encoders.{name}.weights: file {weights} does not exist: give a local .pth/.safetensors "
                "state dict of that encoder, 'imagenet' (needs the model hub) or null (random init)"
            )
    check_finetune(config["finetune"], config["encoders"])


#: The folder dataset ``import-corrections`` writes, as the folder format reads it.
CORRECTIONS_LAYOUT = {"images_dir": "images", "masks_dir": "masks", "metadata": "metadata.csv"}


def check_finetune(finetune: dict[str, Any], encoders: dict[str, Any]) -> None:
    """finetune.corrections must be a corrections folder, finetune.encoder one of encoders."""
    if finetune["encoder"] is not None and finetune["encoder"] not in encoders:
        raise ConfigError(
            f"finetune.encoder: {finetune['encoder']!r} is not among encoders "
            f"({', '.join(encoders)}): name one of them, or null"
        )
    if finetune["corrections"] is None:
        return
    root = Path(finetune["corrections"])
    problem = SOURCES["folder"].problem(root, CORRECTIONS_LAYOUT)
    if not root.is_dir() or problem:
        raise ConfigError(
            f"finetune.corrections: {root} is not a corrections folder "
            f"({problem or 'no such folder'}): set it to the folder "
            "`heritage-damage-seg import-corrections -o` wrote, or null"
        )
