"""The joint English–French SentencePiece model (one vocabulary for both languages, §5.1).

Fixed ids: pad 0, unk 1, bos 2, eos 3, and the separator `<sep>` 4 that the decoder-only model puts
between source and target. `byte_fallback` means no character is ever unknown.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import sentencepiece as spm

from seq2seq.io import write_bytes

PAD, UNK, BOS, EOS, SEP = 0, 1, 2, 3, 4
SEP_PIECE = "<sep>"


class Tokenizer:
    """A thin wrapper around a SentencePiece processor with this project's fixed special ids."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"tokenizer model not found: {self.path}")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.path))
        if self.sp.piece_to_id(SEP_PIECE) != SEP or self.sp.pad_id() != PAD or self.sp.eos_id() != EOS:
            raise ValueError(f"{self.path} does not use this project's special ids "
                             "(pad 0, unk 1, bos 2, eos 3, <sep> 4)")

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    @property
    def vocab_size(self) -> int:
        return len(self)

    def encode(self, texts: list[str], dropout: float = 0.0, seed: int = 0) -> list[list[int]]:
        """Ids of each text. With `dropout` > 0, each merge is skipped with that probability (BPE-dropout,
        Provilkov et al. 2020; SentencePiece's sampling), drawn from `seed` on one thread so that the same
        seed gives the same pieces on every machine."""
        if not dropout:
            return self.sp.encode(texts, out_type=int)
        spm.set_random_generator_seed(seed)
        return self.sp.encode(texts, out_type=int, enable_sampling=True, alpha=dropout, nbest_size=-1, num_threads=1)

    def encode_pieces(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)

    def decode(self, ids: list[list[int]]) -> list[str]:
        return self.sp.decode(ids)

    def id_to_piece(self, ids: list[int]) -> list[str]:
        return [self.sp.id_to_piece(i) for i in ids]


def train_tokenizer(
    sentences: list[str],
    model_path: str | os.PathLike,
    vocab_size: int,
    model_type: str = "bpe",
    normalization: str = "identity",
    character_coverage: float = 1.0,
    byte_fallback: bool = True,
    max_sentences: int = 2_000_000,
    seed: int = 1,
) -> Tokenizer:
    """Train a joint model on `sentences` (both languages) and write it atomically to `model_path`."""
    model_path = Path(model_path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    if len(sentences) > max_sentences:
        sentences = random.Random(seed).sample(sentences, max_sentences)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=buffer,
        vocab_size=vocab_size,
        model_type=model_type,
        normalization_rule_name=normalization,
        character_coverage=character_coverage,
        byte_fallback=byte_fallback,
        pad_id=PAD,
        unk_id=UNK,
        bos_id=BOS,
        eos_id=EOS,
        control_symbols=[SEP_PIECE],  # never made from text: a typed "<sep>" stays plain characters
        hard_vocab_limit=False,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
    )
    write_bytes(model_path, buffer.getvalue())
    return Tokenizer(model_path)


def tokenizer_path(out_dir: str | os.PathLike, tok_cfg) -> Path:
    """Where the data step keeps the tokenizer for these settings: beside the manifest."""
    return Path(out_dir) / "tokenizer" / f"spm_{tok_cfg.type}_{tok_cfg.vocab_size}_{tok_cfg.normalization}.model"
