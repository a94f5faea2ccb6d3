import pytest

from heritage_damage_seg.data.cache_writer import source_group
from heritage_damage_seg.data.split import SplitError, grouped_split


def make_ids(n_artworks: int, views: int) -> list[str]:
    return [
        f"art{a:03d}" + (f"_aug{v}" if v else "") for a in range(n_artworks) for v in range(views)
    ]


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


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize(
    ("n_artworks", "val_fraction", "test_fraction"),
    [(8, 0.1, 0.2), (37, 0.1, 0.2), (50, 0.15, 0.3)],
)
def test_three_way_split_keeps_artworks_whole_and_near_the_target_shares(
    seed, n_artworks, val_fraction, test_fraction
):
    ids = make_ids(n_artworks, 3)
    groups = [source_group(i) for i in ids]
    split = grouped_split(
        ids, groups, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    sides = {side: set(split[side]) for side in ("train", "val", "test")}
    assert all(sides.values()), "every side has images"
    assert (
        not sides["train"] & sides["val"]
        and not sides["train"] & sides["test"]
        and not sides["val"] & sides["test"]
    )
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted(ids)
    side_groups = {side: {source_group(i) for i in members} for side, members in sides.items()}
    assert not side_groups["train"] & side_groups["val"]
    assert not side_groups["train"] & side_groups["test"]
    assert not side_groups["val"] & side_groups["test"]
    for side in ("val", "test", "train"):
        assert sorted(side_groups[side]) == split[f"{side}_groups"]
    target_test = test_fraction * n_artworks
    target_val = val_fraction * n_artworks
    assert abs(len(side_groups["test"]) - target_test) <= 1
    assert abs(len(side_groups["val"]) - target_val) <= 1
    assert abs(len(side_groups["train"]) - (n_artworks - target_test - target_val)) <= 1
    assert split["scored_split"] == "test" and split["selected_on"] == "val"


def test_test_fraction_zero_is_the_seeds_two_way_split():
    ids = make_ids(20, 2)
    groups = [source_group(i) for i in ids]
    two_way = grouped_split(ids, groups, val_fraction=0.2, seed=3)
    assert two_way["test"] == [] and two_way["scored_split"] == "val"
    assert sorted(two_way["train"] + two_way["val"]) == sorted(ids)
    assert grouped_split(ids, groups, val_fraction=0.2, test_fraction=0.0, seed=3) == two_way


def test_a_three_way_split_needs_three_artworks_and_room_to_train():
    with pytest.raises(SplitError, match="at least three"):
        grouped_split(["a", "b"], ["a", "b"], val_fraction=0.3, test_fraction=0.3, seed=0)
    with pytest.raises(SplitError, match="below 1"):
        grouped_split(["a", "b", "c"], ["a", "b", "c"], val_fraction=0.5, test_fraction=0.5, seed=0)
    ids = make_ids(3, 2)
    split = grouped_split(
        ids, [source_group(i) for i in ids], val_fraction=0.45, test_fraction=0.45, seed=0
    )
    assert len(split["train_groups"]) == len(split["val_groups"]) == len(split["test_groups"]) == 1
