"""Where Python needs a set of values that the config schema also states (a format, a view, a
mode), the two must agree: a value the schema accepts but Python does not know would fail late,
deep in a job; one Python knows but the schema refuses could never be chosen."""

from dataclasses import MISSING, fields

import pytest
import yaml
from conftest import ROOT

from heritage_damage_seg.data.cache_writer import DEFAULT_WORKING_MAX_SIDE
from heritage_damage_seg.data.class_weights import METHODS
from heritage_damage_seg.data.decode import EXIF_SETTINGS
from heritage_damage_seg.data.sources import SOURCES
from heritage_damage_seg.data.split import LOO_COLUMNS
from heritage_damage_seg.evaluation.evaluate import EVALUATION_MODES
from heritage_damage_seg.inference.outlines import OutlineSettings
from heritage_damage_seg.inference.predict import OVERLAY_MAX_SIDE
from heritage_damage_seg.inference.products import ProductSettings
from heritage_damage_seg.model.losses import LOSSES
from heritage_damage_seg.model.scan_view import VIEWS
from heritage_damage_seg.model.sliding import BLENDS, SlidingSettings
from heritage_damage_seg.training.settings import TrainSettings

SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


def schema_enum(*keys: str) -> list:
    node = SCHEMA
    for key in keys:
        node = node["properties"][key]
    return node["items"]["enum"] if "items" in node else node["enum"]


@pytest.mark.parametrize(
    ("keys", "python"),
    [
        (("dataset", "format"), ["auto", *SOURCES]),
        (("prepare", "exif_orientation"), list(EXIF_SETTINGS)),
        (("prepare", "view"), list(VIEWS)),
        (("split", "leave_one_out"), list(LOO_COLUMNS)),
        (("class_weights", "method"), list(METHODS)),
        (("loss", "type"), list(LOSSES)),
        (("evaluation", "mode"), list(EVALUATION_MODES)),
        (("sliding", "blend"), list(BLENDS)),
    ],
    ids=lambda value: ".".join(value) if isinstance(value, tuple) else None,
)
def test_the_schema_and_python_name_the_same_choices(keys, python):
    assert sorted(schema_enum(*keys)) == sorted(python)


def schema_default(*keys: str):
    node = SCHEMA
    for key in keys:
        node = node["properties"][key]
    return node["default"]


# TrainSettings fields with a default, and the config key that sets each.
TRAINING_KEYS = {
    "weight_decay": "training.weight_decay",
    "pct_start": "training.pct_start",
    "loss": "loss.type",
    "dice_smooth": "loss.dice_smooth",
    "mixed_precision": "training.mixed_precision",
    "channels_last": "training.channels_last",
    "seed": "training.seed",
    "eval_batch_size": "evaluation.batch_size",
    "device": "training.device",
    "compile": "training.compile",
    "validate_every": "training.validate_every",
    "checkpoint_minutes": "training.checkpoint_minutes",
    "gpus": "training.gpus",
    "nodes": "training.nodes",
}
# Defaults no config key sets: augmentation ({} = flips only), the weights file the rule fetched,
# the tests' sample-order shards, the checkpoint a fine-tuning starts from (set by its rule).
NOT_IN_CONFIG = {"augmentation", "encoder_weights", "sample_shards", "init_checkpoint"}

# Each Python default that a config key also sets: the key whose schema default it must equal.
PYTHON_DEFAULTS = {
    **{key: getattr(TrainSettings, name) for name, key in TRAINING_KEYS.items()},
    "prepare.working_max_side": DEFAULT_WORKING_MAX_SIDE,
    "sliding.overlap": SlidingSettings.overlap,
    "sliding.blend": SlidingSettings.blend,
    "sliding.batch_size": SlidingSettings.batch_size,
    "sliding.tta_flip": SlidingSettings.tta_flip,
    "predict.overlay_max_side": OVERLAY_MAX_SIDE,
    "predict.low_confidence": ProductSettings.low_confidence,
    "predict.iiif_base_url": ProductSettings.iiif_base_url,
    "predict.outline_tolerance": OutlineSettings.tolerance,
    "predict.outline_min_area": OutlineSettings.min_area,
}


@pytest.mark.parametrize("key", sorted(PYTHON_DEFAULTS))
def test_python_defaults_equal_the_schema_defaults(key):
    assert PYTHON_DEFAULTS[key] == schema_default(*key.split("."))


def test_every_training_setting_with_a_default_is_held_to_the_schema():
    """A new TrainSettings default must be listed in TRAINING_KEYS (or be one no config key sets)."""
    defaulted = {
        f.name
        for f in fields(TrainSettings)
        if f.default is not MISSING or f.default_factory is not MISSING
    }
    assert defaulted - NOT_IN_CONFIG == set(TRAINING_KEYS)
