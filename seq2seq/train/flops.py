"""Model FLOPs of a training step, the numerator of MFU (model FLOPs utilisation).

A weight matrix costs 2 FLOPs per parameter per token it is applied to, forward; backward doubles that
twice over (gradients for the input and for the weight): 6 per parameter per token. So

    encoder–decoder: 6 × ( encoder layers × source tokens
                         + decoder layers without cross-attention's K/V × target tokens
                         + cross-attention's K/V projections × source tokens   (§3.2.3: keys and values
                                                                                  come from the memory)
                         + output projection × target labels )
    decoder-only:    6 × ( layers × tokens read (|s| + 1 + |t|)  +  output projection × labels )

plus attention: each (query, key) pair costs 2·d_model FLOPs for QKᵀ and as much for the weighted sum of
V, forward; backward doubles that twice over, hence 3 × 4 · d_model per pair and layer, for the actual
(unpadded) lengths. Causal masks are counted as full squares, as in PaLM's appendix B. Looking a token up
in an embedding table costs none. `tests/test_flops.py` holds this against `torch.utils.flop_counter`.
"""

from __future__ import annotations

from torch import nn


def _params(module: nn.Module) -> int:
    """Entries of the module's weight matrices: biases and LayerNorm gains are not matrix products."""
    return sum(p.numel() for p in module.parameters() if p.dim() >= 2)


class FlopCounter:
    def __init__(self, model: nn.Module):
        cfg = model.cfg
        self.kind, self.d = cfg.kind, cfg.d_model
        self.output = model.generator.weight.numel()  # the pre-softmax projection, applied at labels only
        self.decoder = _params(model.decoder)
        if self.kind == "transformer":
            self.encoder = _params(model.encoder)
            self.cross_kv = sum(_params(layer.cross_attn.kv_proj) for layer in model.decoder.layers)
            self.decoder -= self.cross_kv
            self.enc_layers, self.dec_layers = cfg.encoder_layers, cfg.decoder_layers
        else:
            self.layers = cfg.layers

    def __call__(self, batch) -> float:
        sq = batch.length_products  # (Σ src², Σ tgt², Σ src·tgt) or (Σ len², 0, 0)
        labels = 6 * self.output * batch.label_tokens
        if self.kind == "transformer":
            dense = 6 * ((self.encoder + self.cross_kv) * batch.src_tokens + self.decoder * batch.tgt_tokens)
            attention = 12 * self.d * (self.enc_layers * sq[0] + self.dec_layers * (sq[1] + sq[2]))
        else:
            dense = 6 * self.decoder * batch.input_tokens
            attention = 12 * self.d * self.layers * sq[0]
        return float(dense + labels + attention)
