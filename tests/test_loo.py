"""Leave-one-group-out families: the fold splits (unit) and one family end to end (slow)."""

import json

import pandas as pd
import pytest
from conftest import snakemake

from heritage_damage_seg.data.cache_writer import source_group
from heritage_damage_seg.data.split import (
    SplitError,
    fold_name,
    fold_names,
    leave_one_out_split,
    loo_encoders,
)
from heritage_damage_seg.data.synthetic import MATERIALS
from heritage_damage_seg.evaluation.loo import (
    describe_folds,
    summarise,
    summary_table,
)


def make_index(n_artworks: int = 23, views: int = 3) -> pd.DataFrame:
    """Artworks with offline-augmented copies (``<id>_aug3``): every view keeps its artwork's material."""
    rows = []
    for a in range(n_artworks):
        for v in range(views):
            sample_id = f"art{a:03d}" + (f"_aug{v}" if v else "")
            rows.append(
                {
                    "id": sample_id,
                    "group": source_group(sample_id),
                    "material": MATERIALS[a % len(MATERIALS)],
                    "content": ("Line art", "Artistic depiction")[a % 2],
                }
            )
    return pd.DataFrame(rows)


def loo(index: pd.DataFrame, column: str, fold: str) -> dict:
    return leave_one_out_split(
        index["id"].tolist(),
        index["group"].tolist(),
        index[column].tolist(),
        column=column,
        fold=fold,
    )


@pytest.mark.parametrize("column", ["material", "content"])
def test_no_fold_trains_on_its_held_out_value_or_splits_an_artwork(column):
    index = make_index()
    value_of = dict(zip(index["id"], index[column]))
    folds = fold_names(index["id"], index["group"], index[column], column=column)
    assert sorted(folds.values()) == sorted(index[column].unique())
    for name, value in folds.items():
        split = loo(index, column, name)
        assert split["held_out"] == value and split["fold"] == name
        assert split["scored_split"] == "test" and split["selected_on"] == "val"
        # The held-out value is only scored: it is in no fold's training or inner validation.
        assert {value_of[i] for i in split["test"]} == {value}
        assert value not in {value_of[i] for i in split["train"]}
        assert value not in {value_of[i] for i in split["val"]}
        assert split["train"] and split["val"], (
            "an inner validation is carved from the training side"
        )
        assert sorted(split["train"] + split["val"] + split["test"]) == sorted(index["id"])
        groups = {side: {source_group(i) for i in split[side]} for side in ("train", "val", "test")}
        assert not groups["train"] & groups["val"] and not groups["train"] & groups["test"]
        assert not groups["val"] & groups["test"]
        for side in ("train", "val", "test"):
            assert sorted(groups[side]) == split[f"{side}_groups"]
        # An augmented copy sits with its original.
        for side in ("train", "val", "test"):
            for sample_id in split[side]:
                assert f"{source_group(sample_id)}_aug2" in split[side]


def test_folds_and_splits_are_deterministic_whatever_the_row_order():
    index = make_index()
    shuffled = index.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert describe_folds(index, "material") == describe_folds(shuffled, "material")
    assert loo(index, "material", "Lime_plaster") == loo(shuffled, "material", "Lime_plaster")


def test_fold_names_are_path_safe():
    assert fold_name("Lime plaster") == "Lime_plaster"
    assert fold_name("Film emulsion") == "Film_emulsion"
    assert fold_name("Artistic depiction") == "Artistic_depiction"
    assert fold_name("Glass") == "Glass"
    assert fold_name("../oil / tempera ") == "oil_tempera"
    with pytest.raises(SplitError, match="no letter or digit"):
        fold_name(" / ")


def test_an_unknown_fold_names_the_folds_that_exist():
    index = make_index(4, 2)
    with pytest.raises(
        SplitError, match="no material fold 'Gold'.*Glass, Paper, Parchment, Tesserae"
    ):
        loo(index, "material", "Gold")


def test_an_artwork_with_two_materials_is_refused():
    index = make_index(4, 2)
    index.loc[index["id"] == "art001_aug1", "material"] = "Glass"
    with pytest.raises(SplitError, match="art001: Glass, Parchment"):
        loo(index, "material", "Glass")


def test_images_without_a_value_are_refused():
    index = make_index(4, 2)
    index.loc[index["id"].str.startswith("art002"), "material"] = ""
    with pytest.raises(SplitError, match="2 image\\(s\\) have no material.*art002"):
        describe_folds(index, "material")


