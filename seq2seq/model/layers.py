"""The building blocks of Figure 1, shared by the encoder–decoder and the decoder-only model.

§3.4 embeddings × √d_model · §3.5 sinusoidal positions · §3.3 position-wise feed-forward ·
§3.1 residual connection + LayerNorm around every sub-layer · §5.4 dropout on sub-layer outputs and on
the embedding + position sums.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seq2seq.model.attention import MultiHeadAttention


def sinusoidal_table(max_positions: int, d_model: int, layout: str = "interleaved") -> torch.Tensor:
    """§3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)).

    `interleaved` puts sin and cos on even and odd dimensions as the paper writes it; `halves` lays them
    out as [sin | cos] (Marian / Hugging Face), the same function with permuted dimensions.
    """
    pos = torch.arange(max_positions, dtype=torch.float64)[:, None]
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angles = pos * inv_freq  # (P, d_model/2)
    table = torch.zeros(max_positions, d_model, dtype=torch.float64)
    if layout == "interleaved":
        table[:, 0::2], table[:, 1::2] = angles.sin(), angles.cos()
    elif layout == "halves":
        half = d_model // 2
        table[:, :half], table[:, half:] = angles.sin(), angles.cos()
    else:
        raise ValueError(f"unknown positional layout {layout!r}; expected interleaved or halves")
    return table.float()


class Embeddings(nn.Module):
    """§3.4–3.5: Dropout(Embedding(x) · √d_model + PE(position)). `positions`: (T,) or (B, T)."""

    def __init__(self, embedding: nn.Embedding, max_positions: int, dropout: float, layout: str = "interleaved"):
        super().__init__()
        self.embedding = embedding
        self.scale = math.sqrt(embedding.embedding_dim)
        self.register_buffer("positional", sinusoidal_table(max_positions, embedding.embedding_dim, layout),
                             persistent=False)
        self.dropout = nn.Dropout(dropout)

    @property
    def max_positions(self) -> int:
        return self.positional.size(0)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.embedding(tokens) * self.scale + self.positional[positions])


class FeedForward(nn.Module):
    """§3.3: FFN(x) = max(0, x W1 + b1) W2 + b2."""

    def __init__(self, d_model: int, d_ff: int, activation_dropout: float = 0.0):
        super().__init__()
        self.w1, self.w2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(activation_dropout)  # not in the paper; 0 by default

    def forward(self, x):
        return self.w2(self.dropout(torch.relu(self.w1(x))))


class Residual(nn.Module):
    """§3.1 and §5.4: post-norm LayerNorm(x + Dropout(Sublayer(x))) as in the paper, or pre-norm
    x + Dropout(Sublayer(LayerNorm(x))) (Annotated Transformer, tensor2tensor v2) by model.norm=pre."""

    def __init__(self, d_model: int, dropout: float, norm: str = "post"):
        super().__init__()
        if norm not in ("post", "pre"):
            raise ValueError(f"unknown norm {norm!r}; expected post or pre")
        self.pre = norm == "pre"
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, sublayer):
        if self.pre:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))


class EncoderLayer(nn.Module):
    """§3.1: self-attention, then feed-forward. With a causal mask and a cache this is also the block of
    the decoder-only model (a decoder layer without cross-attention)."""

    def __init__(self, cfg):
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.attention_dropout)
        self.feed_forward = FeedForward(cfg.d_model, cfg.d_ff, cfg.activation_dropout)
        self.sublayers = nn.ModuleList(Residual(cfg.d_model, cfg.dropout, cfg.norm) for _ in range(2))

    def forward(self, x, mask=None, is_causal=False, cache: dict | None = None):
        x = self.sublayers[0](x, lambda y: self.self_attn(y, mask=mask, is_causal=is_causal, cache=cache))
        return self.sublayers[1](x, self.feed_forward)


class DecoderLayer(nn.Module):
    """§3.1: masked self-attention, attention over the encoder output ("memory"), feed-forward."""

    def __init__(self, cfg):
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.attention_dropout)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.attention_dropout, cross=True)
        self.feed_forward = FeedForward(cfg.d_model, cfg.d_ff, cfg.activation_dropout)
        self.sublayers = nn.ModuleList(Residual(cfg.d_model, cfg.dropout, cfg.norm) for _ in range(3))

    def forward(self, x, memory, memory_mask, cache: dict | None = None):
        self_cache = cross_cache = None
        if cache is not None:
            self_cache, cross_cache = cache.setdefault("self", {}), cache.setdefault("cross", {})
        x = self.sublayers[0](x, lambda y: self.self_attn(y, is_causal=True, cache=self_cache))
        x = self.sublayers[1](x, lambda y: self.cross_attn(y, memory, mask=memory_mask, cache=cross_cache))
        return self.sublayers[2](x, self.feed_forward)


class Stack(nn.Module):
    """N identical layers; pre-norm adds the final LayerNorm that post-norm does not need."""

    def __init__(self, layer_cls, n: int, cfg):
        super().__init__()
        self.layers = nn.ModuleList(layer_cls(cfg) for _ in range(n))
        self.final_norm = nn.LayerNorm(cfg.d_model) if cfg.norm == "pre" else nn.Identity()

    def forward(self, x, *args, caches: list | None = None, **kwargs):
        for i, layer in enumerate(self.layers):
            x = layer(x, *args, cache=None if caches is None else caches[i], **kwargs)
        return self.final_norm(x)


def init_weights(module: nn.Module, d_model: int) -> None:
    """Xavier-uniform linear weights, zero biases (as fairseq), and the shared embedding N(0, d_model^-0.5):
    with the √d_model scale of §3.4 the embedded tokens then have unit variance and the tied output
    projection starts with small logits."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, d_model**-0.5)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
