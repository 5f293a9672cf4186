"""`seq2seq score --src X --tgt Y`: the model's log-probability of given translations (forced decoding).

One output line per input pair, in order: the sum of the pieces' log-probabilities (<eos> included),
their mean, and the length-penalised score beam search ranks by (--lenpen), tab-separated. --format jsonl
adds the pieces and their log-probabilities.
"""

from __future__ import annotations

import json
import sys
from itertools import islice
from pathlib import Path

from seq2seq.commands.common import add_model_arguments, batching, check_output, load_translator, read_lines, warn
from seq2seq.decode.config import SearchConfig, SearchConfigError
from seq2seq.errors import UserError
from seq2seq.io import atomic_write

BUFFER = 1000  # pairs scored, then written, at a time


def add_arguments(p) -> None:
    g = p.add_argument_group("input and output")
    g.add_argument("--src", type=Path, required=True, help="source sentences, one a line")
    g.add_argument("--tgt", type=Path, required=True, help="their translations, line by line")
    g.add_argument("-o", "--output", type=Path, help="write the scores to this file (atomically)")
    g.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    g.add_argument("--format", choices=("text", "jsonl"), default="text",
                   help="text: logprob, mean, score, tab-separated; jsonl: also the pieces and their log-probabilities")
    g.add_argument("--lenpen", type=float, default=0.6,
                   help="length penalty alpha of the score (default 0.6, as search)")
    add_model_arguments(p, ensemble=True)


def run(args) -> None:
    try:
        search = SearchConfig(lenpen=args.lenpen)
    except SearchConfigError as e:
        raise UserError(e.for_cli()) from None
    batches = batching(args)
    sources, targets = read_file(args.src), read_file(args.tgt)
    if len(sources) != len(targets):
        raise UserError(f"{args.src} has {len(sources)} lines but {args.tgt} has {len(targets)}")
    check_output(args.output, args.force)
    translator = load_translator(args)

    def write(out) -> None:
        pairs = iter(zip(sources, targets))
        while chunk := list(islice(pairs, BUFFER)):
            for scored in translator.score([s for s, _ in chunk], [t for _, t in chunk], search, **batches):
                out.write((format_line(scored, args.format) + "\n").encode("utf-8"))
            out.flush()

    if args.output is None:
        return write(sys.stdout.buffer)

    atomic_write(args.output, write)


def read_file(path: Path) -> list[str]:
    try:
        with path.open("rb") as f:
            return list(read_lines(f, warn=lambda m: warn(f"{path}: {m}")))
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None


def format_line(scored, fmt: str) -> str:
    if fmt == "text":
        return f"{scored.logprob:.4f}\t{scored.mean:.4f}\t{scored.score:.4f}"
    record = {"logprob": round(scored.logprob, 4), "mean": round(scored.mean, 4), "score": round(scored.score, 4),
              "pieces": scored.pieces, "token_logprobs": [round(x, 4) for x in scored.token_logprobs]}
    return json.dumps(record, ensure_ascii=False)
