"""Damage maps for a folder of scans: outputs, areas, corrupt files, the default model."""

import csv
import json
import logging

import numpy as np
import pytest
from _checkpoints import save_random_checkpoint
from PIL import Image

from heritage_damage_seg.classes import IGNORE_INDEX, NUM_CLASSES, slug
from heritage_damage_seg.cli import main
from heritage_damage_seg.inference.areas import damage_areas
from heritage_damage_seg.inference.predict import (
    PredictError,
    best_checkpoint,
    list_images,
    predict_folder,
)
from heritage_damage_seg.model.sliding import SlidingSettings


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_random_checkpoint(tmp_path_factory.mktemp("model") / "model_best.pt")


def write_scans(folder, sizes=((90, 130), (64, 64))):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            folder / f"scan{i}.png"
        )
    return folder


def read_rows(path):
    with open(path, newline="") as handle:
        return {row["image"]: row for row in csv.DictReader(handle)}


def test_a_corrupt_file_is_reported_and_the_rest_are_predicted(tmp_path, checkpoint, caplog):
    caplog.set_level(logging.INFO)
    scans = write_scans(tmp_path / "scans")
    good = (scans / "scan0.png").read_bytes()
    (scans / "broken.png").write_bytes(good[: len(good) // 3])  # truncated
    (scans / "notes.jpg").write_text("not an image")
    out = tmp_path / "out"
    summary = predict_folder(
        scans, out, checkpoint=checkpoint, settings=SlidingSettings(batch_size=4)
    )

    assert summary.n_images == 4 and summary.n_ok == 2
    assert set(summary.failed) == {"broken.png", "notes.jpg"}
    assert "broken.png FAILED" in caplog.text and "2 of 4 image(s) failed" in caplog.text
    assert "images/s" in caplog.text and "ETA" in caplog.text
    rows = read_rows(out / "damage_areas.csv")
    assert rows["broken.png"]["status"].startswith("error:") and rows["scan0.png"]["status"] == "ok"
    for name, (h, w) in (("scan0", (90, 130)), ("scan1", (64, 64))):
        mask = np.asarray(Image.open(out / "masks" / f"{name}.png"))
        assert mask.shape == (h, w) and mask.max() < NUM_CLASSES
        row = rows[f"{name}.png"]
        assert int(row["scored_pixels"]) == h * w
        assert sum(int(row[f"{slug(c)}_px"]) for c in range(NUM_CLASSES)) == h * w
        assert abs(sum(float(row[f"{slug(c)}_pct"]) for c in range(NUM_CLASSES)) - 100) < 0.01
        assert int(row["damaged_pixels"]) == int((mask > 0).sum())
        overlay = Image.open(out / "overlays" / f"{name}.png")
        assert overlay.mode == "RGB" and overlay.size[0] > w  # the legend panel beside the scan
    saved = json.loads((out / "prediction.json").read_text())
    assert saved["n_ok"] == 2 and saved["tile"] == 64 and saved["settings"]["overlap"] == 0.25


def test_artwork_masks_set_255_outside_and_leave_it_out_of_the_areas(tmp_path, checkpoint):
    scans = write_scans(tmp_path / "scans", sizes=((80, 100),))
    artwork = tmp_path / "artwork"
    artwork.mkdir()
    inside = np.zeros((80, 100), dtype=np.uint8)
    inside[10:70, 20:90] = 255
    Image.fromarray(inside).save(artwork / "scan0.png")
    predict_folder(scans, tmp_path / "out", checkpoint=checkpoint, artwork_masks=artwork)
    mask = np.asarray(Image.open(tmp_path / "out/masks/scan0.png"))
    assert (mask[inside == 0] == IGNORE_INDEX).all() and (mask[inside > 0] < NUM_CLASSES).all()
    assert (
        int(read_rows(tmp_path / "out/damage_areas.csv")["scan0.png"]["scored_pixels"]) == 60 * 70
    )


def test_default_model_is_the_best_of_the_comparison(tmp_path, checkpoint):
    results = tmp_path / "results"
    with pytest.raises(PredictError, match="model_comparison.json does not exist"):
        best_checkpoint(results)
    (results / "maxvit_tiny").mkdir(parents=True)
    (results / "maxvit_tiny" / "model_best.pt").symlink_to(checkpoint)
    (results / "model_comparison.json").write_text(
        json.dumps({"best_encoder": "maxvit_tiny", "models": []})
    )
    assert best_checkpoint(results) == results / "maxvit_tiny" / "model_best.pt"


def test_cli_predicts_a_list_of_files_and_says_when_one_failed(tmp_path, checkpoint):
    scans = write_scans(tmp_path / "scans", sizes=((70, 70),))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnonsense")
    options = ["-o", str(tmp_path / "out"), "--checkpoint", str(checkpoint)]
    assert (
        main(
            ["predict", str(scans / "scan0.png"), *options, "--overlap", "0.5", "--blend", "linear"]
        )
        == 0
    )
    assert (tmp_path / "out/masks/scan0.png").is_file()
    assert main(["predict", str(scans / "scan0.png"), str(tmp_path / "bad.png"), *options]) == 1
    assert (
        main(
            [
                "predict",
                str(tmp_path / "nowhere"),
                "-o",
                str(tmp_path / "o2"),
                "--checkpoint",
                str(checkpoint),
            ]
        )
        == 2
    )


def test_inputs_with_the_same_stem_are_refused(tmp_path):
    write_scans(tmp_path / "a", sizes=((8, 8),))
    write_scans(tmp_path / "b", sizes=((8, 8),))
    with pytest.raises(PredictError, match="share the file stem"):
        list_images([tmp_path / "a", tmp_path / "b"])


def test_areas_of_a_known_mask():
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[:2] = 9  # cracks: 20 px
    mask[9] = IGNORE_INDEX  # 10 px outside
    areas = damage_areas(mask)
    assert areas["scored_pixels"] == 90 and areas["damaged_pixels"] == 20
    assert areas["09_cracks_px"] == 20 and abs(areas["09_cracks_pct"] - 100 * 20 / 90) < 1e-9
