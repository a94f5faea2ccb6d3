"""The code that runs only where CUDA runs, checked without a GPU: on fake CUDA tensors
(tests/fake_cuda.py) and through the decisions that take the GPU's facts as arguments."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
import torch.distributed as dist
from _checkpoints import save_random_checkpoint
from fake_cuda import CUDA, fake_cuda, is_fake_cuda
from PIL import Image
from timm.layers import BatchNormAct2d

from heritage_damage_seg import device as devices
from heritage_damage_seg.classes import IGNORE_INDEX, NUM_CLASSES
from heritage_damage_seg.inference import predict
from heritage_damage_seg.model.inputs import to_model_input
from heritage_damage_seg.model.losses import build_loss
from heritage_damage_seg.model.models import build_model
from heritage_damage_seg.model.sliding import SlidingSettings
from heritage_damage_seg.training import distributed
from heritage_damage_seg.training.batches import Augmentation, ResidentSplit, augment
from heritage_damage_seg.training.checkpoints import cpu_tensors
from heritage_damage_seg.training.state import TrainingState
from heritage_damage_seg.training.train import validation_confusion

# What torch 2.14.1+cu130 (requirements.lock) carries: torch.cuda.get_arch_list() there.
LOCK_ARCHS = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


def split_arrays(n: int = 6, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    masks = rng.integers(0, NUM_CLASSES, (n, size, size), dtype=np.uint8)
    masks[:, :2] = IGNORE_INDEX
    return images, masks


# ---- item 1: one canonical device; batches stay on it ------------------------------------------


@pytest.mark.parametrize("device", [torch.device("cuda"), CUDA], ids=["cuda", "cuda:0"])
@pytest.mark.parametrize("resident", [True, False], ids=["on-gpu", "staged-from-host"])
def test_every_kind_of_batch_reaches_the_gpu(device, resident):
    """Cache order (validation, evaluation), shuffled order and a saved order: each batch on the
    GPU, whether the split lives there or is staged from host memory. Before the fix the cache
    order of an on-GPU split crashed: "cannot pin 'torch.cuda.LongTensor' only dense CPU tensors
    can be pinned" (``cuda:0 != cuda``)."""
    images, masks = split_arrays()
    with fake_cuda():
        split = ResidentSplit(images, masks, np.arange(6), device, resident=resident)
        assert split.on_device is resident
        assert split.images.device.type == ("cuda" if resident else "cpu")
        orders = {
            "cache": dict(),
            "shuffled": dict(generator=torch.Generator().manual_seed(0), drop_last=True),
            "saved": dict(order=torch.randperm(6), start_batch=1),
        }
        for name, how in orders.items():
            batches = list(split.batches(2, **how))
            assert batches, name
            for batch_images, batch_masks in batches:
                assert is_fake_cuda(batch_images) and is_fake_cuda(batch_masks), name
                assert batch_images.dtype == torch.uint8 and batch_images.shape[1:] == (32, 32, 3)


def test_a_staged_split_stays_in_pageable_memory():
    """Only each batch's staging buffer is pinned: pinning the whole split rounds it up to a power
    of two of page-locked memory (a 20 GB split would lock 32 GB)."""
    images, masks = split_arrays()
    with fake_cuda():
        split = ResidentSplit(images, masks, np.arange(6), CUDA, resident=False)
        assert not split.images.is_pinned() and not split.masks.is_pinned()


@pytest.mark.parametrize(
    ("nbytes", "free", "total", "fits"),
    [
        (30 * 2**30, 139 * 2**30, 139 * 2**30, True),  # H200: a 30 GiB split stays on the GPU
        (60 * 2**30, 139 * 2**30, 139 * 2**30, False),  # … 60 GiB would leave too little
        (10 * 2**30, 16 * 2**30, 32 * 2**30, False),  # V100 32 GB, half taken by another job
        (5 * 2**30, 16 * 2**30, 32 * 2**30, True),
    ],
)
def test_the_resident_split_takes_a_bounded_share_of_the_gpu(nbytes, free, total, fits):
    assert devices.fits_beside_model(nbytes, free, total) is fits


