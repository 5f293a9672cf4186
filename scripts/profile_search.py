"""Where the time of a search goes: torch.profiler over `Translator.translate_full`, one table of operators.

    python scripts/profile_search.py --model outputs/cpu_small/model [--beam 4] [--sentences 128] [--threads 2]

Prints the wall time, sentences/s, and the operators with the most self CPU time (their share of the total),
grouped the way the benchmark docs summarise them. Run it before and after a change to the search.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seq2seq.config import compose  # noqa: E402
from seq2seq.data.sets import read_sets  # noqa: E402
from seq2seq.decode.config import SearchConfig  # noqa: E402
from seq2seq.translator import Translator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--beam", type=int, default=4, help="beam size (1: greedy)")
    parser.add_argument("--sentences", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", default="multi30k/test_2016_flickr")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sources = read_sets(compose().data, [args.set])[0][: args.sentences]
    translator = Translator.load(args.model)
    search = SearchConfig(beam=args.beam) if args.beam > 1 else SearchConfig(temperature=0.0)
    translator.translate_full(sources[:16], search)  # warm-up
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        translator.translate_full(sources, search)
    seconds = time.perf_counter() - start
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{len(sources)} sentences, {search.describe()}, {args.threads} threads: {seconds:.2f} s under the profiler "
          f"({len(sources) / seconds:.1f} sentences/s)")
    print(f"{'operator':<42} {'self CPU ms':>12} {'share':>7} {'calls':>8}")
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[: args.top]:
        print(f"{e.key[:42]:<42} {e.self_cpu_time_total / 1000:>12.1f} {100 * e.self_cpu_time_total / total:>6.1f}% "
              f"{e.count:>8,}")


if __name__ == "__main__":
    main()
