"""Typed configs: the schemas of conf/model/*.yaml (one dataclass per model kind) and conf/trainer/default.yaml.

Each field has its type, its default where it has one, and its limit (`rule`) beside it; `__post_init__`
checks the limits and raises ConfigError with one line that names every value at fault. The YAML files stay
the user's interface: seq2seq/config.py registers these classes in Hydra's ConfigStore (group `schema`) and
each YAML names its schema first in its defaults list, so composing a config already checks types and key
names against the dataclass.

`__post_init__` runs only when a dataclass is made, that is through `OmegaConf.to_object` in
`as_model_config` / `as_trainer_config` (or by calling the class directly). Those run in three places:
`config.validate` (every Hydra command, before any data is touched), `model.build.build_model` (a model is
built from a checked config only) and `model.directory.load_model_dir` / `save_model_dir` (config.json).
A composed DictConfig alone has been type-checked but not limit-checked.

Fields without a default (`???`, MISSING) are the ones a model cannot be built without: a config.json that
lacks one is refused as "model config lacks …". Defaults are for what older configs may leave out.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import ValidationError

from seq2seq.errors import ConfigError

# ---------------------------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class AtLeast:
    """A number >= `least`; with `null`, None turns the setting off (the stop conditions)."""

    least: int
    null: bool = False

    def holds(self, value) -> bool:
        return (value is None and self.null) or (value is not None and value >= self.least)

    def __str__(self) -> str:
        return f"a number of at least {self.least}" + (" or null" if self.null else "")


@dataclass(frozen=True)
class Fraction:
    """A probability that cannot be 1: dropout, label smoothing."""

    def holds(self, value) -> bool:
        return 0.0 <= value < 1.0

    def __str__(self) -> str:
        return "in [0, 1)"


@dataclass(frozen=True)
class OneOf:
    options: tuple[str, ...]

    def holds(self, value) -> bool:
        return value in self.options

    def __str__(self) -> str:
        return "one of " + ", ".join(self.options)


COUNT = AtLeast(1)  # a size or a period the model or the trainer divides by: at least 1
FRACTION = Fraction()


def setting(default: Any = MISSING, rule=None, factory=None):
    """A dataclass field with its limit: `d_model: int = setting(rule=COUNT)`. No default means required."""
    metadata = {"rule": rule} if rule is not None else {}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class Checked:
    """The base of the schemas: `__post_init__` checks every field's rule, then `cross_checks()`."""

    group: ClassVar[str]  # the config group, as the messages name keys: model.dropout, trainer.save_every

    def __post_init__(self) -> None:
        problems = [f"{self.group}.{f.name}={value} must be {f.metadata['rule']}" for f in fields(self)
                    if "rule" in f.metadata and not f.metadata["rule"].holds(value := getattr(self, f.name))]
        if not problems:  # the cross checks compute with the values above
            problems = self.cross_checks()
        if problems:
            raise ConfigError("; ".join(problems))

    def cross_checks(self) -> list[str]:
        return []


# ---------------------------------------------------------------------------------------------- model

KINDS = ("transformer", "gpt")


@dataclass
class ModelConfig(Checked):
    """What both kinds share (conf/model/*_base.yaml explains each value). d_model % heads is checked by
    `config.validate` in config terms and by the attention module itself, whose own words are what a model
    directory's error says; so it is not one of these limits."""

    group: ClassVar[str] = "model"

    name: str = ""  # the size's name (transformer_small); empty means the kind
    kind: str = setting(rule=OneOf(KINDS))
    vocab_size: int = setting(rule=COUNT)  # the tokenizer's request; a model directory's own count wins
    d_model: int = setting(rule=COUNT)
    d_ff: int = setting(rule=COUNT)
    heads: int = setting(rule=COUNT)
    dropout: float = setting(rule=FRACTION)
    attention_dropout: float = setting(rule=FRACTION)
    activation_dropout: float = setting(rule=FRACTION)
    norm: str = setting(rule=OneOf(("post", "pre")))
    tie_embeddings: bool = MISSING
    positional: str = setting(rule=OneOf(("interleaved", "halves")))
    max_positions: int = setting(rule=COUNT)

    def __post_init__(self) -> None:
        self.name = self.name or self.kind
        super().__post_init__()


