"""The sliding window: one tile = the whole-image forward, no seams, bounded memory, fixed-size
encoders on odd image sizes."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from heritage_damage_seg.classes import NUM_CLASSES
from heritage_damage_seg.model.inputs import to_model_input
from heritage_damage_seg.model.models import build_model
from heritage_damage_seg.model.sliding import (
    SlidingSettings,
    predict_logits,
    predict_mask,
    strip_bytes,
    tile_starts,
    tile_weights,
)

SIZE = 64


def random_image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def convnext():
    torch.manual_seed(0)
    return build_model("convnext_tiny", image_size=SIZE).eval()


def test_tiles_cover_the_side_and_end_on_its_edge():
    assert tile_starts(64, 64, 48) == [0]
    assert tile_starts(150, 64, 48) == [0, 48, 86]
    assert tile_starts(112, 64, 48) == [0, 48]
    for length in range(64, 400, 7):
        starts = tile_starts(length, 64, 48)
        assert starts[0] == 0 and starts[-1] == length - 64
        assert all(b - a <= 48 for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("blend", ["gaussian", "linear", "uniform"])
def test_an_image_of_one_tile_gives_the_whole_image_output(convnext, blend):
    image = random_image(SIZE, SIZE)
    settings = SlidingSettings(overlap=0.5, blend=blend, batch_size=3)
    sliding = predict_logits(convnext, image, tile=SIZE, settings=settings)
    with torch.no_grad():
        whole = convnext(to_model_input(torch.from_numpy(image)[None]))[0]
    torch.testing.assert_close(sliding, whole, atol=1e-5, rtol=1e-5)
    assert np.array_equal(
        predict_mask(convnext, image, tile=SIZE, settings=settings), whole.argmax(0).numpy()
    )


def test_strips_and_batches_do_not_change_the_result(convnext):
    """The mask streamed strip by strip equals the argmax of the assembled logits, for any batch."""
    image = random_image(150, 100, seed=1)
    reference = predict_logits(convnext, image, tile=SIZE, settings=SlidingSettings(batch_size=1))
    for batch_size in (2, 16):
        mask = predict_mask(
            convnext, image, tile=SIZE, settings=SlidingSettings(batch_size=batch_size)
        )
        assert mask.shape == (150, 100) and mask.dtype == np.uint8
        assert np.array_equal(mask, reference.argmax(0).numpy())


class EdgeEffectModel(nn.Module):
    """A constructed case with strong tile-edge artefacts: zero-padded 9×9 convolutions make every
    tile's border differ from its interior on a smooth image, as real encoders do."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 9, padding=4), nn.Tanh(), nn.Conv2d(8, NUM_CLASSES, 9, padding=4)
        )

    def forward(self, x):
        return self.net(x)


def max_step(logits: torch.Tensor, margin: int) -> float:
    """The largest jump between neighbouring pixels away from the image border."""
    inner = logits[:, margin:-margin, margin:-margin]
    return max(inner.diff(dim=1).abs().max().item(), inner.diff(dim=2).abs().max().item())


def test_blended_stitch_has_no_seams():
    model = EdgeEffectModel().eval()
    y, x = np.mgrid[0:200, 0:200]
    smooth = (
        127 + 60 * np.sin(x / 40.0)[..., None] * np.cos(y / 50.0)[..., None] * np.ones(3)
    ).astype(np.uint8)
    with torch.no_grad():
        whole = model(to_model_input(torch.from_numpy(smooth)[None]))[0]
    margin = 12  # the whole-image forward has its own border effects
    natural = max_step(whole, margin)
    hard = predict_logits(
        model, smooth, tile=SIZE, settings=SlidingSettings(overlap=0.0, blend="uniform")
    )
    blended = predict_logits(
        model, smooth, tile=SIZE, settings=SlidingSettings(overlap=0.5, blend="gaussian")
    )
    linear = predict_logits(
        model, smooth, tile=SIZE, settings=SlidingSettings(overlap=0.5, blend="linear")
    )
    # The hard stitch has seams far steeper than anything in the image's own response ...
    steps = {
        name: max_step(x, margin)
        for name, x in (("hard", hard), ("gaussian", blended), ("linear", linear))
    }
    print(
        f"largest neighbour step: whole image {natural:.4f}, "
        + ", ".join(f"{k} {v:.4f}" for k, v in steps.items())
    )
    assert steps["hard"] > 5 * natural
    # ... the Gaussian stitch is as smooth as the whole-image response (its weight at a tile's
    # edge is e^-8), the linear one (1/32 of the centre at the edge) leaves a faint step.
    assert steps["gaussian"] < 1.5 * natural
    assert steps["linear"] < steps["hard"] / 3
    assert (blended - whole)[:, margin:-margin, margin:-margin].abs().mean() < (hard - whole)[
        :, margin:-margin, margin:-margin
    ].abs().mean()


