"""On a GPU, a training step and validation never wait for the device (no host synchronisation):
run under torch.cuda.set_sync_debug_mode("error"), any synchronising call raises. Skipped without
CUDA; bench/bench_training.py runs the same check on the real model sizes."""

import numpy as np
import pytest
import torch

from heritage_damage_seg.classes import IGNORE_INDEX, NUM_CLASSES
from heritage_damage_seg.metrics import confusion_matrix
from heritage_damage_seg.model.inputs import to_model_input
from heritage_damage_seg.model.losses import build_loss
from heritage_damage_seg.model.models import build_model
from heritage_damage_seg.training.batches import Augmentation, ResidentSplit, augment

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_a_training_step_and_validation_do_not_synchronise():
    device = torch.device("cuda")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    masks = rng.integers(0, NUM_CLASSES, (8, 64, 64), dtype=np.uint8)
    masks[:, :4] = IGNORE_INDEX
    split = ResidentSplit(images, masks, np.arange(8), device)
    model = build_model("convnext_tiny", image_size=64).to(device)
    loss_fn = build_loss("dice", torch.ones(NUM_CLASSES)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    order = split.shuffled_order(generator)
    cm = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64, device=device)
    for warm_up in (True, False):  # the first pass may allocate and select kernels
        torch.cuda.set_sync_debug_mode(0 if warm_up else "error")
        try:
            for batch_images, batch_masks in split.batches(4, order=order, drop_last=True):
                batch_images, batch_masks = augment(
                    batch_images, batch_masks, generator, Augmentation()
                )
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = model(to_model_input(batch_images))
                loss = loss_fn(logits, batch_masks)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                for batch_images, batch_masks in split.batches(4):
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        cm += confusion_matrix(
                            model(to_model_input(batch_images)).argmax(1), batch_masks
                        )
        finally:
            torch.cuda.set_sync_debug_mode(0)
    assert int(cm.sum()) == 2 * int((torch.from_numpy(masks) != IGNORE_INDEX).sum())
