"""Multiclass Dice loss with per-class weights and an ignore label."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from heritage_damage_seg.classes import IGNORE_INDEX

SumAcross = Callable[[torch.Tensor], torch.Tensor]
"""Adds a tensor of per-class sums over the ranks that share a global batch (differentiably)."""


class WeightedDiceLoss(nn.Module):
    """1 − soft Dice per class, computed over the whole batch, averaged with class weights.

    Per class c: dice_c = (2·Σ p·t + smooth) / (Σ p + Σ t + smooth), with sums over every scored
    pixel of the batch (as smp's multiclass DiceLoss). Classes absent from the batch's ground
    truth are left out, as smp does; the rest are averaged with weights w_c:
    loss = Σ w_c (1 − dice_c) / Σ w_c. Pixels labelled ``ignore_index`` count nowhere.

    ``sum_across``: under data parallelism, the sums are those of the global batch (every rank's
    part added) before the Dice is formed, so the loss is the global batch's, as in one process.
    """

    def __init__(
        self,
        class_weights: Sequence[float] | torch.Tensor,
        smooth: float = 1.0,
        ignore_index: int = IGNORE_INDEX,
        eps: float = 1e-7,
        sum_across: SumAcross | None = None,
    ) -> None:
        super().__init__()
        weights = torch.as_tensor(class_weights, dtype=torch.float32)
        if weights.ndim != 1 or (weights < 0).any() or not torch.isfinite(weights).all():
            raise ValueError("class weights must be a 1-D vector of finite, non-negative numbers")
        self.register_buffer("class_weights", weights)
        self.smooth = smooth
        self.ignore_index = ignore_index
        self.eps = eps
        self.sum_across = sum_across

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        num_classes = logits.shape[1]
        if num_classes != self.class_weights.numel():
            raise ValueError(
                f"model has {num_classes} classes but {self.class_weights.numel()} weights"
            )
        probs = logits.float().softmax(dim=1)
        target = target.long()
        scored = (target != self.ignore_index).to(probs.dtype)  # B×H×W
        safe_target = torch.where(target != self.ignore_index, target, 0)
        # Per-class sums without a B×C×H×W one-hot volume: Σ t_c is a count of each class's scored
        # pixels, Σ p_c·t_c the probability each scored pixel gives its own class, added into its
        # class's bin, Σ p_c the class's probability over the scored pixels. scatter_add with a
        # fixed output size needs no host synchronisation (one_hot and bincount check their input).
        own_probability = probs.gather(1, safe_target.unsqueeze(1)).squeeze(1) * scored
        index = safe_target.reshape(-1)
        zeros = probs.new_zeros(num_classes)
        intersection = zeros.scatter_add(0, index, own_probability.reshape(-1))
        truth = zeros.scatter_add(0, index, scored.reshape(-1))
        predicted = torch.einsum("bchw,bhw->c", probs, scored)
        if self.sum_across is not None:
            intersection, truth, predicted = self.sum_across(
                torch.stack([intersection, truth, predicted])
            )
        dice = (2.0 * intersection + self.smooth) / (predicted + truth + self.smooth).clamp_min(
            self.eps
        )
        weights = self.class_weights * (truth > 0)
        return ((1.0 - dice) * weights).sum() / weights.sum().clamp_min(self.eps)


class DiceCrossEntropyLoss(nn.Module):
    """Weighted Dice plus class-weighted cross-entropy (mean over scored pixels).

    Cross-entropy gives every pixel a gradient from the first step, so a randomly initialised model
    converges in far fewer steps than with Dice alone (which the prototype's benchmark used).
    """

    def __init__(
        self,
        class_weights: Sequence[float] | torch.Tensor,
        smooth: float = 1.0,
        ignore_index: int = IGNORE_INDEX,
        sum_across: SumAcross | None = None,
    ) -> None:
        super().__init__()
        self.dice = WeightedDiceLoss(
            class_weights, smooth=smooth, ignore_index=ignore_index, sum_across=sum_across
        )
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weights, target = self.dice.class_weights, target.long()
        if self.dice.sum_across is None:
            cross_entropy = F.cross_entropy(
                logits.float(), target, weight=weights, ignore_index=self.ignore_index
            )
        else:
            # The weighted mean of the global batch: its weighted sum over its total weight.
            weighted_sum = F.cross_entropy(
                logits.float(),
                target,
                weight=weights,
                ignore_index=self.ignore_index,
                reduction="sum",
            )
            scored = target != self.ignore_index
            total_weight = (weights[torch.where(scored, target, 0)] * scored).sum()
            weighted_sum, total_weight = self.dice.sum_across(
                torch.stack([weighted_sum, total_weight])
            )
            cross_entropy = weighted_sum / total_weight
        return self.dice(logits, target) + cross_entropy


LOSSES = {"dice": WeightedDiceLoss, "dice_ce": DiceCrossEntropyLoss}


def build_loss(
    kind: str,
    class_weights: Sequence[float] | torch.Tensor,
    smooth: float = 1.0,
    sum_across: SumAcross | None = None,
) -> nn.Module:
    if kind not in LOSSES:
        raise ValueError(f"loss.type '{kind}' is not known: choose one of {', '.join(LOSSES)}")
    return LOSSES[kind](class_weights, smooth=smooth, sum_across=sum_across)