def test_weights_are_positive_and_peak_in_the_centre():
    for blend in ("gaussian", "linear", "uniform"):
        w = tile_weights(SIZE, blend)
        assert w.shape == (SIZE, SIZE) and (w > 0).all() and w.max() == 1.0
        torch.testing.assert_close(w, w.flip(0).flip(1))


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, re, sys
    import numpy as np, torch
    from torch import nn
    from heritage_damage_seg.model.sliding import SlidingSettings, predict_mask, strip_bytes

    def status(key):  # kB → bytes
        return 1024 * int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))

    torch.set_num_threads(1)
    height, width, tile = int(sys.argv[1]), int(sys.argv[2]), 64
    settings = SlidingSettings(overlap=0.25, batch_size=8)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 1)).eval()
    image = np.empty((height, width, 3), dtype=np.uint8)
    rng = np.random.default_rng(0)
    for row in range(0, height, 256):
        image[row : row + 256] = rng.integers(0, 256, image[row : row + 256].shape, dtype=np.uint8)
    predict_mask(model, image[: 2 * tile], tile=tile, settings=settings)  # warm-up: allocator, kernels
    open("/proc/self/clear_refs", "w").write("5")  # resets the peak RSS (VmHWM) to the current RSS
    before = status("VmRSS")
    mask = predict_mask(model, image, tile=tile, settings=settings)
    print(json.dumps({
        "before": before, "peak": status("VmHWM"), "bound": strip_bytes(width, tile, 16, settings.batch_size),
        "mask": mask.nbytes, "image": image.nbytes,
    }))
    """
)


def test_a_scan_far_larger_than_a_tile_stays_within_the_stated_memory():
    """12 MP with 64 px tiles: full-resolution float logits (16 classes + weights) would need
    816 MB. The stitcher may use its stated strip bound (:func:`strip_bytes`) plus the uint8 mask
    it returns and 32 MiB of slack for the allocator and the model's activations. Measured as the
    peak RSS (VmHWM, reset after a warm-up) of a fresh process over its RSS before the call."""
    height, width = 4000, 3000
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(height), str(width)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if "clear_refs" in result.stderr and "Permission" in result.stderr:
        pytest.skip("this kernel does not let a process reset its peak RSS (/proc/self/clear_refs)")
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    rise = measured["peak"] - measured["before"]
    naive = (NUM_CLASSES + 1) * 4 * height * width
    allowed = measured["bound"] + measured["mask"] + 32 * 2**20
    print(
        f"peak RSS rise {rise / 2**20:.1f} MiB (strip bound {measured['bound'] / 2**20:.1f} MiB + mask "
        f"{measured['mask'] / 2**20:.1f} MiB); full-resolution logits would be {naive / 2**20:.0f} MiB"
    )
    assert measured["bound"] == strip_bytes(width, 64, NUM_CLASSES, 8)
    assert 0 < rise <= allowed
    assert rise < naive / 10


@pytest.mark.parametrize("shape", [(100, 150), (40, 97), (129, 64)])
def test_maxvit_predicts_sides_that_are_not_multiples_of_its_tile(shape):
    torch.manual_seed(0)
    model = build_model("maxvit_tiny", image_size=SIZE).eval()
    # the reason for the tiling: no other input size is accepted
    with pytest.raises((RuntimeError, ValueError, AssertionError)):
        with torch.no_grad():
            model(torch.zeros(1, 3, 96, 96))
    image = random_image(*shape)
    mask = predict_mask(
        model, image, tile=SIZE, settings=SlidingSettings(overlap=0.3, tta_flip=True)
    )
    assert mask.shape == shape and mask.max() < NUM_CLASSES
