"""The inference rules end to end on the tiny config: native evaluation, mode comparison, predict, export."""

import csv
import json
import subprocess

import numpy as np
import pytest
from conftest import ROOT, snakemake_command
from PIL import Image


@pytest.mark.slow
def test_native_evaluation_predict_and_export_rules(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (150, 97, 3), dtype=np.uint8)).save(
        scans / "new.png"
    )
    (scans / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    layer = tmp_path / "layer.yaml"
    layer.write_text(
        "evaluation: {mode: native}\n"
        # keep_going: the broken scan is recorded and the rule succeeds with the rest (without it
        # the rule fails: tests/test_gpu_path.py)
        f"predict: {{input: {scans}, encoder: convnext_tiny, keep_going: true}}\n"
        "encoders: {convnext_tiny: {batch_size: 4}}\n"
    )
    targets = [
        "results/convnext_tiny/evaluation_modes.csv",
        "results/convnext_tiny/export/model_card.json",
        "results/predict/damage_areas.csv",
    ]
    command = snakemake_command(*targets, workdir=tmp_path / "run", configs=(layer,))
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    run = tmp_path / "run/results"
    metrics = json.loads((run / "convnext_tiny/metrics.json").read_text())
    other = json.loads((run / "convnext_tiny/evaluation_cache/metrics.json").read_text())
    assert metrics["evaluation_mode"] == "native" and other["evaluation_mode"] == "cache"
    with open(run / "convnext_tiny/evaluation_modes.csv", newline="") as handle:
        rows = {r["class"]: r for r in csv.DictReader(handle)}
    assert rows["Hair"]["thin"] == "True" and "difference_pp" in rows["mIoU"]
    table = (run / "convnext_tiny/evaluation_modes.html").read_text()
    assert 'id="evaluation_modes"' in table and "Hair" in table and "IoU native" in table
    card = json.loads((run / "convnext_tiny/export/model_card.json").read_text())
    assert (
        card["metrics"]["evaluation_mode"] == "native"
        and (run / "convnext_tiny/export/model.onnx").is_file()
    )
    with open(run / "predict/damage_areas.csv", newline="") as handle:
        areas = {r["image"]: r for r in csv.DictReader(handle)}
    assert areas["new.png"]["status"] == "ok" and areas["broken.jpg"]["status"].startswith("error")
    assert np.asarray(Image.open(run / "predict/masks/new.png")).shape == (150, 97)
    # The model card and predict say how the model sees a scan: as trained (resize view).
    assert card["scan_view"]["view"] == "resize" and card["scan_view"]["image_size"] == 64
    assert (
        json.loads((run / "predict/prediction.json").read_text())["settings"]["scan_view"]
        == card["scan_view"]
    )
    assert "broken.jpg FAILED" in (run / "logs/predict.log").read_text()
    # The rule also writes the confidence map, the outlines and the damage viewer (predict.viewer) …
    assert np.asarray(Image.open(run / "predict/confidence/new.png")).shape == (150, 97)
    assert 0 < float(areas["new.png"]["mean_confidence"]) <= 1
    assert (run / "predict/outlines/new.geojson").is_file()
    assert (run / "predict/outlines/new.coco.json").is_file()
    viewer = run / "predict/viewer"
    assert (viewer / "index.html").is_file() and (viewer / "scans/new/scan_files").is_dir()
    assert "new.png" in (viewer / "data.js").read_text()
    # … and the IIIF export (predict.iiif): one canvas per scan predicted (the broken one has none)
    manifest = json.loads((run / "predict/iiif/manifest.json").read_text())
    assert [c["label"]["none"][0] for c in manifest["items"]] == ["new.png"]
