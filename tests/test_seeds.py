"""Seed repeats: the seeds block of metrics.json, the bootstrap over artworks × seeds, and two
seeds through real Snakemake (slow)."""

import json

import numpy as np
import pytest
from conftest import snakemake

from heritage_damage_seg.classes import NUM_CLASSES
from heritage_damage_seg.evaluation.bootstrap import bootstrap_models
from heritage_damage_seg.evaluation.compare import compare
from heritage_damage_seg.metrics import summarise
from heritage_damage_seg.seeds import seed_run, seed_summary, training_seeds


def image_cm(correct: int, wrong: int, damage_class: int = 9, pixels: int = 100) -> np.ndarray:
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    cm[0, 0] = pixels
    cm[damage_class, damage_class] = correct
    cm[damage_class, 0] = wrong
    return cm


def artworks_cms(rng, low: int, high: int, n: int) -> np.ndarray:
    return np.stack([image_cm(c, 100 - c) for c in rng.integers(low, high, n)])


def test_training_seeds_and_where_each_run_lives():
    assert training_seeds({"seed": 42, "seeds": None}) == [42]
    assert training_seeds({"seed": 42, "seeds": [7, 8]}) == [7, 8]
    with pytest.raises(ValueError, match="twice"):
        training_seeds({"seed": 42, "seeds": [7, 7]})
    assert seed_run("maxvit_tiny", 7, [7, 8]) == "results/maxvit_tiny"
    assert seed_run("maxvit_tiny", 8, [7, 8]) == "results/maxvit_tiny/seed_8"


def test_seed_summary_has_mean_std_and_every_seed():
    block = seed_summary(
        {7: {"mIoU": 0.3, "damage_mIoU": 0.1}, 8: {"mIoU": 0.5, "damage_mIoU": 0.2}}
    )
    assert block["seeds"] == [7, 8] and block["figures_of_seed"] == 7
    assert block["mIoU"]["mean"] == pytest.approx(0.4)
    assert block["mIoU"]["std"] == pytest.approx(np.std([0.3, 0.5], ddof=1))
    assert block["mIoU"]["per_seed"] == {"7": 0.3, "8": 0.5}
    assert seed_summary({7: {"mIoU": 0.3, "damage_mIoU": 0.1}})["mIoU"]["std"] is None


def test_identical_seeds_change_nothing_and_a_seed_dependent_winner_loses_certainty():
    rng = np.random.default_rng(4)
    n = 15
    units = [f"art{i:02d}" for i in range(n)]
    good, poor, middle = (
        artworks_cms(rng, 80, 95, n),
        artworks_cms(rng, 10, 25, n),
        artworks_cms(rng, 45, 60, n),
    )
    one = bootstrap_models({"a": (units, good), "b": (units, middle)}, n_resamples=300, seed=2)
    twice = bootstrap_models(
        {"a": (units, np.stack([good, good])), "b": (units, np.stack([middle, middle]))},
        n_resamples=300,
        seed=2,
    )
    assert twice["n_seeds"] == 2 and "training seeds" in twice["method"]
    assert twice["models"] == one["models"] and twice["pairwise"] == one["pairwise"]
    # a is far better with its first seed and far worse with its second: on the first seed alone it
    # wins every resample; over artworks × seeds it does not.
    assert one["pairwise"][0]["mIoU"]["a_wins_share"] == 1.0
    mixed = bootstrap_models(
        {"a": (units, np.stack([good, poor])), "b": (units, np.stack([middle, middle]))},
        n_resamples=300,
        seed=2,
    )
    share = mixed["pairwise"][0]["mIoU"]["a_wins_share"]
    assert 0.05 < share < 0.95
    pair = mixed["pairwise"][0]["mIoU"]
    assert pair["low"] < 0 < pair["high"]
    expected = np.mean([summarise(good.sum(axis=0))["mIoU"], summarise(poor.sum(axis=0))["mIoU"]])
    assert mixed["models"]["a"]["mIoU"]["estimate"] == pytest.approx(expected)


