"""The typed configs of seq2seq/schema.py: every real config composes into them and validates, a typo'd key
or a value of the wrong type is one line, the limits fire through `OmegaConf.to_object`, and a model
directory's config.json round-trips (and older ones still load)."""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from seq2seq.cli import main
from seq2seq.config import CONF_DIR, compose, validate
from seq2seq.errors import ConfigError, ModelDirError
from seq2seq.model.build import build_model
from seq2seq.model.directory import load_model_dir, save_model_dir
from seq2seq.schema import (
    GptConfig,
    TrainerConfig,
    TransformerConfig,
    as_model_config,
    as_trainer_config,
)

MODELS = sorted(p.stem for p in Path(CONF_DIR, "model").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in Path(CONF_DIR, "experiment").glob("*.yaml"))


# ---------------------------------------------------------------------------------------------- the real configs

@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_is_typed_by_its_kind_and_validates(name):
    cfg = compose(f"model={name}")
    schema = {"transformer": TransformerConfig, "gpt": GptConfig}[cfg.model.kind]
    assert OmegaConf.get_type(cfg.model) is schema and OmegaConf.get_type(cfg.trainer) is TrainerConfig
    validate(cfg)
    typed = as_model_config(cfg.model)
    assert type(typed) is schema and typed.name == name


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment):
    cfg = compose(f"experiment={experiment}")
    validate(cfg)
    assert as_trainer_config(cfg.trainer).max_steps == cfg.trainer.max_steps


def test_the_comparison_config_composes_and_validates():
    validate(compose(config_name="compare"))


def test_conf_trainer_default_yaml_states_exactly_the_schemas_defaults():
    """The dataclass holds the defaults; the YAML restates each with its comment, and may not drift."""
    stated = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR, "trainer", "default.yaml")))
    stated.pop("defaults")
    assert list(stated) == [f.name for f in fields(TrainerConfig)]
    assert as_trainer_config(stated) == TrainerConfig()
    assert OmegaConf.to_object(compose("~experiment").trainer) == TrainerConfig()


# ---------------------------------------------------------------------------------------------- one-line refusals

def run_train(tmp_path, monkeypatch, capsys, *overrides) -> str:
    """`seq2seq train experiment=tiny <overrides>` with no corpus: the error line, which must come first."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    data = tmp_path / "data"
    with pytest.raises(SystemExit) as e:
        main(["train", "experiment=tiny", *overrides, f"data.raw_dir={tmp_path / 'raw'}", f"data.out_dir={data}",
              "data.download=false", f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and not data.exists(), err
    return err


@pytest.mark.parametrize("override, message", [
    ("+trainer.max_step=5", "trainer.max_step is not a trainer setting; did you mean trainer.max_steps?"),
    ("+model.prefix_lm=true", "model.prefix_lm is not a transformer model setting"),  # a gpt switch
    ("model.heads=four", "model.heads=four must be a number of at least 1 (an integer)"),
    ("trainer.max_minutes=soon", "trainer.max_minutes=soon must be a number of at least 0 or null"),
    ("trainer.tf32=maybe", "trainer.tf32=maybe must be true or false"),
    ("trainer.precision=fp16", "trainer.precision=fp16 must be one of auto, fp32, bf16"),
    ("model.norm=mid", "model.norm=mid must be one of post, pre"),
])
def test_a_typo_or_a_wrong_type_in_an_override_is_one_line(tmp_path, monkeypatch, capsys, override, message):
    assert message in run_train(tmp_path, monkeypatch, capsys, override)


def test_problems_of_both_groups_are_reported_together(tmp_path, monkeypatch, capsys):
    err = run_train(tmp_path, monkeypatch, capsys, "model.dropout=1.5", "trainer.save_every=0")
    assert "model.dropout=1.5 must be in [0, 1); trainer.save_every=0 must be a number of at least 1" in err


# ---------------------------------------------------------------------------------------------- __post_init__

def test_limits_fire_through_to_object_and_not_before():
    """Composing checks types and names; the limits are `__post_init__`'s, which OmegaConf.to_object runs."""
    cfg = compose("model=gpt_tiny", "model.prefix_lm=true", "model.loss_on_source=true", "trainer.save_every=0")
    with pytest.raises(ConfigError, match=r"^model\.prefix_lm=true with model\.loss_on_source=true lets source"):
        OmegaConf.to_object(cfg.model)
    with pytest.raises(ConfigError, match=r"^trainer\.save_every=0 must be a number of at least 1$"):
        OmegaConf.to_object(cfg.trainer)
    with pytest.raises(ValueError, match="loss_on_source"):  # the one check, wherever a model is built
        build_model(cfg.model, 40)
    with pytest.raises(ConfigError, match=r"^trainer.max_minutes=-1.0 must be a number of at least 0 or null$"):
        TrainerConfig(max_minutes=-1.0)