# ---- item 3: precision by capability ------------------------------------------------------------


@pytest.mark.parametrize(
    ("device_type", "capability", "mixed", "expected"),
    [
        ("cuda", (7, 0), True, "fp16"),  # V100: bf16 only emulated, no bf16 convolutions in cuDNN
        ("cuda", (7, 5), True, "fp16"),  # T4
        ("cuda", (8, 0), True, "bf16"),  # A100
        ("cuda", (9, 0), True, "bf16"),  # H100 / H200
        ("cuda", (9, 0), False, "fp32"),
        ("cpu", None, True, "fp32"),
    ],
)
def test_precision_follows_the_gpu_capability(device_type, capability, mixed, expected):
    assert devices.precision_for(device_type, capability, mixed) == expected
    assert devices.precision_name(devices.AMP_DTYPES[expected]) == expected


# ---- item 2: a GPU without kernels fails at once -----------------------------------------------


def test_a_gpu_the_build_has_no_kernels_for_is_refused_naming_the_fix():
    assert not devices.has_kernels_for((7, 0), LOCK_ARCHS)  # V100
    assert devices.has_kernels_for((8, 9), LOCK_ARCHS)  # L4: runs the sm_86 binary
    assert devices.has_kernels_for((9, 0), LOCK_ARCHS)
    assert devices.has_kernels_for((7, 0), ["sm_80", "compute_70"])  # PTX compiles at load
    with pytest.raises(RuntimeError) as refused:
        devices.check_kernels("Tesla V100-SXM2-32GB", (7, 0), LOCK_ARCHS)
    message = str(refused.value)
    assert "Tesla V100-SXM2-32GB (sm_70)" in message and torch.__version__ in message
    assert devices.OLD_GPU_INSTALL in message and "sm_75" in message
    devices.check_kernels("NVIDIA H200", (9, 0), LOCK_ARCHS)  # no error


# ---- item 4: resume across precisions -----------------------------------------------------------


def _state(scaler_enabled: bool) -> TrainingState:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10)
    scaler = torch.amp.GradScaler("cpu", enabled=scaler_enabled)
    return TrainingState(model, optimizer, scheduler, scaler, torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("saved_with", "resumed_with"), [(False, True), (True, False)])
def test_a_checkpoint_resumes_in_another_precision(saved_with, resumed_with):
    """bf16/fp32 (no scaler, state ``{}``) resumed on a GPU that trains in fp16, and back. Before
    the fix: "The source state dict is empty, possibly because it was saved from a disabled
    instance of GradScaler"."""
    saved = _state(saved_with)
    checkpoint = saved.resumable() | {"epoch": 1}
    resumed = _state(resumed_with)
    resumed.restore(checkpoint)
    assert resumed.scaler.is_enabled() is resumed_with
    assert torch.equal(resumed.model.weight, saved.model.weight)


# ---- item 6: checkpoints hold CPU tensors ------------------------------------------------------


def test_checkpoints_hold_only_cpu_tensors():
    """The model, optimizer and best weights live on the GPU while training; what reaches the
    file is on the CPU, so a plain torch.load works on a machine without a GPU."""
    state = _state(False)
    with fake_cuda():
        state.model.to(CUDA)
        state.optimizer = torch.optim.AdamW(state.model.parameters(), lr=1e-3)
        state.keep_best(1, 0.5)
        state.completed = 2  # the best weights are stored beside the model's
        checkpoint = state.resumable()
        assert is_fake_cuda(checkpoint["model_state_dict"]["weight"])
        stored = cpu_tensors(checkpoint)
    tensors = _tensors(stored)
    assert len(tensors) >= 4 and all(t.device.type == "cpu" for t in tensors)


def _tensors(tree) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, dict):
        return [t for value in tree.values() for t in _tensors(value)]
    if isinstance(tree, (list, tuple)):
        return [t for value in tree for t in _tensors(value)]
    return []


# ---- item 7: synchronised BatchNorm without host syncs -------------------------------------------


