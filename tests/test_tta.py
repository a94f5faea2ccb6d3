"""Test-time augmentation over the 8 flips/transposes of a tile."""

import numpy as np
import pytest
import torch
from _checkpoints import SIZE
from torch import nn

from heritage_damage_seg.classes import NUM_CLASSES
from heritage_damage_seg.model.dihedral import DIHEDRAL_VIEWS, dihedral_average
from heritage_damage_seg.model.models import build_model
from heritage_damage_seg.model.sliding import SlidingSettings, forward_tiles, predict_logits


def symmetric_image(size: int) -> np.ndarray:
    """A picture every flip and transpose maps onto itself: a function of the sorted distances
    of a pixel to the nearest edges, so (row, col) ↔ (col, row) and mirror images agree."""
    edge = np.minimum(np.arange(size), size - 1 - np.arange(size))
    near, far = np.minimum.outer(edge, edge), np.maximum.outer(edge, edge)
    return np.stack(
        [(37 * near + 11 * far) % 256, (5 * near * far) % 256, (90 + 7 * far) % 256], -1
    ).astype(np.uint8)


class PerPixel(nn.Module):
    """A model that looks at one pixel at a time: it commutes with every flip and transpose."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, NUM_CLASSES, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


def test_every_view_is_undone_by_its_inverse_and_the_eight_differ():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    assert len({view.apply(x).numpy().tobytes() for view in DIHEDRAL_VIEWS}) == 8
    for view in DIHEDRAL_VIEWS:
        assert torch.equal(view.invert(view.apply(x)), x)


def test_a_model_that_commutes_with_the_views_is_unchanged_by_tta_on_any_input():
    model = PerPixel().eval()
    image = np.random.default_rng(0).integers(0, 256, (90, 130, 3), dtype=np.uint8)
    plain = predict_logits(model, image, tile=SIZE)
    averaged = predict_logits(model, image, tile=SIZE, settings=SlidingSettings(tta_flip=True))
    torch.testing.assert_close(averaged, plain, rtol=1e-5, atol=1e-5)


def test_tta_of_a_symmetric_input_equals_the_plain_prediction_when_the_model_commutes():
    """The brief's case: a symmetric tile, predicted plainly and with 8-view TTA."""
    tile = torch.from_numpy(symmetric_image(SIZE))[None]
    assert all(
        torch.equal(view.apply(tile.permute(0, 3, 1, 2)), tile.permute(0, 3, 1, 2))
        for view in DIHEDRAL_VIEWS
    )
    model = PerPixel().eval()
    torch.testing.assert_close(
        forward_tiles(model, tile, None, True),
        forward_tiles(model, tile, None, False),
        rtol=1e-5,
        atol=1e-5,
    )


def test_with_a_real_network_tta_of_a_symmetric_input_is_symmetric_and_the_mean_of_the_views():
    """A convolutional network does not commute with flips, so its plain map of a symmetric tile is
    not symmetric; TTA averages the plain map over the 8 views, which makes it so."""
    torch.manual_seed(0)
    model = build_model("convnext_tiny", image_size=SIZE).eval()
    tile = torch.from_numpy(symmetric_image(SIZE))[None]
    averaged = forward_tiles(model, tile, None, True)
    plain = forward_tiles(model, tile, None, False)
    expected = torch.stack([view.invert(plain) for view in DIHEDRAL_VIEWS]).mean(0)
    torch.testing.assert_close(averaged, expected, rtol=1e-4, atol=1e-4)
    for view in DIHEDRAL_VIEWS:
        torch.testing.assert_close(view.apply(averaged), averaged, rtol=1e-4, atol=1e-4)


def test_tta_refuses_tiles_that_are_not_square():
    with pytest.raises(ValueError, match="square"):
        dihedral_average(PerPixel(), torch.zeros(1, 3, 4, 6))
