"""A self-contained model directory: all that translation needs, validated before use.

    model/
      model.pt       weights (averaged or best), loaded with weights_only=True
      config.json    {"model": the model config, "vocab_size": n, "tokenizer": "spm.model"}
      spm.model      the joint SentencePiece model the weights were trained with
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from omegaconf import OmegaConf

from seq2seq.data.tokenizer import Tokenizer
from seq2seq.errors import CheckpointError, ModelDirError, UserError
from seq2seq.io import load, save, write_text
from seq2seq.model.build import build_model

REQUIRED_KEYS = ("kind", "d_model", "heads", "d_ff", "dropout", "attention_dropout", "activation_dropout", "norm",
                 "tie_embeddings", "positional", "max_positions")
LAYER_KEYS = {"transformer": ("encoder_layers", "decoder_layers"), "gpt": ("layers",)}


def default_model_dir(outputs: Path = Path("outputs")) -> Path:
    """The `model/` of the most recently finished `make train` run (the newest results.json)."""
    finished = sorted(outputs.glob("*/results.json"), key=lambda p: p.stat().st_mtime) if outputs.is_dir() else []
    finished = [p.parent / "model" for p in finished if (p.parent / "model" / "model.pt").is_file()]
    if not finished:
        raise UserError(f"no trained model found under {outputs}/; train one with `make train` or pass --model DIR")
    return finished[-1]


def save_model_dir(directory, state_dict: dict, model_cfg, vocab_size: int, tokenizer_file) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save({"model": state_dict}, directory / "model.pt")
    shutil.copyfile(tokenizer_file, directory / "spm.model")
    meta = {"model": OmegaConf.to_container(model_cfg, resolve=True), "vocab_size": vocab_size,
            "tokenizer": "spm.model"}
    write_text(directory / "config.json", json.dumps(meta, indent=2))
    return directory


def load_model_dir(directory, device: str | torch.device = "cpu"):
    """-> (model in eval mode on `device`, Tokenizer, model config). Raises ModelDirError with one line."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelDirError(f"model directory not found: {directory}")
    try:
        meta = json.loads((directory / "config.json").read_text())
        model_cfg = OmegaConf.create(meta["model"])
        vocab_size = int(meta["vocab_size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelDirError(f"{directory / 'config.json'}: missing or invalid ({type(e).__name__}: {e})") from None
    missing = [k for k in REQUIRED_KEYS + LAYER_KEYS.get(model_cfg.get("kind"), ()) if k not in model_cfg]
    if missing:
        raise ModelDirError(f"{directory / 'config.json'}: model config lacks {', '.join(missing)}")
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
