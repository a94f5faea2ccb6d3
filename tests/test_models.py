import pytest
import torch

from heritage_damage_seg.classes import IGNORE_INDEX, NUM_CLASSES
from heritage_damage_seg.model.inputs import to_model_input
from heritage_damage_seg.model.losses import WeightedDiceLoss
from heritage_damage_seg.model.models import ENCODERS, ModelConfigError, build_model
from heritage_damage_seg.training.batches import Augmentation, augment

SIZE = 64


@pytest.mark.parametrize("name", list(ENCODERS))
class TestEveryEncoder:
    def test_forward_backward_step(self, name):
        torch.manual_seed(0)
        model = build_model(name, image_size=SIZE)
        images = torch.randint(0, 256, (2, SIZE, SIZE, 3), dtype=torch.uint8)
        masks = torch.randint(0, NUM_CLASSES, (2, SIZE, SIZE), dtype=torch.uint8)
        masks[:, :4] = IGNORE_INDEX
        logits = model(to_model_input(images))
        assert logits.shape == (2, NUM_CLASSES, SIZE, SIZE)
        loss = WeightedDiceLoss(torch.ones(NUM_CLASSES))(logits, masks)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        before = [p.detach().clone() for p in model.parameters()][:5]
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
        assert any(not torch.equal(b, p) for b, p in zip(before, list(model.parameters())[:5]))

    def test_local_weights_file_round_trip(self, name, tmp_path):
        source = build_model(name, image_size=SIZE)
        path = tmp_path / "encoder.pth"
        torch.save(source.encoder.state_dict(), path)
        loaded = build_model(name, image_size=SIZE, encoder_weights=str(path))
        for (key, a), b in zip(
            source.encoder.state_dict().items(), loaded.encoder.state_dict().values()
        ):
            assert torch.equal(a, b), key

    def test_missing_weights_file_is_named(self, name, tmp_path):
        with pytest.raises(ModelConfigError, match="does not exist"):
            build_model(name, image_size=SIZE, encoder_weights=str(tmp_path / "nope.pth"))

    def test_size_not_a_multiple_of_32_is_refused(self, name):
        with pytest.raises(ModelConfigError, match="multiple of 32"):
            build_model(name, image_size=100)


def test_weights_of_another_encoder_are_refused(tmp_path):
    path = tmp_path / "convnext.pth"
    torch.save(build_model("convnext_tiny", image_size=SIZE).encoder.state_dict(), path)
    with pytest.raises(ModelConfigError, match="does not match encoder segformer_b3"):
        build_model("segformer_b3", image_size=SIZE, encoder_weights=str(path))


def test_unknown_encoder_lists_the_known_ones():
    with pytest.raises(ModelConfigError, match="convnext_tiny, segformer_b3, maxvit_tiny"):
        build_model("resnet50", image_size=SIZE)


def test_augmentation_moves_image_and_mask_together():
    generator = torch.Generator().manual_seed(0)
    images = (
        torch.arange(8 * 16 * 16, dtype=torch.int64).reshape(8, 16, 16, 1).expand(8, 16, 16, 3)
        % 251
    )
    images = images.to(torch.uint8)
    masks = images[..., 0].clone()
    masks[:, 0, 0] = IGNORE_INDEX
    out_images, out_masks = augment(images, masks, generator)
    assert torch.equal(
        out_images[..., 0].masked_fill(out_masks == IGNORE_INDEX, 0),
        out_masks.masked_fill(out_masks == IGNORE_INDEX, 0),
    )
    assert (out_masks == IGNORE_INDEX).sum() == 8  # 255 kept exactly, one per sample
    assert not torch.equal(out_images, images)  # something was flipped
    for i in range(8):  # each output is a dihedral transform of its own input: same multiset
        assert torch.equal(out_masks[i].flatten().sort().values, masks[i].flatten().sort().values)


def test_scale_crop_and_jitter_keep_labels_exact():
    generator = torch.Generator().manual_seed(1)
    masks = torch.zeros(6, 32, 32, dtype=torch.uint8)
    masks[:, 8:20, 4:30] = 9
    masks[:, :, :3] = IGNORE_INDEX
    images = (masks * 20).unsqueeze(-1).expand(6, 32, 32, 3).contiguous()
    settings = Augmentation(flips=False, min_crop_scale=0.5, brightness=0.2, contrast=0.2)
    out_images, out_masks = augment(images, masks, generator, settings)
    assert out_images.dtype == torch.uint8 and out_masks.dtype == torch.uint8
    assert set(out_masks.unique().tolist()) <= {0, 9, IGNORE_INDEX}  # nearest: no blended labels
    assert not torch.equal(out_masks, masks)  # the crops zoomed in
    identity = Augmentation(flips=False)
    same_images, same_masks = augment(images, masks, generator, identity)
    assert torch.equal(same_images, images) and torch.equal(same_masks, masks)
    with pytest.raises(ValueError, match="min_crop_scale"):
        Augmentation(min_crop_scale=0.0)
