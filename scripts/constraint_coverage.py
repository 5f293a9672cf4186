"""Lexical constraints on a test set: give each sentence whose translation misses a word of its reference
that word (the first one missed) as a constraint, and see whether it appears and what BLEU does.

    python scripts/constraint_coverage.py --model outputs/cpu_small/model [--set tatoeba/test] [--beam 4]

Prints one markdown row (for the benchmark docs) and a few examples; `--json F` keeps the whole result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seq2seq.config import compose  # noqa: E402
from seq2seq.data.sets import read_sets  # noqa: E402
from seq2seq.decode.config import SearchConfig  # noqa: E402
from seq2seq.evaluate import constraint_coverage  # noqa: E402
from seq2seq.io import write_text  # noqa: E402
from seq2seq.translator import Translator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--set", default="tatoeba/test")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--max-sentences", type=int, help="only the first N sentences of the set")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--json", type=Path, help="write the whole result here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sources, references = read_sets(compose().data, [args.set])
    sources, references = sources[: args.max_sentences], references[: args.max_sentences]
    found = constraint_coverage(Translator.load(args.model), sources, references, SearchConfig(beam=args.beam))
    n = found["missing_a_word"]
    print("| set | sentences | missing a reference word | constraint appears | as a whole word "
          "| BLEU of those, plain → constrained |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {args.set} | {found['sentences']:,} | {n:,} | {found['appears']:,} ({found['appears'] / max(n, 1):.1%}) "
          f"| {found['appears_as_word']:,} ({found['appears_as_word'] / max(n, 1):.1%}) "
          f"| {found['bleu_before']:.2f} → {found['bleu_after']:.2f} |")
    for e in found["examples"]:
        print(f"\n  {e['source']}\n  + {e['constraint']!r}\n  before: {e['before']}\n  after:  {e['after']}")
    if args.json:
        write_text(args.json, json.dumps(found, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
