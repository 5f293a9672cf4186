"""Checks a composed config before any data is touched: one line per problem."""

from __future__ import annotations


class ConfigError(Exception):
    pass


def validate(cfg) -> None:
    """Raise ConfigError for values that cannot work (Hydra already rejects unknown keys and names)."""
    m, t = cfg.model, cfg.trainer
    problems = []
    if m.d_model % m.heads:
        problems.append(f"model.d_model={m.d_model} is not divisible by model.heads={m.heads}")
    for key in ("dropout", "attention_dropout", "activation_dropout"):
        if key in m and not 0.0 <= m[key] < 1.0:
            problems.append(f"model.{key}={m[key]} must be in [0, 1)")
    if m.vocab_size <= 5:
        problems.append(f"model.vocab_size={m.vocab_size} leaves no room beyond the 5 special symbols")
    longest = 2 * t.max_len + 1 if m.kind == "gpt" else t.max_len + 1
    if t.batch_tokens < longest:
        problems.append(f"trainer.batch_tokens={t.batch_tokens} is smaller than the longest example "
                        f"({longest} tokens with trainer.max_len={t.max_len})")
    if longest > m.max_positions:
        problems.append(f"trainer.max_len={t.max_len} needs {longest} positions but model.max_positions={m.max_positions}")
    if problems:
        raise ConfigError("; ".join(problems))
