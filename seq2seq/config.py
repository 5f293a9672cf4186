"""The configuration: `compose()` for code outside a Hydra application, and `validate()`, which checks a
composed config before any data is touched (one line per problem)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from seq2seq.data.prepare import augment_settings
from seq2seq.errors import ConfigError, DataError, UserError

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def compose(*overrides: str, config_name: str = "config"):
    """conf/<config_name>.yaml with Hydra overrides, as the commands see it: the one way code outside a
    Hydra application (compare's systems, bench, evaluate, params, scripts, tests) builds a config. Inside
    a running Hydra application its already-initialised search path is used."""
    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name=config_name, overrides=list(overrides))
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


POSITIVE = {  # counts that must be at least 1: the model has no zero-sized part, the trainer divides by these
    "model": ("d_model", "d_ff", "heads", "layers", "encoder_layers", "decoder_layers", "max_positions"),
    "trainer": ("batch_tokens", "accumulate", "max_len", "warmup", "valid_every", "save_every",
                "log_every", "nonfinite_limit"),
}
LIMITS = ("max_epochs", "max_minutes", "max_tokens", "max_flops")  # stop conditions that null turns off


def model_config(name: str):
    """conf/model/<name>.yaml, composed (its defaults resolved) inside or outside a Hydra application, without
    the default experiment's model changes (cpu_small turns dropout off for its own budget)."""
    if not Path(CONF_DIR, "model", f"{name}.yaml").is_file():
        raise UserError(f"no model config {name} (conf/model/{name}.yaml); check `sizes` and `systems`")
    return compose(f"model={name}", "~experiment").model


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(cfg) -> None:
    """Raise ConfigError for values that cannot work (Hydra already rejects unknown keys and names)."""
    m, t = cfg.model, cfg.trainer
    problems = [f"{group}.{key}={value} must be a number of at least 1" for group, keys in POSITIVE.items()
                for key in keys if key in cfg[group] and (not _number(value := cfg[group][key]) or value < 1)]
    for key in ("max_steps", *LIMITS):
        value = t.get(key)
        if (value is not None or key == "max_steps") and (not _number(value) or value < 0):
            problems.append(f"trainer.{key}={value} must be a number of at least 0"
                            + (" or null" if key in LIMITS else ""))
    if problems:  # the checks below compute with these
        raise ConfigError("; ".join(problems))
    if m.d_model % m.heads:
        problems.append(f"model.d_model={m.d_model} is not divisible by model.heads={m.heads}")
    if m.get("prefix_lm") and m.get("loss_on_source"):
        problems.append("model.prefix_lm=true with model.loss_on_source=true lets source positions see the tokens "
                        "they predict; turn one of them off")
    for group, key in (("model", "dropout"), ("model", "attention_dropout"), ("model", "activation_dropout"),
                       ("trainer", "label_smoothing")):
        if key in cfg[group] and not (_number(value := cfg[group][key]) and 0.0 <= value < 1.0):
            problems.append(f"{group}.{key}={value} must be in [0, 1)")
    tok = cfg.tokenizer
    if tok.vocab_size <= 5 + (256 if tok.byte_fallback else 0):
        problems.append(f"tokenizer.vocab_size={tok.vocab_size} (model.vocab_size by default) leaves no room "
                        "beyond the 5 special symbols"
                        + (" and the 256 byte pieces of tokenizer.byte_fallback" if tok.byte_fallback else ""))
    longest = 2 * t.max_len + 1 if m.kind == "gpt" else t.max_len + 1
    if t.batch_tokens < longest:
        problems.append(f"trainer.batch_tokens={t.batch_tokens} is smaller than the longest example "
                        f"({longest} tokens with trainer.max_len={t.max_len})")
    if longest > m.max_positions:
        problems.append(f"trainer.max_len={t.max_len} needs {longest} positions "
                        f"but model.max_positions={m.max_positions}")
    try:
        augment_settings(cfg.data)
    except DataError as e:
        problems.append(str(e))
    if problems:
        raise ConfigError("; ".join(problems))
