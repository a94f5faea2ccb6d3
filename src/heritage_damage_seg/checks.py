"""Checks of the validated config that the schema cannot express, run when the workflow is
parsed: a wrong path or size stops the run before any job starts, with the key to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heritage_damage_seg.data.sources import configured_source
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
