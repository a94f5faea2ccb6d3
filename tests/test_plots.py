"""Figures: sample choice, focus classes, and every plot target of a tiny run as a real PNG."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from heritage_damage_seg.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, PALETTE_HEX
from heritage_damage_seg.metrics import summarise
from heritage_damage_seg.report import drawing, plots, samples

ENCODERS = ("convnext_tiny", "segformer_b3", "maxvit_tiny")
DPI = 100  # config/config.yaml plots.dpi
PER_ENCODER = ("confusion_matrix", "per_class_iou", "class_distribution", "training_curves")
COMPARISON = {
    "miou_ci": "comparison_ci",
    "iou_heatmap": "iou_heatmap",
    "accuracy_vs_speed": "accuracy_vs_speed",
}


def pixel_size(kind: str, dpi: int, rows: int = 1, columns: int = 1) -> tuple[int, int]:
    """(width, height) in pixels of a saved figure of ``kind``."""
    width, height = drawing.figure_size(kind, rows, columns)
    return (int(round(width * dpi)), int(round(height * dpi)))


def assert_png(path, size):
    assert path.is_file() and path.stat().st_size > 0, path
    with Image.open(path) as image:
        assert image.format == "PNG", path
        image.verify()
    with Image.open(path) as image:
        assert image.size == size, (path, image.size, size)
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 0, f"{path} is a blank image"


def test_sample_choice_is_seeded_sorted_and_ignores_the_input_order():
    ids = [f"s{i:03d}" for i in range(50)]
    chosen = samples.choose_samples(ids, 8, seed=42)
    assert len(chosen) == 8 and chosen == sorted(chosen) and set(chosen) <= set(ids)
    assert samples.choose_samples(list(reversed(ids)), 8, seed=42) == chosen
    assert samples.choose_samples(ids, 8, seed=43) != chosen
    assert samples.choose_samples(ids[:5], 8, seed=42) == ids[:5]


def test_focus_classes_are_the_most_frequent_damage_classes_or_the_configured_ones():
    masks = np.full((3, 8, 8), IGNORE_INDEX, dtype=np.uint8)
    masks[0, :4] = 0  # Clean is never a focus class by default
    masks[0, 4, :5] = 9  # Cracks: 5 px
    masks[1, :2] = 2  # Peel: 16 px
    masks[2, 0, :2] = 12  # Sticker: 2 px
    assert samples.focus_classes(masks, None, n=3) == [2, 9, 12]
    # Fewer present classes than asked: filled with absent damage classes by id.
    assert samples.focus_classes(masks, None, n=5) == [2, 9, 12, 1, 3]
    assert samples.focus_classes(masks, ["cracks", 4, "Burn marks"]) == [9, 4, 14]
    with pytest.raises(ValueError, match="unknown class"):
        samples.focus_classes(masks, ["mould"])
    ids = ["a", "b", "c"]
    assert samples.class_samples(masks, ids, 9, n=4, seed=0) == ["a"]


def test_colourise_draws_background_apart_from_every_class():
    mask = (
        np.array([[0, 9], [IGNORE_INDEX, IGNORE_INDEX]], dtype=np.uint8).repeat(16, 0).repeat(16, 1)
    )
    rgb = drawing.colourise(mask)
    background = {tuple(c) for c in rgb[mask == IGNORE_INDEX]}
    assert background == {tuple(drawing.BACKGROUND_LIGHT), tuple(drawing.BACKGROUND_DARK)}
    palette = {tuple(int(h[i : i + 2], 16) for i in (1, 3, 5)) for h in PALETTE_HEX}
    assert not background & palette


def test_metric_figures_from_a_constructed_confusion_matrix(tmp_path):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 50, size=(NUM_CLASSES, NUM_CLASSES))
    cm[3] = 0  # a class absent from the ground truth
    cm[:, 3] = 0
    metrics = {"encoder": "test", **summarise(cm), "confusion_matrix": cm.tolist()}
    plots.plot_confusion_matrix(metrics, tmp_path / "cm.png", dpi=50)
    plots.plot_per_class_iou(metrics, tmp_path / "iou.png", dpi=50)
    plots.plot_class_distribution(metrics, tmp_path / "dist.png", dpi=50)
    assert_png(tmp_path / "cm.png", (600, 525))
    assert_png(tmp_path / "iou.png", (600, 350))
    assert_png(tmp_path / "dist.png", (600, 350))
    assert [p.name for p in tmp_path.iterdir()] != [] and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ENCODERS)
def test_every_per_encoder_plot_is_a_png_of_the_expected_size(tiny_run, encoder):
    out = tiny_run / "results" / encoder / "plots"
    n_val = json.loads((tiny_run / "results/split.json").read_text())[
        "n_test"
    ]  # samples come from test
    for kind in PER_ENCODER:
        assert_png(out / f"{kind}.png", pixel_size(kind, DPI))
    assert_png(out / "prediction_grid.png", pixel_size("prediction_grid", DPI, rows=min(20, n_val)))
    assert_png(out / "error_maps.png", pixel_size("error_maps", DPI, rows=min(6, n_val)))
    focus_sizes = {pixel_size("class_focus", DPI, rows=r) for r in range(1, min(4, n_val) + 1)}
    for rank in range(1, 7):
        path = out / f"class_focus_{rank}.png"
        assert_png(path, Image.open(path).size)
        assert Image.open(path).size in focus_sizes
    table = (tiny_run / "results" / encoder / "metrics_table.html").read_text()
    assert all(name in table for name in CLASS_NAMES) and "mIoU" in table


@pytest.mark.slow
def test_the_comparison_plots_and_the_bootstrap_in_model_comparison(tiny_run):
    for name, kind in COMPARISON.items():
        assert_png(
            tiny_run / "results/comparison" / f"{name}.png",
            pixel_size(kind, DPI, columns=len(ENCODERS)),
        )
    comparison = json.loads((tiny_run / "results/model_comparison.json").read_text())
    assert (
        comparison["bootstrap"]["n_resamples"] == 1000
        and comparison["bootstrap"]["confidence"] == 0.95
    )
    for model in comparison["models"]:
        assert model["mIoU_ci_low"] <= model["mIoU"] <= model["mIoU_ci_high"]
        assert model["damage_mIoU_ci_low"] <= model["damage_mIoU"] <= model["damage_mIoU_ci_high"]
    ranked = [m["encoder"] for m in comparison["models"]]
    pairs = [(p["a"], p["b"]) for p in comparison["pairwise"]]
    assert len(pairs) == 3 and all(ranked.index(a) < ranked.index(b) for a, b in pairs)
    for pair in comparison["pairwise"]:
        assert (
            pair["mIoU"]["low"] <= pair["mIoU"]["high"] and 0 <= pair["mIoU"]["a_wins_share"] <= 1
        )
    table = (tiny_run / "results/comparison/comparison_table.html").read_text()
    assert all(encoder in table for encoder in ENCODERS) and "pairwise" in table


@pytest.mark.slow
def test_every_encoder_shows_the_same_samples(tiny_run):
    chosen = {}
    for encoder in ENCODERS:
        log = (tiny_run / f"results/logs/plots/samples_{encoder}.log").read_text()
        chosen[encoder] = re.findall(
            r"(prediction grid|error maps|class_focus_\d\.png)[^:]*: (.*)", log
        )
        assert len(chosen[encoder]) == 8, log
    assert chosen["convnext_tiny"] == chosen["segformer_b3"] == chosen["maxvit_tiny"]
    test_ids = set(json.loads((tiny_run / "results/split.json").read_text())["test"])
    shown = {
        i.strip() for _, ids in chosen["convnext_tiny"] for i in ids.split(" on ")[-1].split(",")
    }
    assert shown and shown <= test_ids, "samples come from the test split"
