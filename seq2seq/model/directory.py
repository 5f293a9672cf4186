"""A self-contained model directory: all that translation needs, validated before use.

    model/
      model.pt       weights (averaged or best), loaded with weights_only=True
      config.json    {"model": the model config, "vocab_size": n, "tokenizer": "spm.model"}; the model
                     config holds every field of its kind's schema (seq2seq/schema.py)
      spm.model      the joint SentencePiece model the weights were trained with
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from seq2seq.data.tokenizer import Tokenizer
from seq2seq.errors import CheckpointError, ConfigError, ModelDirError, UserError
from seq2seq.io import load, save, write_text
from seq2seq.model.build import build_model
from seq2seq.schema import ModelConfig, as_model_config, to_dict


def default_model_dir(outputs: Path = Path("outputs")) -> Path:
    """The `model/` of the most recently finished `make train` run (the newest results.json)."""
    finished = sorted(outputs.glob("*/results.json"), key=lambda p: p.stat().st_mtime) if outputs.is_dir() else []
    finished = [p.parent / "model" for p in finished if (p.parent / "model" / "model.pt").is_file()]
    if not finished:
        raise UserError(f"no trained model found under {outputs}/; train one with `make train` or pass --model DIR")
    return finished[-1]


def save_model_dir(directory, state_dict: dict, model_cfg, vocab_size: int, tokenizer_file) -> Path:
    """Write a model directory; config.json gets every field of `model_cfg`'s schema (defaults included)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save({"model": state_dict}, directory / "model.pt")
    shutil.copyfile(tokenizer_file, directory / "spm.model")
    meta = {"model": to_dict(as_model_config(model_cfg)), "vocab_size": vocab_size, "tokenizer": "spm.model"}
    write_text(directory / "config.json", json.dumps(meta, indent=2))
    return directory


def load_model_dir(directory, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Tokenizer, ModelConfig]:
    """-> (model in eval mode on `device`, Tokenizer, model config as its kind's schema). Raises ModelDirError
    with one line. The config is checked by `as_model_config` (`OmegaConf.to_object`, so `__post_init__`):
    a missing field says "model config lacks …"; a field that older directories lack takes its default."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelDirError(f"model directory not found: {directory}")
    try:
        meta = json.loads((directory / "config.json").read_text())
        fields = dict(meta["model"])
        vocab_size = int(meta["vocab_size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelDirError(f"{directory / 'config.json'}: missing or invalid ({type(e).__name__}: {e})") from None
    try:
        model_cfg = as_model_config({"vocab_size": vocab_size, **fields})  # the directory's count if it has none
    except ConfigError as e:
        raise ModelDirError(f"{directory / 'config.json'}: {e}") from None
    try:
        tokenizer = Tokenizer(directory / meta.get("tokenizer", "spm.model"))
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelDirError(f"{directory}: tokenizer unusable ({e})") from None
    if len(tokenizer) != vocab_size:
        raise ModelDirError(f"{directory}: tokenizer has {len(tokenizer)} pieces but the model expects {vocab_size}")
    try:
        model = build_model(model_cfg, vocab_size)
    except (ValueError, KeyError, TypeError) as e:  # an unknown kind, impossible sizes, a value of the wrong type
        raise ModelDirError(f"{directory / 'config.json'}: {e}") from None
    try:
        state = load(directory / "model.pt")["model"]
    except CheckpointError as e:
        raise ModelDirError(str(e)) from None
    expected = model.state_dict()
    wrong = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    if wrong or set(state) - set(expected):
        detail = wrong[0] if wrong else sorted(set(state) - set(expected))[0]
        raise ModelDirError(f"{directory / 'model.pt'}: weights do not match config.json (first mismatch: {detail})")
    model.load_state_dict(state)
    return model.to(device).eval(), tokenizer, model_cfg