def test_a_single_value_leaves_nothing_to_train_on():
    index = make_index(4, 2).assign(material="Glass")
    with pytest.raises(SplitError, match="only 1 material \\('Glass'\\).*nothing to train on"):
        loo(index, "material", "Glass")


def test_two_values_with_one_fold_name_are_refused():
    index = make_index(4, 2)
    index.loc[index["group"] == "art000", "material"] = "Lime plaster"
    index.loc[index["group"] == "art001", "material"] = "Lime/plaster"
    with pytest.raises(SplitError, match="both give the fold name 'Lime_plaster'"):
        describe_folds(index, "material")


def test_describe_folds_counts_images_and_artworks():
    folds = describe_folds(make_index(12, 2), "material")
    assert folds["n_folds"] == 10
    paper = next(f for f in folds["folds"] if f["fold"] == "Paper")
    assert paper == {
        "fold": "Paper",
        "held_out": "Paper",
        "n_test": 4,
        "n_train": 20,
        "n_test_groups": 2,
        "n_train_groups": 10,
    }
    with pytest.raises(SplitError, match="unknown leave-one-out family 'group'"):
        describe_folds(make_index(4, 2), "group")


def test_summary_has_per_fold_figures_mean_std_and_worst_fold(tmp_path):
    index = make_index(3, 2)
    folds = describe_folds(index, "material")["folds"]
    split_files, metrics_files = {}, {"convnext_tiny": {}}
    for fold, miou in zip(folds, (0.3, 0.1, 0.2)):
        split = loo(index, "material", fold["fold"])
        split_files[fold["fold"]] = tmp_path / f"{fold['fold']}_split.json"
        split_files[fold["fold"]].write_text(json.dumps(split))
        path = tmp_path / f"{fold['fold']}_metrics.json"
        path.write_text(
            json.dumps({"n_images": split["n_test"], "mIoU": miou, "damage_mIoU": miou / 2})
        )
        metrics_files["convnext_tiny"][fold["fold"]] = path
    summary = summarise("material", folds, metrics_files, split_files)
    entry = summary["encoders"][0]
    assert [f["fold"] for f in entry["folds"]] == ["Glass", "Paper", "Parchment"]
    assert entry["mIoU_mean"] == pytest.approx(0.2) and entry["mIoU_std"] == pytest.approx(0.1)
    assert entry["damage_mIoU_mean"] == pytest.approx(0.1)
    # 2 artworks × 2 views left by each fold: one artwork trains, one is the inner validation.
    assert (
        entry["worst_fold"]["fold"] == "Paper"
        and entry["worst_fold"]["n_train"] == 2
        and entry["worst_fold"]["n_val"] == 2
    )
    table = summary_table(summary)
    assert table["statistic"].tolist() == ["fold", "fold", "fold", "mean", "std", "worst"]
    assert table["n_test"].tolist()[:3] == [2, 2, 2] and table["n_val"].tolist()[:3] == [2, 2, 2]
    # A stale metrics file (scored on other images) is not summarised silently.
    metrics_files["convnext_tiny"]["Glass"].write_text(
        json.dumps({"n_images": 5, "mIoU": 0.3, "damage_mIoU": 0.1})
    )
    with pytest.raises(SplitError, match="scored 5 images"):
        summarise("material", folds, metrics_files, split_files)


def test_loo_encoders_default_to_all_and_must_be_configured():
    assert loo_encoders(None, ["convnext_tiny", "maxvit_tiny"]) == ["convnext_tiny", "maxvit_tiny"]
    assert loo_encoders(["maxvit_tiny"], ["convnext_tiny", "maxvit_tiny"]) == ["maxvit_tiny"]
    with pytest.raises(SplitError, match="split.leave_one_out_encoders: segformer_b3 not among"):
        loo_encoders(["segformer_b3"], ["convnext_tiny"])


