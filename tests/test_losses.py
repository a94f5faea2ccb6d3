import pytest
import torch

from heritage_damage_seg.classes import IGNORE_INDEX, NUM_CLASSES
from heritage_damage_seg.model.losses import WeightedDiceLoss


def one_hot_logits(target: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    return (
        torch.nn.functional.one_hot(target.clamp(max=NUM_CLASSES - 1).long(), NUM_CLASSES)
        .permute(0, 3, 1, 2)
        .float()
        * scale
    )


def per_class_dice_loss(logits, target, smooth=1.0):
    """Reference: 1 − Dice per class over the whole batch, written out loop by loop."""
    probs = logits.softmax(1)
    scored = target != IGNORE_INDEX
    losses = {}
    for c in range(NUM_CLASSES):
        t = ((target == c) & scored).float()
        if t.sum() == 0:
            continue
        p = probs[:, c] * scored
        losses[c] = 1 - (2 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)
    return losses


def test_weighted_mean_of_per_class_dice_over_present_classes():
    torch.manual_seed(0)
    target = torch.randint(0, 4, (2, 8, 8))
    target[0, 0, :] = IGNORE_INDEX
    logits = torch.randn(2, NUM_CLASSES, 8, 8)
    weights = torch.linspace(0.5, 3.0, NUM_CLASSES)
    reference = per_class_dice_loss(logits, target)
    expected = sum(weights[c] * loss for c, loss in reference.items()) / sum(
        weights[c] for c in reference
    )
    assert WeightedDiceLoss(weights)(logits, target) == pytest.approx(expected.item(), rel=1e-5)


def test_the_class_weights_reach_the_loss():
    torch.manual_seed(1)
    target = torch.randint(0, 3, (1, 16, 16))
    logits = torch.randn(1, NUM_CLASSES, 16, 16)
    reference = per_class_dice_loss(logits, target)
    only_class_2 = torch.zeros(NUM_CLASSES)
    only_class_2[2] = 1.0
    assert WeightedDiceLoss(only_class_2)(logits, target).item() == pytest.approx(
        reference[2].item(), rel=1e-5
    )
    uniform = WeightedDiceLoss(torch.ones(NUM_CLASSES))(logits, target)
    assert uniform.item() != pytest.approx(reference[2].item(), rel=1e-3)


def test_ignored_pixels_do_not_count():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, :4] = 1
    logits = one_hot_logits(target)
    perfect = WeightedDiceLoss(torch.ones(NUM_CLASSES))(logits, target)
    noisy_target = target.clone()
    noisy_target[0, 4:, :] = IGNORE_INDEX  # mark half the image ignored ...
    wrong_logits = logits.clone()
    wrong_logits[0, :, 4:, :] = one_hot_logits(torch.full((1, 4, 8), 7))[
        0
    ]  # ... and predict garbage there
    assert WeightedDiceLoss(torch.ones(NUM_CLASSES))(wrong_logits, noisy_target) == pytest.approx(
        perfect.item(), abs=1e-4
    )
    assert perfect.item() < 1e-3


def test_gradients_flow_and_bad_weights_are_refused():
    logits = torch.randn(2, NUM_CLASSES, 8, 8, requires_grad=True)
    WeightedDiceLoss(torch.ones(NUM_CLASSES))(
        logits, torch.randint(0, NUM_CLASSES, (2, 8, 8))
    ).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError):
        WeightedDiceLoss([-1.0] * NUM_CLASSES)
    with pytest.raises(ValueError, match="16 classes but 3 weights"):
        WeightedDiceLoss([1.0] * 3)(logits, torch.zeros(2, 8, 8, dtype=torch.long))


def test_dice_ce_adds_weighted_cross_entropy():
    from heritage_damage_seg.model.losses import build_loss

    torch.manual_seed(2)
    target = torch.randint(0, 4, (2, 8, 8))
    target[:, 0] = IGNORE_INDEX
    logits = torch.randn(2, NUM_CLASSES, 8, 8)
    weights = torch.linspace(1.0, 2.0, NUM_CLASSES)
    dice = build_loss("dice", weights)(logits, target)
    combined = build_loss("dice_ce", weights)(logits, target)
    ce = torch.nn.functional.cross_entropy(
        logits, target, weight=weights, ignore_index=IGNORE_INDEX
    )
    assert combined.item() == pytest.approx((dice + ce).item(), rel=1e-5)
    with pytest.raises(ValueError, match="dice, dice_ce"):
        build_loss("focal", weights)


def one_hot_dice_loss(logits, target, weights, smooth=1.0, eps=1e-7):
    """The former implementation (a B×C×H×W one-hot volume), kept as the reference the
    scatter-based loss must equal."""
    probs = logits.float().softmax(dim=1)
    target = target.long()
    scored = (target != IGNORE_INDEX).unsqueeze(1)
    one_hot = torch.nn.functional.one_hot(torch.where(scored.squeeze(1), target, 0), NUM_CLASSES)
    one_hot = one_hot.permute(0, 3, 1, 2).to(probs.dtype) * scored
    probs = probs * scored
    dims = (0, 2, 3)
    dice = (2.0 * (probs * one_hot).sum(dims) + smooth) / (
        probs.sum(dims) + one_hot.sum(dims) + smooth
    ).clamp_min(eps)
    present = weights * (one_hot.sum(dims) > 0)
    return ((1.0 - dice) * present).sum() / present.sum().clamp_min(eps)


@pytest.mark.parametrize("seed", range(5))
def test_the_scatter_dice_equals_the_one_hot_dice_and_its_gradient(seed):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 9, (3, 24, 20), generator=generator)  # classes 9–15 absent
    target[torch.rand(target.shape, generator=generator) < 0.2] = IGNORE_INDEX
    target[1] = IGNORE_INDEX  # one image wholly ignored
    weights = torch.rand(NUM_CLASSES, generator=generator) * 3
    logits = (torch.randn(3, NUM_CLASSES, 24, 20, generator=generator) * 3).requires_grad_()
    new = WeightedDiceLoss(weights)(logits, target)
    (new_grad,) = torch.autograd.grad(new, logits)
    old = one_hot_dice_loss(logits, target, weights)
    (old_grad,) = torch.autograd.grad(old, logits)
    assert abs(new.item() - old.item()) <= 1e-6
    torch.testing.assert_close(new_grad, old_grad, rtol=1e-5, atol=1e-7)
