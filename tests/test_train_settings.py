"""TrainSettings.from_config: the one place that turns the validated config into one encoder's
training settings (what the train rules pass to the job), read from the project's own configs."""

from __future__ import annotations

import copy
from dataclasses import asdict

import pytest
import yaml
from conftest import ROOT
from snakemake.utils import validate

from heritage_damage_seg.training.settings import TrainSettings, learning_rate


def load_config(*overlays: str) -> dict:
    """config/config.yaml with ``overlays`` merged over it, validated (defaults filled) by the
    workflow's own schema, as Snakemake does when it parses the Snakefile."""

    def merge(base: dict, extra: dict) -> dict:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value
        return base

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    for overlay in overlays:
        merge(config, yaml.safe_load((ROOT / overlay).read_text()))
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    return config


def test_learning_rate_scales_linearly_with_batch_unless_set():
    training = {"base_learning_rate": 1e-3, "base_batch_size": 96}
    assert learning_rate(training, {"batch_size": 48}) == pytest.approx(5e-4)
    assert learning_rate(training, {"batch_size": 192}) == pytest.approx(2e-3)
    assert learning_rate(training, {"batch_size": 48, "learning_rate": 3e-4}) == 3e-4


def test_the_real_benchmark_starts_from_the_fetched_imagenet_file():
    config = load_config()
    fetched = "resources/weights/segformer_b3.imagenet.pth"
    settings = TrainSettings.from_config(config, "segformer_b3", fetched_weights=fetched)
    chosen = config["encoders"]["segformer_b3"]
    assert settings.encoder_weights == fetched
    assert settings.batch_size == chosen["batch_size"]
    assert settings.learning_rate == pytest.approx(learning_rate(config["training"], chosen))
    assert settings.epochs == config["training"]["epochs"]
    assert settings.seed == config["training"]["seed"]
    assert settings.eval_batch_size == config["evaluation"]["batch_size"]


def test_the_demo_trains_from_random_init_with_its_own_learning_rate():
    config = load_config("config/demo.yaml")
    settings = TrainSettings.from_config(config, "segformer_b3", fetched_weights="unused.pth")
    assert settings.encoder_weights is None
    assert settings.learning_rate == config["encoders"]["segformer_b3"]["learning_rate"]
    convnext = TrainSettings.from_config(config, "convnext_tiny")
    assert convnext.learning_rate == pytest.approx(
        config["training"]["base_learning_rate"]
        * config["encoders"]["convnext_tiny"]["batch_size"]
        / config["training"]["base_batch_size"]
    )


def test_seed_repeats_default_to_the_first_seed():
    config = load_config("config/demo.yaml", "config/demo_seeds.yaml")
    assert TrainSettings.from_config(config, "convnext_tiny").seed == 42
    assert TrainSettings.from_config(config, "convnext_tiny", seed="43").seed == 43


def test_a_local_weights_file_is_used_as_given():
    config = copy.deepcopy(load_config("config/demo.yaml"))
    config["encoders"]["convnext_tiny"]["weights"] = "/data/convnext.pth"
    settings = TrainSettings.from_config(config, "convnext_tiny", fetched_weights="x.pth")
    assert settings.encoder_weights == "/data/convnext.pth"


def test_a_record_round_trips_and_unknown_keys_are_refused():
    settings = TrainSettings.from_config(load_config("config/demo.yaml"), "maxvit_tiny")
    assert TrainSettings.from_record(asdict(settings)) == settings
    with pytest.raises(ValueError, match="unknown training settings.*'extra'"):
        TrainSettings.from_record(asdict(settings) | {"extra": {}})
