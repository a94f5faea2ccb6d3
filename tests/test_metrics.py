import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from heritage_damage_seg.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from heritage_damage_seg.metrics import confusion_matrix, summarise, trivial_baseline_cm


def full_cm(entries: dict[tuple[int, int], int]) -> np.ndarray:
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for (true, pred), count in entries.items():
        cm[true, pred] = count
    return cm


def test_confusion_matrix_counts_pairs_and_skips_ignored_pixels():
    target = torch.tensor([[0, 0, 1, IGNORE_INDEX], [2, 2, 1, IGNORE_INDEX]], dtype=torch.uint8)
    prediction = torch.tensor([[0, 1, 1, 5], [2, 0, 1, 7]])
    cm = confusion_matrix(prediction, target).numpy()
    assert cm.sum() == 6  # the two 255 pixels are not scored, whatever was predicted there
    assert cm[0, 0] == 1 and cm[0, 1] == 1 and cm[1, 1] == 2 and cm[2, 2] == 1 and cm[2, 0] == 1
    assert cm[:, 5].sum() == 0 and cm[:, 7].sum() == 0


def test_summarise_on_a_hand_computed_matrix():
    # Rows are truth, columns prediction. Peel (2) never occurs in truth but is predicted once;
    # Dust (3) occurs nowhere.
    cm = full_cm({(0, 0): 8, (0, 1): 2, (0, 2): 1, (1, 0): 1, (1, 1): 3})
    s = summarise(cm)
    per = s["per_class"]
    # Clean: TP 8, FP 1 (true 1 → 0), FN 3 (→1 ×2, →2 ×1)
    assert per["Clean"]["IoU"] == pytest.approx(8 / (8 + 1 + 3))
    assert per["Clean"]["precision"] == pytest.approx(8 / 9)
    assert per["Clean"]["recall"] == pytest.approx(8 / 11)
    assert per["Clean"]["F1"] == pytest.approx(16 / (16 + 1 + 3))
    assert per["Clean"]["support"] == 11
    # Material loss: TP 3, FP 2, FN 1
    assert per["Material loss"]["IoU"] == pytest.approx(3 / 6)
    # Peel: no ground truth, predicted once: IoU 0 (counts against the mean), recall undefined
    assert per["Peel"]["IoU"] == 0.0
    assert per["Peel"]["recall"] is None and per["Peel"]["precision"] == 0.0
    # Dust: absent from truth and prediction: every ratio is 0/0 → None, left out of the mean
    assert all(per["Dust"][k] is None for k in ("IoU", "precision", "recall", "F1"))
    assert s["mIoU"] == pytest.approx((8 / 12 + 3 / 6 + 0.0) / 3)
    assert s["damage_mIoU"] == pytest.approx((3 / 6 + 0.0) / 2)
    assert s["pixel_accuracy"] == pytest.approx(11 / 15)
    assert s["num_pixels"] == 15


def test_dataset_level_iou_is_not_the_mean_of_per_image_ious():
    # Image A: 1 of 1 crack pixels right; image B: 0 of 99 right. Per-image mean would say 50 %.
    a = full_cm({(9, 9): 1, (0, 0): 10})
    b = full_cm({(9, 0): 99, (0, 0): 10})
    pooled = summarise(a + b)["per_class"]["Cracks"]["IoU"]
    assert pooled == pytest.approx(1 / 100)


def test_all_empty_matrix_gives_nulls_not_zeros():
    s = summarise(np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64))
    assert s["mIoU"] is None and s["damage_mIoU"] is None and s["pixel_accuracy"] is None


def test_trivial_baseline_predicts_clean_everywhere():
    cm = full_cm({(0, 0): 70, (0, 3): 10, (3, 3): 15, (9, 0): 5})
    baseline = summarise(trivial_baseline_cm(cm))
    # Clean: TP 80, FP 20 (all Dust and Cracks pixels) → 0.8; Dust and Cracks: IoU 0.
    assert baseline["per_class"]["Clean"]["IoU"] == pytest.approx(0.8)
    assert baseline["mIoU"] == pytest.approx(0.8 / 3)
    assert baseline["damage_mIoU"] == 0.0


def test_summarise_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match="16×16"):
        summarise(np.zeros((3, 3)))


def test_class_table_is_artefacts():
    assert NUM_CLASSES == 16 and CLASS_NAMES[9] == "Cracks" and CLASS_NAMES[15] == "Lightleak"
    assert not math.isnan(summarise(full_cm({(15, 15): 1}))["mIoU"])


def test_the_confusion_matrix_counts_pairs_and_skips_ignored_and_out_of_range_targets():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, NUM_CLASSES, (4, 17, 13), generator=generator)
    prediction = torch.randint(0, NUM_CLASSES, (4, 17, 13), generator=generator)
    target[0, :5] = IGNORE_INDEX
    target[1, 0, 0] = (
        NUM_CLASSES  # a data error the cache refuses: never counted, never spills over
    )
    expected = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for t, p in zip(target.reshape(-1).tolist(), prediction.reshape(-1).tolist()):
        if t < NUM_CLASSES:
            expected[t, p] += 1
    cm = confusion_matrix(prediction, target)
    assert cm.dtype == torch.int64 and np.array_equal(cm.numpy(), expected)
    assert int(cm.sum()) == int((target < NUM_CLASSES).sum())


def test_the_figures_can_be_read_without_loading_torch():
    """The report's scripts (comparison, seeds, leave-one-out, tables) import metrics for its
    figures alone; torch would add seconds to each of those small jobs."""
    probe = (
        "import sys; import heritage_damage_seg.metrics, heritage_damage_seg.seeds, "
        "heritage_damage_seg.evaluation.bootstrap; print('torch' in sys.modules)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "False"