def test_defaults_fill_what_a_config_leaves_out():
    assert as_trainer_config({"max_steps": 7}) == TrainerConfig(max_steps=7)
    gpt = compose("model=gpt_tiny").model
    values = {k: v for k, v in OmegaConf.to_container(gpt).items() if k not in ("name", "prefix_lm", "loss_on_source")}
    typed = as_model_config(values)
    assert (typed.name, typed.prefix_lm, typed.loss_on_source) == ("gpt", False, False)
    with pytest.raises(ConfigError, match=r"^model config lacks heads, layers$"):
        as_model_config({k: v for k, v in values.items() if k not in ("heads", "layers")})


# ---------------------------------------------------------------------------------------------- config.json

@pytest.mark.parametrize("overrides", [["model=transformer_tiny"], ["model=gpt_tiny", "model.prefix_lm=true"]])
def test_a_model_directory_round_trips_its_config(tmp_path, toy_tokenizer, overrides):
    cfg = compose(*overrides).model
    torch.manual_seed(0)
    model = build_model(cfg, len(toy_tokenizer))
    save_model_dir(tmp_path / "model", model.state_dict(), cfg, len(toy_tokenizer), toy_tokenizer.path)
    written = json.loads((tmp_path / "model" / "config.json").read_text())["model"]
    _, _, loaded = load_model_dir(tmp_path / "model")
    assert loaded == as_model_config(cfg) == model.cfg
    assert list(written) == [f.name for f in fields(type(loaded))]
    save_model_dir(tmp_path / "again", model.state_dict(), loaded, len(toy_tokenizer), toy_tokenizer.path)
    assert (tmp_path / "again" / "config.json").read_text() == (tmp_path / "model" / "config.json").read_text()


LEGACY = {  # config.json as the code before the schemas wrote it (OmegaConf.to_container of the YAML)
    "transformer_tiny": {"name": "transformer_tiny", "kind": "transformer", "vocab_size": 400, "encoder_layers": 2,
                         "decoder_layers": 2, "d_model": 32, "d_ff": 64, "heads": 4, "dropout": 0.1,
                         "attention_dropout": 0.0, "activation_dropout": 0.0, "norm": "post", "tie_embeddings": True,
                         "positional": "interleaved", "max_positions": 256},
    "gpt_tiny": {"kind": "gpt", "layers": 5, "d_model": 32, "d_ff": 64, "heads": 4, "dropout": 0.1,  # no switches
                 "attention_dropout": 0.0, "activation_dropout": 0.0, "norm": "post", "tie_embeddings": True,
                 "positional": "interleaved", "max_positions": 512},
}


@pytest.mark.parametrize("name", list(LEGACY))
def test_a_model_directory_written_before_the_schemas_still_loads(tmp_path, toy_tokenizer, name):
    model = build_model(compose(f"model={name}").model, len(toy_tokenizer))
    directory = save_model_dir(tmp_path / "model", model.state_dict(), model.cfg, len(toy_tokenizer),
                               toy_tokenizer.path)
    (directory / "config.json").write_text(json.dumps({"model": LEGACY[name], "vocab_size": len(toy_tokenizer),
                                                       "tokenizer": "spm.model"}))
    loaded, _, cfg = load_model_dir(directory)
    assert cfg.kind == model.cfg.kind and cfg.d_model == 32
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    if name == "gpt_tiny":
        switches = (cfg.prefix_lm, cfg.loss_on_source)
        assert (cfg.name, cfg.vocab_size, switches) == ("gpt", len(toy_tokenizer), (False, False))


def test_an_unknown_or_mistyped_key_in_config_json_is_one_line(tmp_path, toy_tokenizer):
    model = build_model(compose("model=transformer_tiny").model, len(toy_tokenizer))
    directory = save_model_dir(tmp_path / "model", model.state_dict(), model.cfg, len(toy_tokenizer),
                               toy_tokenizer.path)
    meta = json.loads((directory / "config.json").read_text())
    for change, message in (({"head": 4}, "config.json: model.head is not a transformer model setting; did you "
                                          "mean model.heads?"),
                            ({"heads": "4x"}, "config.json: model.heads=4x must be a number of at least 1"),
                            ({"dropout": 1.0}, "config.json: model.dropout=1.0 must be in [0, 1)")):
        (directory / "config.json").write_text(json.dumps({**meta, "model": {**meta["model"], **change}}))
        with pytest.raises(ModelDirError) as e:
            load_model_dir(directory)
        assert message in str(e.value) and "\n" not in str(e.value)


def test_a_stored_run_config_without_a_later_setting_reads_as_that_setting_at_its_default():
    from seq2seq.schema import with_later_defaults  # noqa: PLC0415

    cfg = OmegaConf.to_container(compose("experiment=tiny", "model=gpt_tiny"), resolve=True)
    assert "bpe_dropout" in cfg["trainer"] and "prefix_lm" in cfg["model"]
    old = {**cfg, "trainer": {k: v for k, v in cfg["trainer"].items() if k != "bpe_dropout"},
           "model": {k: v for k, v in cfg["model"].items() if k != "prefix_lm"}}
    assert with_later_defaults(old) == cfg  # settings added since read as the default: the same run
    changed = {**cfg, "trainer": {**cfg["trainer"], "bpe_dropout": 0.1}}
    assert with_later_defaults(changed) != cfg  # a stored value is never replaced
    assert with_later_defaults({"name": "x"}) == {"name": "x"}
