"""ONNX export: onnxruntime gives PyTorch's logits on the CPU; the model card says what to feed."""

import json

import numpy as np
import pytest
import torch
from _checkpoints import save_random_checkpoint

from heritage_damage_seg.classes import NUM_CLASSES, PALETTE_HEX
from heritage_damage_seg.inference.export import TOLERANCE, config_hash, export_model
from heritage_damage_seg.model.models import load_checkpoint

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize(
    "encoder",
    [
        "convnext_tiny",
        pytest.param("maxvit_tiny", marks=pytest.mark.slow),
        pytest.param("segformer_b3", marks=pytest.mark.slow),
    ],
)
def test_onnx_matches_pytorch_on_the_cpu(tmp_path, encoder):
    checkpoint = save_random_checkpoint(tmp_path / "model_best.pt", encoder=encoder)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(
        json.dumps(
            {
                "evaluation_mode": "resize",
                "mIoU": 0.5,
                "damage_mIoU": 0.4,
                "per_class": {"Clean": {"IoU": 0.9}},
            }
        )
    )
    card = export_model(
        checkpoint,
        tmp_path / "export",
        metrics_file=metrics,
        torchscript=encoder == "convnext_tiny",
    )

    model, _ = load_checkpoint(checkpoint)
    images = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    mean, std = (
        torch.tensor(card["input"]["normalisation"][k]).view(1, 3, 1, 1) for k in ("mean", "std")
    )
    x = (
        (images.permute(0, 3, 1, 2).float() / card["input"]["normalisation"]["scale"]) - mean
    ) / std
    session = onnxruntime.InferenceSession(
        str(tmp_path / "export/model.onnx"), providers=["CPUExecutionProvider"]
    )
    (onnx_logits,) = session.run(None, {card["input"]["name"]: x.numpy()})
    with torch.no_grad():
        reference = model(x).numpy()
    assert onnx_logits.shape == (3, NUM_CLASSES, 64, 64)
    assert np.abs(onnx_logits - reference).max() < TOLERANCE
    assert (onnx_logits.argmax(1) == reference.argmax(1)).mean() > 0.999

    saved = json.loads((tmp_path / "export/model_card.json").read_text())
    assert saved["training_resolution"] == 64 and saved["encoder"] == encoder
    assert [c["colour"] for c in saved["classes"]] == list(PALETTE_HEX)
    assert saved["metrics"]["mIoU"] == 0.5 and saved["metrics"]["evaluation_mode"] == "resize"
    assert saved["config_hash"] == config_hash({"encoder": encoder, "seed": 0})
    assert saved["files"]["onnx_max_abs_diff_vs_pytorch"] < TOLERANCE
    if encoder == "convnext_tiny":
        traced = torch.jit.load(str(tmp_path / "export/model.ts"))
        torch.testing.assert_close(traced(x), torch.from_numpy(reference), atol=TOLERANCE, rtol=0)
