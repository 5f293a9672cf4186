"""`seq2seq params`: parameter counts of model configs (conf/model/*.yaml)."""

from __future__ import annotations

from seq2seq.cli import CONF_DIR


def add_arguments(p) -> None:
    p.add_argument("models", nargs="*", help="model config names (default: all in conf/model)")
    p.add_argument("--vocab", type=int, help="vocabulary size (default: each config's vocab_size)")


def run(args) -> None:
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from seq2seq.model.build import build_model, count_parameters

    names = args.models or sorted(p.stem for p in Path(CONF_DIR, "model").glob("*.yaml"))
    print(f"{'model':<20} {'kind':<12} {'vocab':>6} {'parameters':>14}")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        for name in names:
            cfg = compose(config_name="config", overrides=[f"model={name}"]).model
            vocab = args.vocab or cfg.vocab_size
            print(f"{name:<20} {cfg.kind:<12} {vocab:>6} {count_parameters(build_model(cfg, vocab)):>14,}")
