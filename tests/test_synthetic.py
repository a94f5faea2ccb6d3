"""Tests of the synthetic ARTeFACT-like dataset generator (real rendering and files, no mocks)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from heritage_damage_seg.classes import DAMAGE_CLASSES, IGNORE_INDEX
from heritage_damage_seg.data.synthetic import (
    CONTENTS,
    MATERIALS,
    METADATA_COLUMNS,
    SyntheticSample,
    apply_view,
    generate_dataset,
    random_view,
    render_sample,
)

ALLOWED = set(range(16)) | {IGNORE_INDEX}
SMALL = dict(min_side=48, max_side=96)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _mask(folder: Path, sid: str) -> np.ndarray:
    with Image.open(folder / "annotations" / f"{sid}.png") as im:
        assert im.mode == "L"
        return np.asarray(im)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("syn") / "synthetic"
    meta = generate_dataset(
        out, n_artworks=40, views_per_artwork=3, seed=3, background_fraction=0.4, **SMALL
    )
    return out, meta


def test_layout_and_metadata(dataset: tuple[Path, pd.DataFrame]) -> None:
    out, meta = dataset
    assert tuple(meta.columns) == METADATA_COLUMNS
    on_disk = pd.read_csv(out / "metadata.csv")
    pd.testing.assert_frame_equal(on_disk, meta)
    assert len(meta) == 120 and meta["id"].is_unique
    assert meta["id"].iloc[:3].tolist() == ["syn0000", "syn0000_aug1", "syn0000_aug2"]
    assert (meta["group"] == meta["id"].str.replace(r"_aug\d+$", "", regex=True)).all()
    assert set(meta["material"]) == set(MATERIALS) and set(meta["content"]) == set(CONTENTS)
    assert sorted(p.stem for p in (out / "images").glob("*.png")) == sorted(meta["id"])
    assert sorted(p.stem for p in (out / "annotations").glob("*.png")) == sorted(meta["id"])
    assert not out.with_name(out.name + ".tmp").exists()
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temp/partial files left
    for row in meta.iloc[::7].itertuples():
        with Image.open(out / "images" / f"{row.id}.png") as im:
            assert im.mode == "RGB" and im.size == (row.width, row.height)
        assert _mask(out, row.id).shape == (row.height, row.width)


def test_sizes_within_bounds_and_not_all_square(dataset: tuple[Path, pd.DataFrame]) -> None:
    _, meta = dataset
    for col in ("width", "height"):
        assert meta[col].between(SMALL["min_side"], SMALL["max_side"]).all()
    originals = meta[~meta["id"].str.contains("_aug")]
    aspect = originals["width"] / originals["height"]
    assert (aspect != 1).sum() >= len(originals) // 2
    assert aspect.between(0.5, 2.0).all()


def test_mask_values_and_every_class_present(dataset: tuple[Path, pd.DataFrame]) -> None:
    out, meta = dataset
    seen: set[int] = set()
    for sid in meta["id"]:
        values = set(np.unique(_mask(out, sid)).tolist())
        assert values <= ALLOWED, (sid, values - ALLOWED)
        seen |= values
    assert set(DAMAGE_CLASSES) | {0, IGNORE_INDEX} <= seen


def _dihedral(a: np.ndarray) -> list[np.ndarray]:
    rots = [np.rot90(a, k) for k in range(4)]
    return rots + [r[:, ::-1] for r in rots]


def _is_transformed_crop(src: np.ndarray, view: np.ndarray) -> bool:
    vh, vw = view.shape
    for cand in _dihedral(src):
        ch, cw = cand.shape
        if ch < vh or cw < vw:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(cand, (vh, vw))
        if (windows == view).all(axis=(2, 3)).any():
            return True
    return False


def test_views_are_exact_transforms_of_their_source(dataset: tuple[Path, pd.DataFrame]) -> None:
    out, meta = dataset
    augs = meta[meta["id"].str.contains("_aug")]
    assert len(augs) == 80
    n_full = 0
    for row in augs.itertuples():
        src, view = _mask(out, row.group), _mask(out, row.id)
        assert _is_transformed_crop(src, view), row.id
        src_hist, view_hist = (
            np.bincount(src.ravel(), minlength=256),
            np.bincount(view.ravel(), minlength=256),
        )
        if src.size == view.size:  # pure flip / rotation: identical label histogram
            n_full += 1
            assert (src_hist == view_hist).all()
        else:  # crop: kept at least 60% of each side, labels a subset of the source's
            assert set(np.flatnonzero(view_hist)) <= set(np.flatnonzero(src_hist))
            assert min(view.shape) >= 0.6 * min(src.shape) - 1
    assert 0 < n_full < len(augs)


def test_apply_view_moves_mask_exactly() -> None:
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 16, (50, 70)).astype(np.uint8)
    image = rng.integers(0, 256, (50, 70, 3)).astype(np.uint8)
    for _ in range(20):
        t = random_view(rng, 50, 70, min_side=32)
        img, msk = apply_view(image, mask, t)
        assert img.shape[:2] == msk.shape and msk.dtype == np.uint8
        assert min(msk.shape) >= 32 and _is_transformed_crop(mask, msk)
        assert (t.rot90, t.flip, t.crop[2:]) != (0, False, (50, 70))  # never the identity


def test_deterministic_and_independent_of_workers(tmp_path: Path) -> None:
    args = dict(
        n_artworks=5, views_per_artwork=2, min_side=40, max_side=80, background_fraction=0.5
    )
    generate_dataset(tmp_path / "a", seed=11, **args)
    generate_dataset(tmp_path / "b", seed=11, workers=2, **args)
    generate_dataset(tmp_path / "c", seed=12, **args)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    images = [k for k in a if k.startswith("images")]
    assert all(a[k] != c.get(k) for k in images)
    # regenerating into an existing export replaces it
    generate_dataset(tmp_path / "a", seed=12, **args)
    assert _digest(tmp_path / "a") == c


def test_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        generate_dataset(
            tmp_path / "x",
            n_artworks=1,
            views_per_artwork=1,
            seed=0,
            min_side=32,
            max_side=40,
            background_fraction=0.0,
        )
    assert (tmp_path / "x" / "precious.txt").read_text() == "keep me"


def _check_invariant(s: SyntheticSample) -> None:
    h, w = s.mask.shape
    assert s.image.shape == s.clean.shape == (h, w, 3)
    assert s.image.dtype == s.clean.dtype == s.mask.dtype == np.uint8
    assert set(np.unique(s.mask).tolist()) <= ALLOWED
    same = (s.image == s.clean).all(axis=-1)
    assert same[s.mask == 0].all(), "a Clean pixel was altered"
    assert same[s.mask == IGNORE_INDEX].all(), "damage drawn outside the artwork"
    for k in DAMAGE_CLASSES:
        sel = s.mask == k
        if sel.any():
            assert (~same[sel]).mean() >= 0.99, (
                f"class {k} labelled where nothing visible was drawn"
            )


def test_mask_matches_what_was_drawn() -> None:
    seen: set[int] = set()
    clean_share = []
    for i in range(40):
        rng = np.random.default_rng([99, i])
        h, w = int(rng.integers(32, 150)), int(rng.integers(32, 150))
        s = render_sample(
            rng, h, w, material=MATERIALS[i % 10], content=CONTENTS[i % 4], background=i % 3 == 0
        )
        assert (s.material, s.content) == (MATERIALS[i % 10], CONTENTS[i % 4])
        _check_invariant(s)
        art = s.mask != IGNORE_INDEX
        assert art.any()
        if i % 3 == 0:
            assert not art.all()
        clean_share.append((s.mask[art] == 0).mean())
        seen |= set(np.unique(s.mask).tolist())
    assert len(seen & set(DAMAGE_CLASSES)) >= 13
    assert 0.55 < float(np.mean(clean_share)) < 0.92


def test_background_false_has_no_ignore_pixels() -> None:
    s = render_sample(
        np.random.default_rng(5),
        64,
        96,
        material="Canvas",
        content="Artistic depiction",
        background=False,
    )
    assert IGNORE_INDEX not in s.mask
    assert (
        render_sample(
            np.random.default_rng(5),
            64,
            96,
            material="Canvas",
            content="Artistic depiction",
            background=False,
        ).image.tobytes()
        == s.image.tobytes()
    )


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(n_artworks=0), "n_artworks"),
        (dict(views_per_artwork=0), "views_per_artwork"),
        (dict(min_side=31, max_side=64), "min_side"),
        (dict(min_side=80, max_side=64), "min_side"),
        (dict(background_fraction=1.5), "background_fraction"),
        (dict(seed=-1), "seed"),
        (dict(workers=0), "workers"),
    ],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict[str, object], name: str) -> None:
    args: dict[str, object] = dict(
        n_artworks=1, views_per_artwork=1, seed=0, min_side=32, max_side=64, background_fraction=0.0
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        generate_dataset(tmp_path / "out", **args)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(height=31), "height"),
        (dict(width=8), "width"),
        (dict(material="Stone"), "material"),
        (dict(content="Map"), "content"),
    ],
)
def test_render_sample_bad_arguments(kwargs: dict[str, object], name: str) -> None:
    args: dict[str, object] = dict(
        height=64, width=64, material="Paper", content="Line art", background=False
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        render_sample(np.random.default_rng(0), **args)  # type: ignore[arg-type]
