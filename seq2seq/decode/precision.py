"""Inference precision: fp32 (the default), bf16 autocast, or int8 dynamic quantization (CPU).

- `bf16`: matrix products in bfloat16 under `torch.autocast` (LayerNorm, softmax and the search's
  log-probabilities stay in float32). Fast where the hardware has bf16 units (CUDA; CPUs with
  AVX512-BF16 / AMX).
- `int8`: every `nn.Linear` (projections, feed-forward, the pre-softmax projection) gets int8 weights,
  with activations quantized on the fly per batch (`torch.ao.quantization.quantize_dynamic`); the
  embeddings stay float32. CPU only.

Both change the numbers a little, so BLEU can move: docs/BENCHMARKS.md records by how much.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "int8")


def check(precision: str, device: torch.device) -> None:
    """ValueError unless `precision` is known and runs on `device`."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "int8" and device.type != "cpu":
        raise ValueError(f"int8 (dynamic quantization) runs on CPU only, not {device.type}")


def prepare(model: nn.Module, precision: str, device: torch.device) -> nn.Module:
    """The model to decode with at `precision` (a quantized copy for int8; the model itself otherwise)."""
    check(precision, device)
    if precision != "int8":
        return model
    with warnings.catch_warnings():  # torch flags torch.ao.quantization as deprecated (for torchao); 2.13 still runs it
        warnings.filterwarnings("ignore", message=".*deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*deprecated", category=DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def autocast(precision: str, device: torch.device):
    """The context to run the model in: bf16 autocast, or nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