@dataclass
class TransformerConfig(ModelConfig):
    """The encoder–decoder (seq2seq/model/transformer.py)."""

    kind: str = setting("transformer", OneOf(("transformer",)))
    encoder_layers: int = setting(rule=COUNT)
    decoder_layers: int = setting(rule=COUNT)


@dataclass
class GptConfig(ModelConfig):
    """The decoder-only twin (seq2seq/model/gpt.py)."""

    kind: str = setting("gpt", OneOf(("gpt",)))
    layers: int = setting(rule=COUNT)
    loss_on_source: bool = False  # also learn to predict the source
    prefix_lm: bool = False  # bidirectional attention over `source <sep>`

    def cross_checks(self) -> list[str]:
        if self.prefix_lm and self.loss_on_source:
            return ["model.prefix_lm=true with model.loss_on_source=true lets source positions see the tokens "
                    "they predict; turn one of them off"]
        return []


MODEL_SCHEMAS: dict[str, type[ModelConfig]] = {"transformer": TransformerConfig, "gpt": GptConfig}


# ---------------------------------------------------------------------------------------------- trainer

STOP = AtLeast(0, null=True)  # a stop condition: null turns it off


@dataclass
class TrainerConfig(Checked):
    """The training loop (seq2seq/train/trainer.py). These defaults are the paper's base recipe;
    conf/trainer/default.yaml states each of them with its comment (a test holds the two equal)."""

    group: ClassVar[str] = "trainer"

    max_steps: int = setting(100_000, AtLeast(0))
    max_epochs: int | None = setting(None, STOP)
    max_minutes: float | None = setting(None, STOP)
    max_tokens: int | None = setting(None, STOP)
    max_flops: float | None = setting(None, STOP)
    batch_tokens: int = setting(4096, COUNT)
    accumulate: int = setting(1, COUNT)
    max_len: int = setting(128, COUNT)
    bpe_dropout: float = setting(0.0, FRACTION)
    label_smoothing: float = setting(0.1, FRACTION)
    adam_betas: list[float] = setting(factory=lambda: [0.9, 0.98])
    adam_eps: float = 1.0e-9
    weight_decay: float = setting(0.0, AtLeast(0))
    lr_scale: float = 1.0
    peak_lr: float | None = None
    warmup: int = setting(4000, COUNT)
    clip_norm: float = setting(0.0, AtLeast(0))
    valid_every: int = setting(1000, COUNT)
    valid_max_sentences: int | None = setting(500, STOP)
    save_every: int = setting(1000, COUNT)
    keep_last: int = setting(5, AtLeast(0))
    average_last: int = setting(5, AtLeast(0))
    patience: int = setting(0, AtLeast(0))
    final_beam: int = setting(4, COUNT)
    final_lenpen: float = 0.6
    test_max_sentences: int | None = setting(None, STOP)
    device: str = "auto"
    precision: str = setting("auto", OneOf(("auto", "fp32", "bf16")))
    tf32: bool = True
    compile: bool = False
    threads: int = setting(0, AtLeast(0))
    log_every: int = setting(100, COUNT)
    nonfinite_limit: int = setting(5, COUNT)
    init_from: str | None = None
    eval_batch_tokens: int = setting(6000, COUNT)


SCHEMAS: tuple[type[Checked], ...] = (TransformerConfig, GptConfig, TrainerConfig)


# ---------------------------------------------------------------------------------------------- to_object


def as_model_config(cfg) -> ModelConfig:
    """`cfg` (a composed DictConfig, a dict read from config.json, or already a ModelConfig) as its kind's
    dataclass, checked: ConfigError with one line for a missing or unknown key, a value of the wrong type
    or out of its limits. The kind is taken from `cfg.kind`."""
    if isinstance(cfg, ModelConfig):
        return cfg
    values = _plain(cfg)
    kind = values.get("kind")
    if kind is None:
        raise ConfigError("model config lacks kind")
    if not isinstance(kind, str) or kind not in MODEL_SCHEMAS:
        raise ConfigError(f"unknown model kind {kind!r}; expected one of {KINDS}")
    return _to_object(MODEL_SCHEMAS[kind], values, f"{kind} model")


