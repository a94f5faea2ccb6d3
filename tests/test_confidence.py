"""Confidence maps: the probability of the chosen class per pixel, at the scan's size, in both views."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_scan_view import SIZE, painted_scan, receptive_model

from heritage_damage_seg.classes import NUM_CLASSES, slug
from heritage_damage_seg.inference.confidence import (
    confidence_summary,
    predict_with_confidence,
    save_grey_png,
)
from heritage_damage_seg.model.scan_view import ModelView
from heritage_damage_seg.model.sliding import SlidingSettings, forward_tiles, predict_logits


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    path = tmp_path_factory.mktemp("scan") / "scan.png"
    painted_scan(300, 210).save(path)
    return path


def test_resize_view_confidence_is_the_resized_probability_of_the_chosen_class(scan):
    model, view = receptive_model(), ModelView("resize", SIZE)
    mask, confidence = predict_with_confidence(view, model, scan, name="scan")
    assert np.array_equal(mask, view.predict(model, scan, name="scan"))
    picture, _ = view.model_input(scan, name="scan")
    probabilities = torch.softmax(
        forward_tiles(model, torch.from_numpy(picture)[None], None, False), 1
    )
    resized = F.interpolate(probabilities, mask.shape, mode="bilinear", align_corners=False)[0]
    expected = resized.gather(0, torch.from_numpy(mask).long()[None])[0].numpy() * 255
    assert confidence.shape == mask.shape and confidence.dtype == np.uint8
    assert np.abs(confidence - expected).max() <= 0.5 + 1e-3  # rounding to uint8 only
    assert confidence.min() >= 255 // NUM_CLASSES  # the winning class has at least 1/C


def test_crops_view_confidence_is_the_blended_probability_of_each_pixels_class(scan):
    model, view = receptive_model(), ModelView("crops", SIZE, 0.5)
    settings = SlidingSettings(overlap=0.25, batch_size=4)
    mask, confidence = predict_with_confidence(view, model, scan, name="scan", settings=settings)
    assert np.array_equal(mask, view.predict(model, scan, name="scan", settings=settings))
    picture, _ = view.model_input(scan, name="scan")
    probabilities = torch.softmax(predict_logits(model, picture, tile=SIZE, settings=settings), 0)
    best = np.rint(probabilities.max(0).values.numpy() * 255).astype(np.uint8)
    rows = np.minimum(((np.arange(210) + 0.5) * best.shape[0] / 210).astype(int), best.shape[0] - 1)
    cols = np.minimum(((np.arange(300) + 0.5) * best.shape[1] / 300).astype(int), best.shape[1] - 1)
    assert np.abs(confidence.astype(int) - best[rows][:, cols]).max() <= 1


def test_summary_per_class_and_threshold():
    mask = np.array([[0, 0, 9, 9], [9, 255, 1, 1]], dtype=np.uint8)
    confidence = np.array([[255, 51, 102, 204], [153, 0, 255, 255]], dtype=np.uint8)
    row = confidence_summary(mask, confidence, threshold=0.5, rows_per_chunk=1)
    assert row[f"{slug(9)}_mean_confidence"] == pytest.approx((102 + 204 + 153) / 3 / 255)
    assert row[f"{slug(9)}_low_confidence_pct"] == pytest.approx(100 / 3)  # 102 < 128
    assert row[f"{slug(0)}_low_confidence_pct"] == pytest.approx(50.0)
    assert row[f"{slug(1)}_mean_confidence"] == pytest.approx(1.0)
    assert row[f"{slug(5)}_mean_confidence"] is None  # no Hair pixel
    assert row["mean_confidence"] == pytest.approx(
        (255 + 51 + 102 + 204 + 153 + 255 + 255) / 7 / 255
    )  # 255 left out
    assert row["low_confidence_pct"] == pytest.approx(100 * 2 / 7)


def test_the_png_holds_the_map_exactly(tmp_path):
    from PIL import Image

    values = np.random.default_rng(0).integers(0, 256, (37, 53), dtype=np.uint8)
    save_grey_png(values, tmp_path / "c.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "c.png")), values)
    with pytest.raises(ValueError, match="uint8"):
        save_grey_png(values.astype(np.float32), tmp_path / "bad.png")
