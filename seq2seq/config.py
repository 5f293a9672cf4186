"""The configuration: `compose()` for code outside a Hydra application, and `validate()`, which checks a
composed config before any data is touched (one line per problem). The model and trainer groups are typed
by the dataclasses of seq2seq/schema.py, registered here in Hydra's ConfigStore."""

from __future__ import annotations

from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra

from seq2seq.data.prepare import augment_settings
from seq2seq.errors import ConfigError, DataError, UserError
from seq2seq.schema import GptConfig, TrainerConfig, TransformerConfig, as_model_config, as_trainer_config

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")

# The schemas, by the names the YAML files give them: conf/model/transformer_base.yaml starts with
# `defaults: [/schema@_here_: transformer, _self_]`, so its keys are typed and checked as TransformerConfig's.
for _name, _schema in (("transformer", TransformerConfig), ("gpt", GptConfig), ("trainer", TrainerConfig)):
    ConfigStore.instance().store(group="schema", name=_name, node=_schema)


def compose(*overrides: str, config_name: str = "config"):
    """conf/<config_name>.yaml with Hydra overrides, as the commands see it: the one way code outside a
    Hydra application (compare's systems, bench, evaluate, params, scripts, tests) builds a config. Inside
    a running Hydra application its already-initialised search path is used."""
    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name=config_name, overrides=list(overrides))
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def model_config(name: str):
    """conf/model/<name>.yaml, composed (its defaults resolved) inside or outside a Hydra application, without
    the default experiment's model changes (cpu_small turns dropout off for its own budget)."""
    if not Path(CONF_DIR, "model", f"{name}.yaml").is_file():
        raise UserError(f"no model config {name} (conf/model/{name}.yaml); check `sizes` and `systems`")
    return compose(f"model={name}", "~experiment").model


def validate(cfg) -> None:
    """Raise ConfigError for values that cannot work, in one line. The model and trainer groups become their
    schemas here (`OmegaConf.to_object`, which runs their `__post_init__` limits and refuses keys the schema
    lacks, such as a typo added with `+trainer.max_step=...`); the checks below span groups."""
    problems = []
    try:
        m = as_model_config(cfg.model)
    except ConfigError as e:
        problems.append(str(e))
    try:
        t = as_trainer_config(cfg.trainer)
    except ConfigError as e:
        problems.append(str(e))
    if problems:  # the checks below compute with these
        raise ConfigError("; ".join(problems))
    if m.d_model % m.heads:  # here, not in ModelConfig: a model directory says it in the attention module's words
        problems.append(f"model.d_model={m.d_model} is not divisible by model.heads={m.heads}")
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