def as_trainer_config(cfg) -> TrainerConfig:
    """`cfg` as a checked TrainerConfig; keys it leaves out take the defaults."""
    if isinstance(cfg, TrainerConfig):
        return cfg
    return _to_object(TrainerConfig, cfg, "trainer")


def to_dict(cfg: Checked) -> dict:
    """Every field of a schema, as JSON writes it (a model directory's config.json)."""
    return asdict(cfg)


def defaults(schema: type[Checked]) -> dict:
    """The fields of `schema` that have a default, with it."""
    out = {}
    for f in fields(schema):
        if f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        elif f.default not in (dataclasses.MISSING, MISSING):
            out[f.name] = f.default
    return out


def with_later_defaults(stored: dict) -> dict:
    """A run's stored config (its config.yaml as a dict) with the trainer and model settings added since it was
    written, at their defaults: a default is what the code did before the setting existed, so the run was
    trained as that config would train it now (how `compare` tells a run it may reuse)."""
    out = {**stored}
    kind = out["model"].get("kind") if isinstance(out.get("model"), dict) else None
    for section, schema in (("trainer", TrainerConfig), ("model", MODEL_SCHEMAS.get(kind))):
        if schema is not None and isinstance(out.get(section), dict):
            out[section] = {**defaults(schema), **out[section]}
    return out


def _plain(cfg) -> dict:
    if OmegaConf.is_config(cfg):
        cfg = OmegaConf.to_container(cfg, resolve=True)  # interpolations resolve against the whole config
    if not isinstance(cfg, dict):
        raise ConfigError(f"a config must be a mapping of keys to values, not {type(cfg).__name__}")
    return cfg


def _to_object(schema: type[Checked], cfg, what: str):
    values = _plain(cfg)
    names = [f.name for f in fields(schema)]
    unknown = [key for key in values if key not in names]
    if unknown:
        raise ConfigError("; ".join(unknown_key(schema.group, str(key), names, what) for key in unknown))
    node = OmegaConf.structured(schema)
    try:
        node = OmegaConf.merge(node, values)
    except ValidationError as e:
        where = f"{schema.group}.{e.full_key}: " if getattr(e, "full_key", None) else ""
        raise ConfigError(type_message(e) or where + " ".join(str(e).split("\n")[0].split())) from None
    missing = [name for name in names if OmegaConf.is_missing(node, name)]
    if missing:
        raise ConfigError(f"{schema.group} config lacks {', '.join(missing)}")
    return OmegaConf.to_object(node)  # runs __post_init__


def unknown_key(group: str, key: str, names: list[str], what: str) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    return f"{group}.{key} is not a {what} setting" + (f"; did you mean {group}.{close[0]}?" if close else "")


TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def type_message(error: Exception) -> str | None:
    """One line for a value OmegaConf cannot convert to a schema field's type, in the words of the field's
    limit: `trainer.max_steps=many must be a number of at least 0 (an integer)`. None for other errors."""
    schema, key = getattr(error, "object_type", None), getattr(error, "key", None)
    if not isinstance(error, ValidationError) or schema not in SCHEMAS:
        return None
    spec = {f.name: f for f in fields(schema)}.get(key)
    if spec is None:
        return None
    kind = TYPE_WORDS.get(str(spec.type).split(" | ")[0])  # "int", "float | None": the annotation's text
    rule = spec.metadata.get("rule")
    words = f"{rule} (an integer)" if rule and kind == "an integer" else str(rule or kind or spec.type)
    full_key = getattr(error, "full_key", None) or f"{schema.group}.{key}"
    if not full_key.startswith(f"{schema.group}."):
        full_key = f"{schema.group}.{full_key}"
    return f"{full_key}={error.value} must be {words}"
