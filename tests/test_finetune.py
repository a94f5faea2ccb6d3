"""Fine-tuning on a corrections dataset: the corrections' artworks are drawn into train / choose /
scored, replay comes from the original training side only, the two caches join into one, and the
before/after comparison recomputes from the saved per-artwork confusion matrices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT, snakemake
from PIL import Image

from heritage_damage_seg.checks import ConfigError, check_finetune
from heritage_damage_seg.classes import IGNORE_INDEX
from heritage_damage_seg.data.cache import load_cache, read_index
from heritage_damage_seg.data.cache_writer import combine_caches
from heritage_damage_seg.data.sources import DatasetError
from heritage_damage_seg.data.split import SplitError
from heritage_damage_seg.data.synthetic import generate_dataset
from heritage_damage_seg.evaluation.bootstrap import bootstrap_models
from heritage_damage_seg.evaluation.compare import load_units
from heritage_damage_seg.evaluation.finetune import (
    AFTER,
    BEFORE,
    combined_ids,
    comparison_rows,
    finetune_split,
)
from heritage_damage_seg.metrics import HEADLINE_METRICS, headline_figures


def corrections_index(n_artworks: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        [(f"corr{g}_{v}", f"corr{g}") for g in range(n_artworks) for v in "ab"],
        columns=["id", "group"],
    )


def original() -> tuple[dict, pd.DataFrame]:
    index = pd.DataFrame(
        [(f"syn{g}_{v}", f"syn{g}") for g in range(6) for v in "ab"], columns=["id", "group"]
    )
    split = {
        "train_groups": ["syn0", "syn1", "syn2", "syn3"],
        "val_groups": ["syn4"],
        "test_groups": ["syn5"],
        "train": [f"syn{g}_{v}" for g in range(4) for v in "ab"],
        "val": ["syn4_a", "syn4_b"],
        "test": ["syn5_a", "syn5_b"],
    }
    return split, index


def draw(corrections: pd.DataFrame, **kwargs) -> dict:
    split, index = original()
    settings = {"scored_fraction": 0.34, "choose_fraction": 0.2, "replay": 2, "seed": 0}
    return finetune_split(corrections, split, index, **(settings | kwargs))


def test_the_corrections_are_drawn_into_disjoint_train_choose_and_scored_artworks():
    split = draw(corrections_index())
    parts = [split["corrected_groups"], split["choose_groups"], split["scored_groups"]]
    assert [len(p) for p in parts] == [3, 1, 2]
    assert sorted(sum(parts, [])) == sorted(corrections_index()["group"].unique())
    scored = set(split["test"])
    assert scored == {f"{g}_{v}" for g in split["scored_groups"] for v in "ab"}
    assert not scored & (set(split["train"]) | set(split["val"]))
    assert not set(split["val"]) & set(split["train"])
    assert split["selected_on"] == "val" and split["scored_split"] == "test"
    assert draw(corrections_index().iloc[::-1]) == split  # the order on disk does not matter
    assert draw(corrections_index(), seed=5)["scored_groups"] != split["scored_groups"]


def test_replay_comes_from_the_original_training_side_only():
    split = draw(corrections_index(), replay=2)
    train_before, _ = original()
    assert len(split["replay_groups"]) == 2
    assert set(split["replay_groups"]) <= set(train_before["train_groups"])
    assert set(split["replay"]) <= set(train_before["train"])
    assert set(split["replay"]) <= set(split["train"])
    assert not set(split["train"]) & {*train_before["val"], *train_before["test"]}
    everything = draw(corrections_index(), replay=99)
    assert everything["replay"] == sorted(train_before["train"])
    assert draw(corrections_index(), replay=0)["replay"] == []
    corrections, replay = combined_ids(split)
    assert replay == split["replay"] and len(corrections) == len(corrections_index())


def test_shared_ids_or_too_few_artworks_are_refused_naming_the_file():
    _, index = original()
    clash = pd.concat([corrections_index(), index.iloc[:1]], ignore_index=True)
    with pytest.raises(SplitError, match=r"corr/index.csv: ids \['syn0_a'\] are also in"):
        draw(clash, corrections_file="corr/index.csv")
    with pytest.raises(SplitError, match="needs at least three"):
        draw(corrections_index(2))


def write_cache(folder: Path, ids: list[str], size: int, value: int) -> None:
    folder.mkdir(parents=True)
    n = len(ids)
    np.save(folder / "images.npy", np.full((n, size, size, 3), value, np.uint8))
    np.save(folder / "masks.npy", np.full((n, size, size), value, np.uint8))
    pd.DataFrame({"id": ids, "group": ids, "material": "", "content": "", "type": "",
                  "height": size, "width": size, "image_path": "", "mask_path": ""}).to_csv(
        folder / "index.csv", index=False
    )  # fmt: skip


def test_the_combined_cache_holds_both_rows_and_refuses_another_size(tmp_path):
    write_cache(tmp_path / "corr", ["c0", "c1"], 64, 1)
    write_cache(tmp_path / "orig", ["o0", "o1", "o2"], 64, 2)
    index = combine_caches([(tmp_path / "corr", ["c0", "c1"]), (tmp_path / "orig", ["o2"])],
                           tmp_path / "both")  # fmt: skip
    cache = load_cache(tmp_path / "both")
    assert list(index["id"]) == list(cache.index["id"]) == ["c0", "c1", "o2"]
    assert cache.images[:, 0, 0, 0].tolist() == [1, 1, 2]
    assert cache.masks[:, 0, 0].tolist() == [1, 1, 2]
    write_cache(tmp_path / "small", ["s0"], 32, 1)
    with pytest.raises(DatasetError, match=r"small/index.csv was prepared at 32 px.*64 px"):
        combine_caches([(tmp_path / "orig", ["o0"]), (tmp_path / "small", ["s0"])], tmp_path / "x")
    with pytest.raises(DatasetError, match=r"\['c0'\] are in more than one"):
        combine_caches([(tmp_path / "corr", ["c0"]), (tmp_path / "corr", ["c0"])], tmp_path / "y")


def test_comparison_rows_read_fine_tuned_minus_before_on_the_same_resamples():
    rng = np.random.default_rng(0)
    names = [f"corr{i}" for i in range(5)]
    before, after = rng.integers(0, 50, (5, 16, 16)), rng.integers(0, 50, (5, 16, 16))
    after[:, np.arange(16), np.arange(16)] += 400
    result = bootstrap_models({AFTER: (names, after), BEFORE: (names, before)}, n_resamples=200)
    rows = {row["metric"]: row for row in comparison_rows(result, 5)}
    assert list(rows) == list(HEADLINE_METRICS)
    for metric, row in rows.items():
        expected_before = headline_figures(before.sum(0, keepdims=True))[metric][0]
        expected_after = headline_figures(after.sum(0, keepdims=True))[metric][0]
        assert row["before"] == pytest.approx(float(expected_before))
        assert row["after"] == pytest.approx(float(expected_after))
        assert row["gain"] == pytest.approx(row["after"] - row["before"])
    assert 0 < rows["mIoU"]["gain_low"] <= rows["mIoU"]["gain"] <= rows["mIoU"]["gain_high"]
    assert rows["mIoU"]["gain_share"] == 1.0


def write_corrections(folder: Path, n_artworks: int) -> pd.DataFrame:
    """A corrections dataset as import-corrections lays it out (images/, masks/ with 255 where
    nobody reviewed, metadata.csv with reviewer columns), from synthetic scans of their own seed
    and ids."""
    source = folder.with_name("corrections_source")
    meta = generate_dataset(source, n_artworks=n_artworks, views_per_artwork=1, seed=7,
                            min_side=64, max_side=96, background_fraction=0.5)  # fmt: skip
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rows = []
    for sample in meta.itertuples():
        new_id = f"corr_{sample.id}"
        image = Image.open(source / "images" / f"{sample.id}.png")
        image.save(folder / "images" / f"{new_id}.png")
        mask = np.array(Image.open(source / "annotations" / f"{sample.id}.png"))
        mask[: mask.shape[0] // 4] = IGNORE_INDEX  # the top quarter was not reviewed
        Image.fromarray(mask).save(folder / "masks" / f"{new_id}.png")
        rows.append({"id": new_id, "scan": f"{new_id}.png", "source_file": f"{new_id}.geojson",
                     "source_format": "geojson", "reviewer": "A. Restorer",
                     "date": "2026-12-03", "unreviewed": "ignore", "outlines": 3})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.to_csv(folder / "metadata.csv", index=False)
    return frame


FINETUNE_CONFIG = """
encoders: {{convnext_tiny: {{batch_size: 4, weights: null}}}}
finetune: {{corrections: {corrections}, scored_fraction: 0.34, choose_fraction: 0.2, replay: 2, epochs: 1}}
"""


@pytest.mark.slow
def test_the_fine_tuning_runs_through_snakemake_and_its_figures_recompute(tmp_path):
    corrections = tmp_path / "corrections"
    written = write_corrections(corrections, n_artworks=6)
    layer = tmp_path / "finetune.yaml"
    layer.write_text(FINETUNE_CONFIG.format(corrections=corrections))
    target = "results/finetune/convnext_tiny/comparison.json"
    result = snakemake(target, workdir=tmp_path, configs=(layer,))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    out = tmp_path / "results/finetune"
    split = json.loads((out / "split.json").read_text())
    original_split = json.loads((tmp_path / "results/split.json").read_text())
    scored = set(split["test"])
    assert scored and not scored & (set(split["train"]) | set(split["val"]))
    assert scored <= set(written["id"]) and set(split["val"]) <= set(written["id"])
    assert split["replay"] and set(split["replay"]) <= set(original_split["train"])
    # the corrections' 255 reached the cache: neither trained on nor scored
    cache = load_cache(out / "cache")
    assert list(cache.index["id"]) == [*sorted(written["id"]), *split["replay"]]
    assert (np.asarray(cache.masks[: len(written)]) == IGNORE_INDEX).any()
    assert set(read_index(out / "corrections_cache/index.csv")["id"]) == set(written["id"])
    run = out / "convnext_tiny"
    checkpoint = torch.load(run / "model_best.pt", map_location="cpu", weights_only=False)
    assert checkpoint["settings"]["init_checkpoint"] == "results/convnext_tiny/model_best.pt"
    comparison = json.loads((run / "comparison.json").read_text())
    assert comparison["scored_on"]["artworks"] == split["scored_groups"]
    rows = pd.read_csv(run / "comparison.csv").set_index("metric")
    figures = {}
    for name, folder in (("before", run / "before"), ("after", run)):
        _, units, stack = load_units(folder / "per_image_confusion.npz")
        assert sorted(units) == split["scored_groups"]
        figures[name] = headline_figures(np.asarray(stack).sum(0, keepdims=True))
    for metric in HEADLINE_METRICS:
        for name in ("before", "after"):
            value = figures[name][metric][0]
            if np.isfinite(value):
                assert rows.loc[metric, name] == pytest.approx(float(value))
            else:
                assert pd.isna(rows.loc[metric, name])
        if np.isfinite(rows.loc[metric, "gain"]):
            assert rows.loc[metric, "gain"] == pytest.approx(
                rows.loc[metric, "after"] - rows.loc[metric, "before"]
            )
    assert [row["metric"] for row in comparison["rows"]] == list(HEADLINE_METRICS)
    # the intervals too: the same paired bootstrap, run again on the saved files
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())["bootstrap"]
    per_artwork = {
        name: load_units(folder / "per_image_confusion.npz")[1:]
        for name, folder in ((AFTER, run), (BEFORE, run / "before"))
    }
    again = bootstrap_models(per_artwork, n_resamples=config["resamples"], seed=config["seed"],
                             confidence=config["confidence"], split="scored")  # fmt: skip
    assert comparison_rows(again, len(split["scored_groups"])) == comparison["rows"]


def test_the_config_must_name_a_corrections_folder_and_a_known_encoder(tmp_path):
    settings = {"corrections": None, "encoder": None}
    encoders = {"convnext_tiny": {}}
    check_finetune(settings, encoders)
    with pytest.raises(ConfigError, match=r"finetune.encoder: 'resnet' is not among encoders"):
        check_finetune(settings | {"encoder": "resnet"}, encoders)
    with pytest.raises(ConfigError, match=rf"finetune.corrections: {tmp_path / 'none'} is not"):
        check_finetune(settings | {"corrections": str(tmp_path / "none")}, encoders)
    (tmp_path / "images").mkdir()
    with pytest.raises(ConfigError, match="masks"):
        check_finetune(settings | {"corrections": str(tmp_path)}, encoders)
    (tmp_path / "masks").mkdir()
    (tmp_path / "metadata.csv").write_text("id\n")
    check_finetune(settings | {"corrections": str(tmp_path)}, encoders)
