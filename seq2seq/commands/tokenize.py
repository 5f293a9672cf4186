"""`seq2seq tokenize TEXT`: the pieces and ids SentencePiece makes of a text."""

from __future__ import annotations

from pathlib import Path

from seq2seq.commands.common import default_model_dir
from seq2seq.data.text import clean
from seq2seq.data.tokenizer import Tokenizer


def add_arguments(p) -> None:
    p.add_argument("text", nargs="+", help="text to split (several arguments are joined by spaces)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--model", type=Path, help="model directory whose spm.model to use (default: the latest run's)")
    group.add_argument("--spm", type=Path, help="a SentencePiece model file")


def run(args) -> None:
    path = args.spm or (args.model or default_model_dir()) / "spm.model"
    tokenizer = Tokenizer(path)
    text = clean(" ".join(args.text))
    ids = tokenizer.encode([text])[0]
    pieces = tokenizer.id_to_piece(ids)
    print(f"{len(ids)} pieces ({tokenizer.path})")
    print(" ".join(pieces))
    print(" ".join(map(str, ids)))
    for piece, i in zip(pieces, ids):
        print(f"{i:>6}  {piece}")