@pytest.fixture
def one_rank_group(tmp_path):
    """A real (gloo) process group of one rank: the all-reduce is the identity, the code path is
    the data-parallel one."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_synchronised_batch_norm_equals_batch_norm_and_covers_timm_norm_act(one_rank_group):
    torch.manual_seed(0)
    plain = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        BatchNormAct2d(4, act_layer=torch.nn.GELU),
    )
    synced = distributed.synchronise_batch_norm(copy.deepcopy(plain))
    kinds = {type(m) for m in synced.modules()}
    assert (
        distributed.RankSyncedBatchNorm in kinds and distributed.RankSyncedBatchNormAct2d in kinds
    )
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    x = torch.randn(4, 3, 10, 10)
    torch.testing.assert_close(synced(x), plain(x), rtol=1e-4, atol=1e-5)
    for a, b in zip(synced.buffers(), plain.buffers(), strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-6)
    ddp = distributed.wrap(synced, torch.device("cpu"))
    assert (
        not ddp.forward_sync_buffers
        if hasattr(ddp, "forward_sync_buffers")
        else not ddp.broadcast_buffers
    )


def test_synchronised_batch_norm_reads_nothing_back_to_the_host():
    """On fake CUDA any host read (a boolean-mask index, ``.item()``) raises; the global-batch
    statistics are formed on the device alone, in fp32 under bf16 autocast."""
    norm = torch.nn.BatchNorm2d(4)
    with fake_cuda():
        norm.to(CUDA)
        x = torch.randn(2, 4, 8, 8, device=CUDA, dtype=torch.bfloat16)
        out = distributed._global_batch_norm(norm, x)
        assert is_fake_cuda(out) and out.dtype == torch.bfloat16


# ---- train → validate on fake CUDA ---------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning")
def test_training_forward_and_validation_run_on_cuda():
    """The training step's data path (batches, augmentation, channels_last input, bf16 forward,
    loss) and validation's confusion matrix, on fake CUDA: every tensor on one device, no host read.
    (torch's autograd engine and autocast need a real CUDA context: backward and bf16 are left to
    the GPU tests, `pytest -m gpu`.)"""
    images, masks = split_arrays(8, 64)
    model = build_model("convnext_tiny", image_size=64)
    loss_fn = build_loss("dice", torch.ones(NUM_CLASSES))
    with fake_cuda():
        device = torch.device("cuda")  # what an unindexed preference would give
        model.to(
            device=device, memory_format=torch.channels_last
        )  # one move: fakes can't swap twice
        loss_fn.to(device)
        split = ResidentSplit(images, masks, np.arange(8), device, resident=True)
        generator = torch.Generator().manual_seed(0)
        order = split.shuffled_order(generator)
        for batch_images, batch_masks in split.batches(4, order=order, drop_last=True):
            batch_images, batch_masks = augment(
                batch_images, batch_masks, generator, Augmentation(min_crop_scale=0.5)
            )
            with devices.autocast(device, torch.bfloat16):
                logits = model(to_model_input(batch_images, channels_last=True))
            loss = loss_fn(logits, batch_masks)
            assert is_fake_cuda(loss) and loss.shape == ()
        cm = validation_confusion(model, split, 4, torch.bfloat16, channels_last=True)
        assert is_fake_cuda(cm) and cm.shape == (NUM_CLASSES, NUM_CLASSES)


# ---- item 8: predict on a GPU ---------------------------------------------------------------------


class RunsOutOfMemoryAbove(torch.nn.Module):
    """The real model, which asks torch's allocator for more than any machine has when given more
    than ``limit`` tiles at a time: a real out-of-memory, as a large scan gives on a small GPU."""

    def __init__(self, model: torch.nn.Module, limit: int):
        super().__init__()
        self.model, self.limit, self.batches = model, limit, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        if x.shape[0] > self.limit:
            torch.empty(2**50, dtype=torch.uint8)
        return self.model(x)


class FailsLikeABrokenGpu(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        raise torch.AcceleratorError("CUDA error: an illegal memory access was encountered")


def _crops_checkpoint(tmp_path):
    """A model that sees scans as 64 px tiles at native resolution: the sliding window batches
    them."""
    view = predict.ModelView("crops", 64, 1.0).record()
    return save_random_checkpoint(tmp_path / "model_best.pt", scan_view=view)


def _run(tmp_path, model: torch.nn.Module, checkpoint, batch_size: int) -> predict.PredictRun:
    _, meta = predict.load_checkpoint(checkpoint, torch.device("cpu"))
    return predict.PredictRun(
        checkpoint=checkpoint,
        model=model,
        meta=meta,
        view=predict.ModelView.from_checkpoint(meta, str(checkpoint)),
        device=torch.device("cpu"),
        amp_dtype=None,
        out_dir=tmp_path / "out",
        settings=SlidingSettings(batch_size=batch_size),
        artwork_dir=None,
        overlay_max_side=256,
        products=predict.ProductSettings(viewer=False),
    )


def _scans(folder, n=2):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)).save(
            folder / f"scan{i}.png"
        )
    return sorted(folder.glob("*.png"))


def test_an_out_of_memory_scan_is_retried_with_fewer_tiles_then_fails_clearly(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    checkpoint = _crops_checkpoint(tmp_path)
    model, _ = predict.load_checkpoint(checkpoint, torch.device("cpu"))
    scans = _scans(tmp_path / "scans")
    assert predict.tile_batches(8) == [8, 4, 2, 1] and predict.tile_batches(1) == [1]

    fits_two = RunsOutOfMemoryAbove(model, limit=2)
    run = _run(tmp_path, fits_two, checkpoint, batch_size=8)
    run.masks_dir.mkdir(parents=True), run.overlays_dir.mkdir(parents=True)
    rows, failed, _ = predict._predict_all(run, scans, 0.0)
    assert not failed and [row["status"] for row in rows] == ["ok", "ok"]
    # Tile rows of 3 (130 px wide): batches of 8 and then 4 give 3 tiles, too many; 2 fit. Each
    # scan starts again at the configured batch.
    assert fits_two.batches[:3] == [3, 3, 2] and sum(b > 2 for b in fits_two.batches) == 4
    assert "retrying with 4" in caplog.text and "retrying with 2" in caplog.text

    never_fits = RunsOutOfMemoryAbove(model, limit=0)
    rows, failed, _ = predict._predict_all(_run(tmp_path, never_fits, checkpoint, 4), scans, 0.0)
    assert set(failed) == {"scan0.png", "scan1.png"}
    assert "even with one tile at a time" in failed["scan0.png"]


def test_a_sticky_cuda_error_stops_the_run(tmp_path):
    """Before the fix RuntimeError was a per-scan failure: every later scan "failed" with the same
    broken GPU and the rule succeeded."""
    checkpoint = _crops_checkpoint(tmp_path)
    broken = FailsLikeABrokenGpu()
    run = _run(tmp_path, broken, checkpoint, batch_size=4)
    run.masks_dir.mkdir(parents=True), run.overlays_dir.mkdir(parents=True)
    with pytest.raises(torch.AcceleratorError, match="illegal memory access"):
        predict._predict_all(run, _scans(tmp_path / "scans", 3), 0.0)
    assert broken.calls == 1


def test_the_run_fails_when_a_scan_failed_unless_asked_to_keep_going(tmp_path):
    checkpoint = save_random_checkpoint(tmp_path / "model_best.pt")
    scans = tmp_path / "scans"
    _scans(scans, 1)
    (scans / "broken.png").write_bytes(b"\x89PNG not really")
    summary = predict.predict_folder(scans, tmp_path / "out", checkpoint=checkpoint)
    assert set(summary.failed) == {"broken.png"} and summary.n_ok == 1
    predict.check_failures(summary, keep_going=True)
    with pytest.raises(predict.PredictError) as failed:
        predict.check_failures(summary, keep_going=False)
    assert "1 of 2 scan(s) failed: broken.png" in str(failed.value)
    assert "predict.keep_going: true" in str(failed.value)
