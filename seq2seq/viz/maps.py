"""Attention weights of a translation (§3.2), read from one teacher-forced pass of the model over
(source, translation) with weight recording on. The attention figures and `translate --alignments`
both read them here.

Layout of every map: the source axis holds the source pieces then the source's <eos> (S = pieces + 1);
the target axis holds the generated pieces then <eos> (T = pieces + 1), row i being the decoder query
that *produced* target piece i (its input is <bos> and the pieces before i). Weights are the softmax
of eq. 1 before attention dropout, so every row sums to 1 and padding gets exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seq2seq.data.batching import collate
from seq2seq.model.attention import record_attention


@dataclass
class AttentionMaps:
    """All attention weights of one (source, target) pair, per layer and head."""

    source: list[int]  # source ids, then <eos>
    target: list[int]  # generated ids, then <eos>
    encoder: torch.Tensor  # (layers, heads, S, S) encoder self-attention
    decoder: torch.Tensor  # (layers, heads, T, T) masked decoder self-attention
    cross: torch.Tensor  # (layers, heads, T, S) decoder → encoder output (the "spotlight")


@torch.no_grad()
def attention_maps(model, sources: list[list[int]], targets: list[list[int]]) -> list[AttentionMaps]:
    """The maps of each (source ids, target ids) pair, computed in one padded batch (model in eval mode).

    Only the encoder–decoder (kind "transformer") has cross-attention modules to read.
    """
    if model.kind != "transformer":
        raise ValueError(f"attention maps are read from an encoder-decoder (kind transformer), not kind {model.kind!r}")
    from seq2seq.data.tokenizer import EOS

    batch = collate(list(zip(sources, targets)), "pair").to(next(model.parameters()).device)
    with record_attention(model):
        model.logits(batch)
        layers = {
            "encoder": [layer.self_attn.weights for layer in model.encoder.layers],
            "decoder": [layer.self_attn.weights for layer in model.decoder.layers],
            "cross": [layer.cross_attn.weights for layer in model.decoder.layers],
        }
    stacked = {name: torch.stack(ws, dim=1).float().cpu() for name, ws in layers.items()}  # (B, L, h, Tq, Tk)
    out = []
    for b, (src, tgt) in enumerate(zip(sources, targets)):
        s, t = len(src) + 1, len(tgt) + 1
        out.append(AttentionMaps(list(src) + [EOS], list(tgt) + [EOS], encoder=stacked["encoder"][b, :, :, :s, :s],
                                 decoder=stacked["decoder"][b, :, :, :t, :t], cross=stacked["cross"][b, :, :, :t, :s]))
    return out


def cross_attention(model, src_ids: list[int], tgt_ids: list[int], layer: int | None = -1,
                    average_heads: bool = True) -> torch.Tensor:
    """Cross-attention of one pair: (T, S) for one layer averaged over heads (the default, last layer);
    (heads, T, S) with `average_heads=False`; every layer stacked in front with `layer=None`."""
    weights = attention_maps(model, [src_ids], [tgt_ids])[0].cross  # (L, h, T, S)
    if layer is not None:
        weights = weights[layer]
    return weights.mean(dim=-3) if average_heads else weights


def hard_alignment(cross: torch.Tensor) -> list[tuple[int, int]]:
    """(source position, target position) pairs from a head-averaged (T, S) map: each target piece
    linked to the source piece it attends to most, <eos> rows and columns left out (fairseq's
    `--print-alignment`)."""
    if cross.size(0) <= 1 or cross.size(1) <= 1:
        return []
    best = cross[:-1, :-1].argmax(dim=1).tolist()
    return [(s, t) for t, s in enumerate(best)]


def alignments(model, sources: list[list[int]], targets: list[list[int]], layer: int = -1) -> list[list[tuple[int, int]]]:
    """Hard alignments of each pair from the cross-attention of `layer` (default: the last), heads averaged."""
    return [hard_alignment(m.cross[layer].mean(dim=0)) for m in attention_maps(model, sources, targets)]


def format_alignment(pairs: list[tuple[int, int]]) -> str:
    """fairseq's `S-T` text form: "0-0 1-2 2-1"."""
    return " ".join(f"{s}-{t}" for s, t in pairs)
