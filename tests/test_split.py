import pytest

from heritage_damage_seg.dataset import source_group
from heritage_damage_seg.split import SplitError, grouped_split


def make_ids(n_artworks: int, views: int) -> list[str]:
    return [f"art{a:03d}" + (f"_aug{v}" if v else "") for a in range(n_artworks) for v in range(views)]


@pytest.mark.parametrize("seed", range(20))
def test_no_artwork_is_on_both_sides(seed):
    ids = make_ids(37, 3)
    split = grouped_split(ids, [source_group(i) for i in ids], val_fraction=0.2, seed=seed)
    train_groups = {source_group(i) for i in split["train"]}
    val_groups = {source_group(i) for i in split["val"]}
    assert not train_groups & val_groups
    assert sorted(split["train"] + split["val"]) == sorted(ids)
    assert len(val_groups) == round(0.2 * 37)


def test_split_is_seeded_and_independent_of_file_order():
    ids = make_ids(30, 2)
    groups = [source_group(i) for i in ids]
    a = grouped_split(ids, groups, val_fraction=0.2, seed=42)
    b = grouped_split(ids[::-1], groups[::-1], val_fraction=0.2, seed=42)
    c = grouped_split(ids, groups, val_fraction=0.2, seed=7)
    assert a == b
    assert a["val"] != c["val"]


def test_source_group_strips_augmented_copies_only():
    assert source_group("scan_12_aug3") == "scan_12"
    assert source_group("scan_aug") == "scan_aug"
    assert source_group("plain") == "plain"


def test_each_side_keeps_at_least_one_artwork():
    ids = make_ids(3, 2)
    groups = [source_group(i) for i in ids]
    assert grouped_split(ids, groups, val_fraction=0.01, seed=0)["val_groups"]
    assert grouped_split(ids, groups, val_fraction=0.99, seed=0)["train_groups"]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_fraction_is_refused(fraction):
    with pytest.raises(SplitError, match="val_fraction"):
        grouped_split(["a", "b"], ["a", "b"], val_fraction=fraction, seed=0)


def test_single_artwork_cannot_be_split():
    with pytest.raises(SplitError, match="at\\s+least two"):
        grouped_split(["a", "a_aug1"], ["a", "a"], val_fraction=0.2, seed=0)