def test_compare_takes_one_file_per_seed_and_ranks_on_the_mean(tmp_path):
    rng = np.random.default_rng(5)
    n = 10
    artworks = [f"art{i}" for i in range(n)]
    ids = [f"{a}{s}" for a in artworks for s in ("", "_aug1")]
    groups = [a for a in artworks for _ in range(2)]
    metrics, histories, files = {}, {}, {}
    for name, ranges in (("a", ((70, 90), (20, 40))), ("b", ((50, 60), (50, 60)))):
        per_seed = {}
        files[name] = []
        for seed, (low, high) in zip((1, 2), ranges):
            cms = np.repeat(artworks_cms(rng, low, high, n), 2, axis=0)
            path = tmp_path / f"{name}_{seed}.npz"
            np.savez_compressed(
                path, ids=np.array(ids), scans=np.array(ids), groups=np.array(groups), confusion=cms
            )
            files[name].append(str(path))
            per_seed[seed] = summarise(cms.sum(axis=0))
        first = per_seed[1]
        metrics[name] = tmp_path / f"{name}.json"
        metrics[name].write_text(
            json.dumps(
                {
                    "smp_encoder": name,
                    "family": "x",
                    "mIoU": first["mIoU"],
                    "damage_mIoU": first["damage_mIoU"],
                    "pixel_accuracy": first["pixel_accuracy"],
                    "trivial_baseline": {"mIoU": 0.1},
                    "per_class": {},
                    "parameters": 1,
                    "checkpoint_epoch": 1,
                    "inference_ms_per_image": 1.0,
                    "device": "cpu",
                    "scored_split": "test",
                    "seed": 1,
                    "seeds": seed_summary(per_seed),
                }
            )
        )
        # Validation (what predict's best encoder is chosen on): a 0.3 then 0.7 (mean 0.5 at the
        # best epochs), b 0.55 with both seeds.
        histories[name] = []
        for seed, best in zip((1, 2), (0.3, 0.7) if name == "a" else (0.55, 0.55)):
            path = tmp_path / f"{name}_{seed}.csv"
            path.write_text(
                f"epoch,train_imgs_per_s,epoch_seconds,val_mIoU\n1,10,1,{best - 0.1}\n2,10,1,{best}\n"
            )
            histories[name].append(str(path))
    result = compare(metrics, histories, files, n_resamples=200, seed=1)
    assert result["bootstrap"]["n_seeds"] == 2 and result["bootstrap"]["unit"] == "artwork"
    val = {m["encoder"]: m["val_mIoU"] for m in result["models"]}
    assert (
        val["a"] == pytest.approx(0.5)
        and val["b"] == pytest.approx(0.55)
        and result["best_encoder"] == "b"
    )
    for model in result["models"]:
        block = json.loads(metrics[model["encoder"]].read_text())["seeds"]
        assert model["mIoU"] == pytest.approx(block["mIoU"]["mean"]) and model["seeds"] == [1, 2]
        assert model["mIoU_seed_std"] == pytest.approx(block["mIoU"]["std"])
        assert model["mIoU_ci_low"] <= model["mIoU"] <= model["mIoU_ci_high"]


TWO_SEEDS = "training: {seeds: [3, 4]}\n"


@pytest.mark.slow
def test_two_seeds_give_two_runs_and_one_metrics_json_with_both(tmp_path):
    layer = tmp_path / "seeds.yaml"
    layer.write_text(TWO_SEEDS)
    run = tmp_path / "run"
    result = snakemake(
        "results/convnext_tiny/metrics.json", workdir=run, configs=(layer,), timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    out = run / "results/convnext_tiny"
    import torch

    first = torch.load(out / "model_best.pt", weights_only=False)
    second = torch.load(out / "seed_4/model_best.pt", weights_only=False)
    assert first["settings"]["seed"] == 3 and second["settings"]["seed"] == 4
    metrics = json.loads((out / "metrics.json").read_text())
    other = json.loads((out / "seed_4/metrics.json").read_text())
    assert metrics["seed"] == 3 and other["seed"] == 4
    block = metrics["seeds"]
    assert block["seeds"] == [3, 4] and block["n_seeds"] == 2
    assert block["mIoU"]["per_seed"] == {"3": metrics["mIoU"], "4": other["mIoU"]}
    assert block["mIoU"]["mean"] == pytest.approx((metrics["mIoU"] + other["mIoU"]) / 2)
    assert (out / "seed_4/per_image_confusion.npz").is_file() and (
        out / "seed_4/history.csv"
    ).is_file()
