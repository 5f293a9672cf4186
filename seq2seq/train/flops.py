"""Model FLOPs of a training step, the numerator of MFU (model FLOPs utilisation).

    6 × (encoder non-embedding parameters × source tokens
         + (decoder non-embedding parameters + output projection) × target tokens)
    + attention scores and weighted values for the actual (unpadded) lengths, forward + backward

(the decoder-only model: 6 × (its non-embedding parameters + output projection) × all tokens, plus its
attention). Each attention matrix costs 2·d_model FLOPs per (query, key) pair for QKᵀ and as much for
the weighted sum of V, forward; backward doubles that twice over, hence 3 × 4 · d_model per pair.
Causal masks are counted as full squares, as in PaLM's appendix B.
"""

from __future__ import annotations

from torch import nn


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class FlopCounter:
    def __init__(self, model: nn.Module):
        cfg = model.cfg
        self.kind, self.d = cfg.kind, cfg.d_model
        if self.kind == "transformer":
            output = model.generator.weight.numel()
            self.encoder, self.decoder = _params(model.encoder), _params(model.decoder) + output
            self.enc_layers, self.dec_layers = cfg.encoder_layers, cfg.decoder_layers
        else:  # tied: the one table is the output projection, and looking tokens up costs no FLOPs
            self.decoder, self.layers = _params(model), cfg.layers

    def __call__(self, batch) -> float:
        sq = batch.length_products  # (Σ src², Σ tgt², Σ src·tgt) or (Σ len², 0, 0)
        if self.kind == "transformer":
            dense = 6 * (self.encoder * batch.src_tokens + self.decoder * batch.tgt_tokens)
            attention = 12 * self.d * (self.enc_layers * sq[0] + self.dec_layers * (sq[1] + sq[2]))
        else:
            dense = 6 * self.decoder * (batch.src_tokens + batch.tgt_tokens)
            attention = 12 * self.d * self.layers * sq[0]
        return float(dense + attention)
