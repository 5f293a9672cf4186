"""`seq2seq params`: parameter counts of model configs (conf/model/*.yaml), each beside its twin of the
other kind (transformer_X ↔ gpt_X) with the relative difference."""

from __future__ import annotations

from pathlib import Path

from seq2seq.config import CONF_DIR, compose
from seq2seq.model.build import build_model, count_parameters

TWIN_PREFIXES = ("transformer_", "gpt_")


def add_arguments(p) -> None:
    p.add_argument("models", nargs="*", help="model config names (default: all in conf/model)")
    p.add_argument("--vocab", type=int, help="vocabulary size (default: each config's vocab_size)")


def twin_of(name: str, available: set[str]) -> str | None:
    """transformer_small -> gpt_small (and back), when that config exists."""
    for mine, other in (TWIN_PREFIXES, TWIN_PREFIXES[::-1]):
        if name.startswith(mine) and other + name[len(mine):] in available:
            return other + name[len(mine):]
    return None


def run(args) -> None:
    available = {p.stem for p in Path(CONF_DIR, "model").glob("*.yaml")}
    names = args.models or sorted(available)
    counts: dict[str, tuple] = {}
    print(f"{'model':<20} {'kind':<12} {'vocab':>6} {'parameters':>14}   {'twin':<20} {'parameters':>14} {'diff':>7}")

    def count(name):
        if name not in counts:
            cfg = compose(f"model={name}").model
            vocab = args.vocab or cfg.vocab_size
            counts[name] = (cfg.kind, vocab, count_parameters(build_model(cfg, vocab)))
        return counts[name]

    for name in names:
        kind, vocab, n = count(name)
        line = f"{name:<20} {kind:<12} {vocab:>6} {n:>14,}"
        twin = twin_of(name, available)
        if twin:
            m = count(twin)[2]
            line += f"   {twin:<20} {m:>14,} {100 * (m - n) / n:>+6.2f}%"
        print(line)
