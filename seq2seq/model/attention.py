"""Multi-head scaled dot-product attention (§3.2).

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V                         (eq. 1)
    MultiHead(Q, K, V) = Concat(head_1, …, head_h) Wᴼ,  head_i = Attention(Q W_iQ, K W_iK, V W_iV)

Two paths compute the same thing: `F.scaled_dot_product_attention` (fast; fused kernels) and a plain
reference that also returns the weights, taken when weights are being recorded (attention pictures).
Masks are boolean, broadcastable to (batch, heads, queries, keys), **True = may attend** (SDPA's polarity).
An optional cache (a dict per attention module) makes incremental decoding cost one position per step:
self-attention appends the new keys/values; cross-attention computes the memory's keys/values once.
Cross-attention accepts B·g query rows over a memory of B rows (a sentence's g beam hypotheses share
its memory), so beam search never copies the memory or its keys/values per hypothesis.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


def reference_attention(q, k, v, mask=None, dropout=0.0, training=False):
    """Eq. 1 written out; returns (output, weights). Fully masked rows give NaN, as softmax(-inf…) does."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return F.dropout(weights, dropout, training) @ v, weights


class MultiHeadAttention(nn.Module):
    """§3.2.2. Self-attention projects Q, K, V with one fused matrix; cross-attention projects K, V of the memory
    together."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, cross: bool = False):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        self.heads, self.d_k, self.cross = heads, d_model // heads, cross
        if cross:
            self.q_proj = nn.Linear(d_model, d_model)
            self.kv_proj = nn.Linear(d_model, 2 * d_model)
        else:
            self.qkv_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)  # Wᴼ
        self.dropout = dropout  # on the weights; 0 in the paper (model.attention_dropout)
        self.record = False  # when True, take the reference path and keep the weights in .weights
        self.weights: torch.Tensor | None = None

    def _split(self, x):  # (B, T, d_model) -> (B, h, T, d_k)
        return x.unflatten(-1, (self.heads, self.d_k)).transpose(1, 2)

    def forward(self, x, memory=None, mask=None, is_causal=False, cache: dict | None = None):
        """x: (B, Tq, d). memory: (B, Tk, d) for cross-attention. Returns (B, Tq, d)."""
        group = 1
        if self.cross:
            q = self._split(self.q_proj(x))
            if cache is not None and "k" in cache:
                k, v = cache["k"], cache["v"]
            else:
                k, v = map(self._split, self.kv_proj(memory).chunk(2, dim=-1))
                if cache is not None:
                    cache["k"], cache["v"] = k, v
            group = q.size(0) // k.size(0)
            if group > 1:  # `group` consecutive rows (the beam of one sentence) share one memory row:
                q = q.unflatten(0, (-1, group)).transpose(1, 2).flatten(2, 3)  # their queries become one row's
        else:
            q, k, v = map(self._split, self.qkv_proj(x).chunk(3, dim=-1))
            if cache is not None:
                if "k" in cache:
                    k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
                cache["k"], cache["v"] = k, v
        if is_causal and (mask is not None or q.size(2) != k.size(2) or self.record):
            # SDPA's is_causal is top-left aligned and takes no extra mask: spell the mask out, aligned so
            # that the last query (the newest position when a cache holds the earlier keys) sees every key.
            causal = torch.ones(q.size(2), k.size(2), dtype=torch.bool, device=q.device)
            causal = causal.tril(diagonal=k.size(2) - q.size(2))
            mask, is_causal = (causal if mask is None else mask & causal), False
        dropout = self.dropout if self.training else 0.0
        if self.record:
            out, self.weights = reference_attention(q, k, v, mask, dropout, self.training)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal)
        if group > 1:
            out = _unfold_group(out, group)
            if self.record:
                self.weights = _unfold_group(self.weights, group)
        return self.out_proj(out.transpose(1, 2).flatten(-2))


def _unfold_group(x: torch.Tensor, group: int) -> torch.Tensor:
    """(B, h, group·T, ·) -> (B·group, h, T, ·): undo the folding of a group's queries into one row."""
    return x.unflatten(2, (group, -1)).transpose(1, 2).flatten(0, 1)


@contextmanager
def record_attention(model: nn.Module):
    """Within the block every attention module keeps its last weights in `.weights` (B, h, Tq, Tk)."""
    modules = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    for m in modules:
        m.record = True
    try:
        yield modules
    finally:
        for m in modules:
            m.record, m.weights = False, None


def padding_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(B, T) tokens -> (B, 1, 1, T) boolean mask, True at real (non-pad) keys."""
    return (tokens != pad_id)[:, None, None, :]


def causal_mask(size: int, device=None) -> torch.Tensor:
    """(1, 1, T, T) lower-triangular mask: position i may attend to positions ≤ i (§3.2.3)."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()[None, None]
