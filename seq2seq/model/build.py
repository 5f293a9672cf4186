"""build_model(cfg) for either kind, and parameter counts."""

from __future__ import annotations

from torch import nn

from seq2seq.model.gpt import DecoderOnly
from seq2seq.model.transformer import EncoderDecoder

KINDS = ("transformer", "gpt")


def build_model(model_cfg, vocab_size: int | None = None) -> nn.Module:
    """The model named by `model_cfg.kind`; `vocab_size` (the tokenizer's) overrides the config's request."""
    vocab = vocab_size or model_cfg.vocab_size
    if model_cfg.kind == "transformer":
        return EncoderDecoder(model_cfg, vocab)
    if model_cfg.kind == "gpt":
        return DecoderOnly(model_cfg, vocab)
    raise ValueError(f"unknown model kind {model_cfg.kind!r}; expected one of {KINDS}")


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters; a tied matrix counts once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
