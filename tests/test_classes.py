"""The class-name lookup code uses instead of bare class numbers."""

from __future__ import annotations

import pytest

from heritage_damage_seg.classes import CLASS_NAMES, CLEAN, NUM_CLASSES, class_id


def test_class_id_is_the_position_in_class_names() -> None:
    assert class_id("Clean") == CLEAN
    assert class_id("Cracks") == 9
    assert [class_id(name) for name in CLASS_NAMES] == list(range(NUM_CLASSES))


def test_class_id_refuses_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="'Crack'"):
        class_id("Crack")
