"""The splits and sets a run reads: the data step (splits, then the tokenizer), the configured sets of the
corpora in use, and their encoding into piece ids."""

from __future__ import annotations

import logging

from seq2seq.data.prepare import prepare, read_split
from seq2seq.data.tokenizer import Tokenizer, tokenizer_path, train_tokenizer

log = logging.getLogger("seq2seq.data")


def ensure_tokenizer(cfg, train_src: list[str], train_tgt: list[str]) -> Tokenizer:
    path = tokenizer_path(cfg.data.out_dir, cfg.tokenizer)
    if path.is_file():
        return Tokenizer(path)
    log.info("training the %s tokenizer (%d pieces) on %d sentences -> %s", cfg.tokenizer.type,
             cfg.tokenizer.vocab_size, len(train_src) + len(train_tgt), path)
    t = cfg.tokenizer
    return train_tokenizer(train_src + train_tgt, path, t.vocab_size, t.type, t.normalization,
                           t.character_coverage, t.byte_fallback, t.max_sentences, cfg.seed)


def prepare_data(cfg) -> tuple[list[str], list[str], Tokenizer]:
    """The data step: splits (idempotent) and the tokenizer; returns the training text and the tokenizer.

    The tokenizer trains on the original training text; the augmented copies (data.augment) join the
    training text after it, so that runs with and without them share one tokenizer."""
    prepare(cfg.data, log=log.info)
    train_src, train_tgt = read_sets(cfg.data, active_sets(cfg.data, "train_sets"))
    tokenizer = ensure_tokenizer(cfg, train_src, train_tgt)
    if extra := augmented_sets(cfg.data):
        aug_src, aug_tgt = read_sets(cfg.data, extra)
        log.info("%d augmented training pairs (%s) beside %d original ones", len(aug_src), ", ".join(extra),
                 len(train_src))
        train_src, train_tgt = train_src + aug_src, train_tgt + aug_tgt
    return train_src, train_tgt, tokenizer


def augmented_sets(data_cfg) -> list[str]:
    """The augmented copies of the configured training splits, when data.augment.enabled."""
    aug = data_cfg.get("augment")
    if aug is None or not aug.enabled:
        return []
    return [f"{name}_augmented" for name in active_sets(data_cfg, "train_sets") if name.endswith("/train")]


def active_sets(data_cfg, key: str) -> list[str]:
    """The configured splits of the corpora this run uses (data.corpora)."""
    return [s for s in data_cfg[key] if s.split("/")[0] in data_cfg.corpora]


def read_sets(data_cfg, names: list[str]) -> tuple[list[str], list[str]]:
    src, tgt = [], []
    for name in names:
        s, t = read_split(data_cfg.out_dir, name, data_cfg.src_lang, data_cfg.tgt_lang)
        src += s
        tgt += t
    return src, tgt


def encode_pairs(tokenizer, src: list[str], tgt: list[str], max_len: int, dropout: float = 0.0,
                 seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """The pairs as ids (with BPE-dropout when `dropout` > 0, see Tokenizer.encode), those with a side empty or
    longer than `max_len` pieces left out."""
    ids = tokenizer.encode(src + tgt, dropout, seed)  # one call: with dropout, one stream of draws from `seed`
    pairs = list(zip(ids[: len(src)], ids[len(src):]))
    kept = [(s, t) for s, t in pairs if 0 < len(s) <= max_len and 0 < len(t) <= max_len]
    if len(kept) < len(pairs) and not dropout:  # with dropout, every epoch would say it again
        log.info("skipped %d of %d training pairs longer than trainer.max_len=%d pieces (or empty)",
                 len(pairs) - len(kept), len(pairs), max_len)
    return kept
