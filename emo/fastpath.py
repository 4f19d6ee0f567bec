"""Training faster on the CPU (issue 46): two changes to how a step runs, measured in ``emo.bench --train``.

A step of the recipe on 2 cores is mostly element-wise work on large activations (batch norm, ReLU, dropout,
the squeeze-and-excitation product), so it is bound by memory, not arithmetic
(``experiments/train_profile/``). Two costs there are not the network's own:

1. **Fresh pages.** glibc's ``malloc`` serves every allocation above its mmap threshold (at most 32 MB) with a
   new ``mmap`` and gives it back on ``free``; the first-layer activations of a 128-face batch are 38-75 MB, so
   every one is faulted in page by page, every step. :func:`keep_freed_memory` raises the threshold and keeps
   freed memory for reuse (``mallopt``): the same arithmetic, about 15% less time a step.
2. **Dropout's masks.** ``torch.nn.Dropout`` draws one float per element with a serial generator and stores
   a float mask; :class:`BitsDropout` draws 16 random bits per element with NumPy's PCG64 (seeded from
   torch's generator, so ``torch.manual_seed`` and a resumed run's saved RNG state still decide it) and keeps a
   1-byte mask. The drop probability is rounded to a multiple of 1/65536 (0.1 becomes 0.1000061) and the kept
   values are scaled by the exact inverse, so the expected output is the input, as with ``nn.Dropout``; the
   masks differ, so a run is not bit-for-bit the run of before.

Where the CPU has AMX (Intel Xeon from Sapphire Rapids on), a third: :func:`implicit_bf16`, around the
training steps only, has oneDNN's float32 convolutions multiply in bfloat16 and accumulate in float32 (mixed
precision without casts in the model; validation and inference stay float32).

:func:`use_fast_path` applies the first two to a model on the CPU, and the trainer wraps its steps in the third,
unless the recipe's ``fast_path`` is off (``python -m emo.train --no-fast-path``). None changes a checkpoint:
dropout holds no weights.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Have glibc keep large freed blocks for reuse (process-wide, once); False where that is not possible
    (not Linux, or a C library without ``mallopt``). Memory is given back to the system when the process ends."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
                and mallopt(_M_TOP_PAD, 1 << 28))


class _BitsDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: int) -> torch.Tensor:  # type: ignore[override]
        n = x.numel()
        seed = int(torch.randint(0, 2**62, (1,)))  # from torch's generator: manual_seed and resume decide it
        raw = np.random.Generator(np.random.PCG64(seed)).bit_generator.random_raw((n + 3) // 4)
        bits = torch.from_numpy(raw.view(np.int16)[:n])  # 16 uniform random bits per element, as -32768..32767
        mask = bits < keep - 32768  # kept with probability keep / 65536
        if x.is_contiguous():
            mask = mask.view(x.shape)
        else:  # laid out as x is in memory (channels-last), so the products below read both in order
            strides = x.stride()
            order = sorted(range(x.dim()), key=lambda d: -strides[d])
            mask = mask.view([x.shape[d] for d in order]).permute([order.index(d) for d in range(x.dim())])
        ctx.scale = 65536 / keep
        ctx.save_for_backward(mask)
        return x.mul(mask).mul_(ctx.scale)  # (one new tensor, not two)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (mask,) = ctx.saved_tensors
        return grad.mul(mask).mul_(ctx.scale), None


class BitsDropout(nn.Module):
    """``nn.Dropout(p)`` with masks from 16 random bits per element (see the module's text): the same
    expected output, about half the time forward and backward on the CPU (experiments/train_speed/allocator.txt),
    and a quarter of the memory for the mask."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability p={p!r} must be in [0, 1)")
        self.p = p
        self.keep = 65536 - round(p * 65536)  # elements are kept with probability keep / 65536

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.keep == 65536 or x.numel() == 0:
            return x
        return _BitsDropout.apply(x, self.keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


@functools.lru_cache(maxsize=1)
def has_amx() -> bool:
    """Whether this CPU has AMX's bfloat16 tiles (Intel Xeon from Sapphire Rapids on), read from /proc/cpuinfo."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


@contextlib.contextmanager
def implicit_bf16(enabled: bool = True) -> Iterator[bool]:
    """Within this block, where the CPU has AMX, oneDNN's float32 convolutions and matrix products multiply in
    bfloat16 and accumulate in float32 (``torch.backends.mkldnn.*.fp32_precision = "bf16"``): weights,
    activations and gradients stay float32 tensors. Elsewhere (no AMX, ``enabled`` False, or the environment
    variable ``EMO_IMPLICIT_BF16=0``) nothing changes.
    Yields whether it is on; the previous settings come back on leaving."""
    if not (enabled and has_amx() and os.environ.get("EMO_IMPLICIT_BF16", "1") != "0"):
        yield False
        return
    conv, matmul = torch.backends.mkldnn.conv, torch.backends.mkldnn.matmul
    before = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = matmul.fp32_precision = "bf16"
    try:
        yield True
    finally:
        conv.fp32_precision, matmul.fp32_precision = before


def use_fast_path(model: nn.Module) -> nn.Module:
    """Every ``nn.Dropout`` of ``model`` replaced by a :class:`BitsDropout` of the same ``p`` (in place; the
    weights and the checkpoint are unchanged), and :func:`keep_freed_memory` applied. Returns ``model``."""
    keep_freed_memory()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, BitsDropout(child.p).train(child.training))
    return model
