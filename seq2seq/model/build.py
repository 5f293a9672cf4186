"""build_model(cfg) for either kind, and parameter counts."""

from __future__ import annotations

from torch import nn

from seq2seq.model.gpt import DecoderOnly
from seq2seq.model.transformer import EncoderDecoder
from seq2seq.schema import KINDS, as_model_config

__all__ = ["KINDS", "build_model", "count_parameters"]


def build_model(model_cfg, vocab_size: int | None = None) -> nn.Module:
    """The model named by `model_cfg.kind`; `vocab_size` (the tokenizer's) overrides the config's request.
    `model_cfg` may be a composed DictConfig or a dict: it becomes its kind's schema first (`as_model_config`,
    through `OmegaConf.to_object`), so every model is built from a checked config with its defaults filled
    in, and `model.cfg` is that dataclass. A ConfigError (a ValueError) says what is wrong."""
    cfg = as_model_config(model_cfg)
    vocab = vocab_size or cfg.vocab_size
    if cfg.kind == "transformer":
        return EncoderDecoder(cfg, vocab)
    return DecoderOnly(cfg, vocab)  # as_model_config knows no other kind


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters; a tied matrix counts once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
