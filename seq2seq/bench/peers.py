"""The models we measure ourselves against, built at the shape of one of our model configs.

- Hugging Face `transformers`: a MarianMTModel from the identical MarianConfig (the export's,
  seq2seq/export/marian.py) for the encoder–decoder; a GPT2LMHeadModel from the export's GPT2Config for
  the decoder-only twin (GPT-2 is pre-norm: the same shape, not the same function, for our post-norm).
- `torch.nn.Transformer` (encoder–decoder) and `torch.nn.TransformerEncoder` under a causal mask
  (decoder-only), post-norm and ReLU as the paper, with our embeddings, sinusoids and tied projection.

Each comes with `logits(batch)`, so one training step serves every implementation.
"""

from __future__ import annotations

import torch
from torch import nn

from seq2seq.data.tokenizer import PAD
from seq2seq.export.gpt2 import gpt2_config
from seq2seq.export.marian import marian_config
from seq2seq.model.build import build_model
from seq2seq.model.layers import Embeddings

IMPLEMENTATIONS = ("ours", "hf", "torch")


class _TorchPeer(nn.Module):
    """Our embeddings (§3.4–3.5) and tied pre-softmax projection around a torch.nn body."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        table = nn.Embedding(vocab_size, cfg.d_model, padding_idx=PAD)
        nn.init.normal_(table.weight, 0.0, cfg.d_model**-0.5)
        self.embeddings = Embeddings(table, cfg.max_positions, cfg.dropout)
        self.generator = nn.Linear(cfg.d_model, vocab_size, bias=False)
        self.generator.weight = table.weight

    def embed(self, tokens):
        return self.embeddings(tokens, torch.arange(tokens.size(1), device=tokens.device))


class TorchEncoderDecoder(_TorchPeer):
    """nn.Transformer at the shape of an encoder–decoder config, tied embeddings and projection."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__(cfg, vocab_size)
        self.transformer = nn.Transformer(cfg.d_model, cfg.heads, cfg.encoder_layers, cfg.decoder_layers, cfg.d_ff,
                                          cfg.dropout, activation="relu", batch_first=True, norm_first=False)

    def logits(self, batch):
        src_pad, size = batch.src == PAD, batch.tgt_in.size(1)
        causal = nn.Transformer.generate_square_subsequent_mask(size, device=batch.tgt_in.device)
        x = self.transformer(self.embed(batch.src), self.embed(batch.tgt_in), tgt_mask=causal, tgt_is_causal=True,
                             src_key_padding_mask=src_pad, memory_key_padding_mask=src_pad)
        return self.generator(x)


class TorchDecoderOnly(_TorchPeer):
    """nn.TransformerEncoder under a causal mask at the shape of a decoder-only config."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__(cfg, vocab_size)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, cfg.d_ff, cfg.dropout, activation="relu",
                                           batch_first=True, norm_first=False)
        self.stack = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)

    def logits(self, batch):
        size = batch.tgt_in.size(1)
        causal = nn.Transformer.generate_square_subsequent_mask(size, device=batch.tgt_in.device)
        return self.generator(self.stack(self.embed(batch.tgt_in), mask=causal, is_causal=True))


class HuggingFace(nn.Module):
    """A Hugging Face model of the config's shape, random init, behind `logits(batch)`."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        self.kind = cfg.kind
        if cfg.kind == "transformer":
            from transformers import MarianMTModel  # noqa: PLC0415 - lazy: optional package (bench extra)

            self.hf = MarianMTModel(marian_config(cfg, vocab_size))
        else:
            from transformers import GPT2LMHeadModel  # noqa: PLC0415 - lazy: optional package (bench extra)

            self.hf = GPT2LMHeadModel(gpt2_config(cfg, vocab_size))

    def logits(self, batch):
        if self.kind == "transformer":
            return self.hf(input_ids=batch.src, attention_mask=(batch.src != PAD).long(),
                           decoder_input_ids=batch.tgt_in, use_cache=False).logits
        return self.hf(input_ids=batch.tgt_in, use_cache=False).logits


def build(implementation: str, cfg, vocab_size: int) -> nn.Module:
    """A model with `logits(batch)`: ours (build_model), Hugging Face's or torch.nn's."""
    if implementation == "ours":
        return build_model(cfg, vocab_size)
    if implementation == "hf":
        return HuggingFace(cfg, vocab_size)
    if implementation == "torch":
        return (TorchEncoderDecoder if cfg.kind == "transformer" else TorchDecoderOnly)(cfg, vocab_size)
    raise ValueError(f"unknown implementation {implementation!r}; expected one of {IMPLEMENTATIONS}")
