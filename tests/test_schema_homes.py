"""Where Python needs a set of values that the config schema also states (a format, a view, a
mode), the two must agree: a value the schema accepts but Python does not know would fail late,
deep in a job; one Python knows but the schema refuses could never be chosen."""

from pathlib import Path

import pytest
import yaml

from heritage_damage_seg.data.class_weights import METHODS
from heritage_damage_seg.data.decode import EXIF_SETTINGS
from heritage_damage_seg.data.sources import SOURCES
from heritage_damage_seg.data.split import LOO_COLUMNS
from heritage_damage_seg.evaluation.evaluate import EVALUATION_MODES
from heritage_damage_seg.model.losses import LOSSES
from heritage_damage_seg.model.scan_view import VIEWS
from heritage_damage_seg.model.sliding import BLENDS

SCHEMA = yaml.safe_load(
    (Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml").read_text()
)


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
