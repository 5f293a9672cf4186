"""Attention weights of a translation (§3.2), read from one teacher-forced pass of the model over
(source, translation) with weight recording on. The attention figures and `translate --alignments`
both read them here.

Layout of every map: the source axis holds the source pieces then the source's end marker (<eos> for
the encoder–decoder, <sep> for the decoder-only model; S = pieces + 1); the target axis holds the
generated pieces then <eos> (T = pieces + 1), row i being the query that *produced* target piece i.
Weights are the softmax of eq. 1 before attention dropout: padding gets exactly 0.

The decoder-only model has one stack over `source <sep> target`; its maps are blocks of that one
self-attention matrix: `encoder` = source → source, `cross` = target → source (what plays the role of
cross-attention), `decoder` = target → (<sep>, target pieces), <sep> standing where <bos> stands. Its
rows sum to 1 only over both blocks together (<sep> counted once); the encoder–decoder's rows sum to 1
in each map.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seq2seq.data.batching import collate
from seq2seq.data.tokenizer import EOS, SEP
from seq2seq.model.attention import record_attention


@dataclass
class AttentionMaps:
    """All attention weights of one (source, target) pair, per layer and head."""

    source: list[int]  # source ids, then the end marker (<eos>, or <sep> for the decoder-only model)
    target: list[int]  # generated ids, then <eos>
    encoder: torch.Tensor  # (layers, heads, S, S) source self-attention
    decoder: torch.Tensor  # (layers, heads, T, T) masked target self-attention
    cross: torch.Tensor  # (layers, heads, T, S) target → source (the "spotlight")


@torch.no_grad()
def attention_maps(model, sources: list[list[int]], targets: list[list[int]]) -> list[AttentionMaps]:
    """The maps of each (source ids, target ids) pair, computed in one padded batch (model in eval mode)."""
    pairs = list(zip(sources, targets))
    device = next(model.parameters()).device
    if model.kind == "transformer":
        with record_attention(model):
            model.logits(collate(pairs, "pair").to(device))
            weights = {name: _stack([getattr(layer, attr).weights for layer in stack.layers])
                       for name, stack, attr in (("encoder", model.encoder, "self_attn"),
                                                 ("decoder", model.decoder, "self_attn"),
                                                 ("cross", model.decoder, "cross_attn"))}
        out = []
        for b, (src, tgt) in enumerate(pairs):
            s, t = len(src) + 1, len(tgt) + 1
            out.append(AttentionMaps(list(src) + [EOS], list(tgt) + [EOS], weights["encoder"][b, ..., :s, :s],
                                     weights["decoder"][b, ..., :t, :t], weights["cross"][b, ..., :t, :s]))
        return out
    with record_attention(model):  # decoder-only: blocks of the one stack's attention over `s <sep> t`
        model.logits(collate(pairs, "concat").to(device))
        weights = _stack([layer.self_attn.weights for layer in model.decoder.layers])
    out = []
    for b, (src, tgt) in enumerate(pairs):
        n = len(src)
        rows = slice(n, n + len(tgt) + 1)  # <sep> produces the first target piece, the last piece <eos>
        out.append(AttentionMaps(list(src) + [SEP], list(tgt) + [EOS], weights[b, ..., : n + 1, : n + 1],
                                 weights[b, ..., rows, rows], weights[b, ..., rows, : n + 1]))
    return out


def _stack(per_layer: list[torch.Tensor]) -> torch.Tensor:
    """[(B, h, Tq, Tk)] * layers -> (B, layers, h, Tq, Tk) on the CPU."""
    return torch.stack(per_layer, dim=1).float().cpu()


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


def alignments(model, sources: list[list[int]], targets: list[list[int]],
               layer: int = -1) -> list[list[tuple[int, int]]]:
    """Hard alignments of each pair from the cross-attention of `layer` (default: the last), heads averaged."""
    return [hard_alignment(m.cross[layer].mean(dim=0)) for m in attention_maps(model, sources, targets)]


def format_alignment(pairs: list[tuple[int, int]]) -> str:
    """fairseq's `S-T` text form: "0-0 1-2 2-1"."""
    return " ".join(f"{s}-{t}" for s, t in pairs)
