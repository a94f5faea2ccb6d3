"""CUDA tensors without a GPU: torch's FakeTensorMode creates tensors on ``cuda:0`` in this
CUDA-built torch and runs every op under torch's own device, dtype and shape rules, so code that
mixes devices, or reads a value back to the host (a synchronisation), fails here as it would on a
GPU. Fake tensors hold no data: code under test runs up to its first host read.

The one op the project relies on that FakeTensorMode leaves unimplemented is pinning; it is modelled
here as torch documents ``Tensor.pin_memory``: a pinned copy of a dense CPU tensor, and for any
other tensor the error torch raises ("cannot pin 'torch.cuda.ByteTensor' only dense CPU tensors
can be pinned")."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch._subclasses import fake_impls
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

CUDA = torch.device("cuda", 0)
_PIN_OPS = (torch.ops.aten._pin_memory.default,)


def _pin_memory(fake_mode: FakeTensorMode, func, tensor: torch.Tensor, device=None):
    if tensor.device.type != "cpu" or tensor.layout != torch.strided:
        raise RuntimeError(f"cannot pin '{tensor.type()}' only dense CPU tensors can be pinned")
    with fake_mode:
        return torch.empty_like(tensor)


@contextlib.contextmanager
def fake_cuda() -> Iterator[FakeTensorMode]:
    """Inside: tensors (and modules moved with ``.to("cuda")``) are fake; real CPU tensors made
    before may be used as inputs, as host data would be."""
    saved = {op: fake_impls.op_implementations_dict[op] for op in _PIN_OPS}
    fake_impls.op_implementations_dict.update({op: _pin_memory for op in _PIN_OPS})
    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            yield mode
    finally:
        fake_impls.op_implementations_dict.update(saved)


def is_fake_cuda(tensor: torch.Tensor) -> bool:
    return isinstance(tensor, FakeTensor) and tensor.device == CUDA