def dry_run_jobs(tmp_path, *targets: str, layer: str | None = None) -> str:
    configs = ()
    if layer is not None:
        (tmp_path / "layer.yaml").write_text(layer)
        configs = (tmp_path / "layer.yaml",)
    result = snakemake("-n", *targets, workdir=tmp_path, timeout=180, configs=configs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def test_default_all_has_no_loo_jobs_unless_configured(tmp_path):
    plain = dry_run_jobs(tmp_path, "all")
    assert (
        "results/loo_" not in plain and "rule loo_" not in plain and "checkpoint loo_" not in plain
    )
    jobs = dry_run_jobs(tmp_path, "all", layer="split: {leave_one_out: [material, content]}\n")
    assert (
        "results/loo_material/summary.json" in jobs and "results/loo_content/summary.json" in jobs
    )
    assert "checkpoint loo_folds" in jobs


def test_a_fold_target_uses_the_fold_rules_and_paths(tmp_path):
    jobs = dry_run_jobs(tmp_path, "results/loo_material/Lime_plaster/segformer_b3/metrics.json")
    for rule in ("loo_split", "loo_class_weights", "loo_train", "loo_evaluate"):
        assert f"rule {rule}:" in jobs
    assert (
        "rule train:" not in jobs and "rule split:" not in jobs and "results/split.json" not in jobs
    )
    assert "output: results/loo_material/Lime_plaster/segformer_b3/model_best.pt" in jobs
    assert "log: results/logs/loo_material/Lime_plaster/train/segformer_b3.log" in jobs


ONE_ENCODER = """
synthetic: {n_artworks: 3}
split: {leave_one_out_encoders: [convnext_tiny]}
"""


@pytest.mark.slow
def test_leave_one_material_out_end_to_end(tmp_path):
    """One family through real Snakemake (one encoder, 3 artworks = 3 materials, 1 epoch)."""
    layer = tmp_path / "one_encoder.yaml"
    layer.write_text(ONE_ENCODER)
    run = tmp_path / "run"
    result = snakemake(
        "results/loo_material/summary.json",
        "results/loo_content/folds.json",
        workdir=run,
        configs=(layer,),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    results = run / "results"
    index = pd.read_csv(results / "cache/index.csv", dtype=str, keep_default_na=False)
    materials = sorted(index["material"].unique())
    summary = json.loads((results / "loo_material/summary.json").read_text())
    assert sorted(f["held_out"] for f in summary["folds"]) == materials
    assert [e["encoder"] for e in summary["encoders"]] == ["convnext_tiny"]
    material_of = dict(zip(index["id"], index["material"]))
    group_of = dict(zip(index["id"], index["group"]))
    for fold in summary["folds"]:
        folder = results / "loo_material" / fold["fold"]
        split = json.loads((folder / "split.json").read_text())
        assert {material_of[i] for i in split["test"]} == {fold["held_out"]}
        assert fold["held_out"] not in {material_of[i] for i in split["train"] + split["val"]}
        assert split["val"], "the best epoch is chosen on an inner validation"
        sides = [{group_of[i] for i in split[side]} for side in ("train", "val", "test")]
        assert not sides[0] & sides[1] and not sides[0] & sides[2] and not sides[1] & sides[2]
        assert (folder / "class_weights.json").is_file()
        metrics = json.loads((folder / "convnext_tiny/metrics.json").read_text())
        assert (
            metrics["n_images"] == split["n_test"] == fold["n_test"]
            and metrics["scored_split"] == "test"
        )
        assert (folder / "convnext_tiny/model_last.pt").is_file()  # resume point inside the fold
        assert (
            results / f"logs/loo_material/{fold['fold']}/train/convnext_tiny.log"
        ).stat().st_size > 0
        assert (
            results / f"benchmarks/loo_material/{fold['fold']}/evaluate/convnext_tiny.tsv"
        ).is_file()
    assert not (results / "convnext_tiny").exists() and not (results / "split.json").exists()
    entry = summary["encoders"][0]
    assert entry["mIoU_mean"] == pytest.approx(
        sum(f["mIoU"] for f in entry["folds"]) / len(materials)
    )
    assert entry["worst_fold"]["mIoU"] == min(f["mIoU"] for f in entry["folds"])
    table = pd.read_csv(results / "loo_material/summary.csv")
    assert table["statistic"].tolist() == ["fold"] * len(materials) + ["mean", "std", "worst"]
    assert 'id="per-fold"' in (results / "loo_material/summary.html").read_text()
    content = json.loads((results / "loo_content/folds.json").read_text())
    assert sorted(f["fold"] for f in content["folds"]) == sorted(
        v.replace(" ", "_") for v in index["content"].unique()
    )

    again = snakemake(
        "-n", "results/loo_material/summary.json", workdir=run, configs=(layer,), timeout=180
    )
    assert "Nothing to be done" in again.stdout + again.stderr
    unknown = snakemake(
        "results/loo_material/Gold/split.json", workdir=run, configs=(layer,), timeout=180
    )
    assert unknown.returncode != 0
    assert "no material fold 'Gold'" in unknown.stdout + unknown.stderr
    assert ", ".join(fold_name(m) for m in materials) in unknown.stdout + unknown.stderr
