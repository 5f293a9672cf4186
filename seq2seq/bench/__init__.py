"""`make bench` (`python -m seq2seq.bench`): ours against the peers, side by side in one run.

1. Training throughput of our models against Hugging Face models of the identical config and against
   torch.nn models of the same shape, on the same batches of the real corpora (training.py, peers.py).
2. Decoding speed on Multi30k test_2016_flickr: ours (cached and uncached) against Hugging Face
   generate() and CTranslate2 running the same weights through the export, with a check that greedy
   outputs agree (decoding.py).
3. Peak RSS of each measurement, each implementation in a process of its own, all called in turns
   (measure.py); `seq2seq translate` over a long input, showing memory stays bounded.
4. `seq2seq serve` under 1, 8 and 64 concurrent clients, with dynamic batching and batch of 1, beside
   `seq2seq translate` on the same sentences, and the server's memory over many requests (serve.py).

Prints the table with ratios and appends it, dated, to docs/benchmarks/<date>.md (report.py); the current figures are
copied by hand into the summary, docs/BENCHMARKS.md. Only ratios mean
anything on a shared machine. `--quick` is a smoke run.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import torch

from seq2seq.bench import decoding, report, serve, training
from seq2seq.bench.measure import translate_memory
from seq2seq.bench.peers import IMPLEMENTATIONS
from seq2seq.config import compose, model_config
from seq2seq.data.batching import layout_of
from seq2seq.data.corpora import DataError
from seq2seq.data.prepare import read_split
from seq2seq.data.sets import active_sets, encode_pairs, read_sets
from seq2seq.data.text import clean
from seq2seq.data.tokenizer import Tokenizer, tokenizer_path
from seq2seq.decode.search import max_lengths
from seq2seq.errors import UserError
from seq2seq.export import ExportError, export
from seq2seq.model.build import build_model
from seq2seq.model.directory import default_model_dir, load_model_dir, save_model_dir

QUICK = dict(models="transformer_small,gpt_small", batches=2, warmup=1, batch_tokens=2000, sentences=16, repeat=1,
             translate_lines=500, serve_sentences=16, serve_requests=200)
FULL = dict(models="transformer_small,transformer_base,gpt_small", batches=10, warmup=2, batch_tokens=None,
            sentences=None, repeat=2, translate_lines=100_000, serve_sentences=256, serve_requests=10_000)
SECTIONS = ("training", "decoding", "translate", "serve")
TEST_SET = "multi30k/test_2016_flickr"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m seq2seq.bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: small models, a few batches and sentences")
    p.add_argument("--models", help=f"model configs to train (default {FULL['models']}; quick: {QUICK['models']})")
    p.add_argument("--batches", type=int, help="timed training batches per implementation (default 10; quick 2)")
    p.add_argument("--warmup", type=int, help="untimed training batches first (default 2; quick 1)")
    p.add_argument("--batch-tokens", type=int,
                   help="tokens per training batch (default: the default experiment's; quick 2000)")
    p.add_argument("--sentences", type=int, help=f"sentences of {TEST_SET} to decode (default all; quick 16)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per decoding batch (default 64)")
    p.add_argument("--repeat", type=int, help="decoding runs per measurement, the fastest counts (default 2; quick 1)")
    p.add_argument("--model", type=Path, help="model directory to decode with (default: the latest trained run; "
                                              "none: a random-init --decode-config)")
    p.add_argument("--decode-config", default="transformer_small", help="model config for random-init decoding weights")
    p.add_argument("--translate-lines", type=int,
                   help="lines for the translate memory check (default 100000; quick 500)")
    p.add_argument("--translate-config", default="transformer_tiny", help="model config for the translate memory check")
    p.add_argument("--serve-sentences", type=int,
                   help="sentences sent to `seq2seq serve` at each load (default 256; quick 16)")
    p.add_argument("--serve-clients", default="1,8,64", help="concurrent clients, comma-separated (default 1,8,64)")
    p.add_argument("--serve-requests", type=int,
                   help="requests over which the server's RSS is sampled (default 10000; quick 200; 0: none)")
    p.add_argument("--skip", action="append", choices=SECTIONS, default=[], help="leave a section out (repeatable)")
    p.add_argument("--data", type=Path, help="prepared data directory (default: the config's data.out_dir)")
    p.add_argument("--tokenizer", type=Path,
                   help="SentencePiece model (default: the data step's for the default config)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks") / f"{datetime.now(UTC):%Y-%m-%d}.md",
                   help="markdown file to append to (default: docs/benchmarks/<today, UTC>.md, the dated log)")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--in-process", action="store_true", help="run every measurement in this process (tests)")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                name = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{name}, {os.cpu_count()} cores"


def versions() -> str:
    found = []
    for package in ("torch", "transformers", "ctranslate2"):
        try:
            found.append(f"{package} {md.version(package)}")
        except md.PackageNotFoundError:
            found.append(f"{package} missing")
    return ", ".join(found)


def command_line(argv: list[str]) -> str:
    if os.environ.get("MAKELEVEL"):
        return "make bench" + (f' ARGS="{" ".join(argv)}"' if argv else "")
    return " ".join(["python -m seq2seq.bench", *argv])


def random_model_dir(config: str, tokenizer, directory: Path) -> Path:
    """A model directory with random-init weights of `config` and our tokenizer."""
    cfg = model_config(config)
    torch.manual_seed(1)
    return save_model_dir(directory, build_model(cfg, len(tokenizer)).state_dict(), cfg, len(tokenizer), tokenizer.path)


def run_training(args, cfg, tokenizer, results, log) -> None:
    names = active_sets(cfg.data, "train_sets")
    pairs = encode_pairs(tokenizer, *read_sets(cfg.data, names), cfg.trainer.max_len)
    batch_tokens = args.batch_tokens or cfg.trainer.batch_tokens
    results["training_setup"] = {"batches": args.batches, "warmup": args.warmup, "batch_tokens": batch_tokens,
                                 "corpus": " + ".join(names)}
    results["training"] = []
    for name in args.models.split(","):
        model_cfg = model_config(name)
        batches = training.sample_batches(pairs, layout_of(model_cfg.kind), batch_tokens, args.warmup + args.batches)
        for row in training.throughput(list(IMPLEMENTATIONS), model_cfg, len(tokenizer), batches, args.warmup,
                                       args.threads, isolate=not args.in_process):
            results["training"].append({"model": name, **row})
            log(f"train {name:<18} {row['implementation']:<6} {row['tokens_per_s']:>9,.0f} tokens/s  "
                f"peak RSS {row['peak_rss_mib']:,.0f} MiB")


def decode_model_dir(args, tokenizer, work: Path) -> tuple[Path, str]:
    """(the model directory to decode with, how the report names its weights): --model, else the latest
    trained run, else random-init weights of --decode-config."""
    if args.model is not None:
        return args.model, f"`{args.model}`"
    try:
        model_dir = default_model_dir()
        return model_dir, f"`{model_dir}` (the latest trained run)"
    except UserError:  # no trained run: random weights still time the same work
        model_dir = work / "decode_model"
        if not model_dir.is_dir():
            random_model_dir(args.decode_config, tokenizer, model_dir)
        return model_dir, (f"random-init {args.decode_config} (no trained model found, so outputs run to the length "
                           "cap: speeds per token, not per realistic sentence)")


def run_decoding(args, cfg, tokenizer, results, work: Path, log) -> None:
    model_dir, weights = decode_model_dir(args, tokenizer, work)
    model, model_tokenizer, _ = load_model_dir(model_dir)
    sources = read_split(cfg.data.out_dir, TEST_SET, cfg.data.src_lang, cfg.data.tgt_lang)[0][: args.sentences]
    ids = model_tokenizer.encode([clean(s) for s in sources])
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batches = [[ids[i] for i in order[k: k + args.batch_size]] for k in range(0, len(order), args.batch_size)]
    pieces = [[model_tokenizer.id_to_piece(s) + ["</s>"] for s in b] for b in batches]
    limits = [max_lengths(model, model.make_source(b), 1.0, 50).tolist() for b in batches]
    hf_dir = ct2_dir = None
    try:
        hf_dir = str(export(model_dir, "hf", work / "hf"))
        ct2_dir = str(export(model_dir, "ct2", work / "ct2"))
    except ExportError as e:  # a missing peer package leaves our own numbers standing
        results.setdefault("notes", []).append(f"peers left out of decoding: {e}")
    table = decoding.engines(str(model_dir), hf_dir, ct2_dir, batches, pieces, limits, args.threads,
                             isolate=not args.in_process)
    rows = decoding.speeds(table, len(batches), len(ids), args.repeat, isolate=not args.in_process)
    d = results["decoding"] = {"sentences": len(ids), "test_set": TEST_SET, "batch_size": args.batch_size,
                               "weights": weights, "rows": rows, "agreement": {}}
    for row in rows:
        log(f"decode {row['engine']:<26} {row['search']:<7} {row['sentences_per_s']:>8,.1f} sentences/s  "
            f"{row['target_tokens_per_s']:>8,.0f} pieces/s  peak RSS {row['peak_rss_mib']:,.0f} MiB")
    # Agreement within our length cap: where ours stopped at the cap, the others may run on in a batch.
    reference = next(r["outputs"] for r in rows if r["engine"] == "ours" and r["search"] == "greedy")
    caps = [cap for batch in limits for cap in batch]
    for row in rows:
        outputs = row.pop("outputs")
        if outputs is None or row["engine"] == "ours":
            continue
        if row["engine"].startswith("CTranslate2"):
            outputs = [[model_tokenizer.sp.piece_to_id(p) for p in o] for o in outputs]
        d["agreement"][row["engine"]] = sum(theirs[:cap] == mine for theirs, mine, cap in zip(outputs, reference, caps))


def run_translate(args, cfg, tokenizer, results, work: Path, log) -> None:
    sources = [s for s in read_split(cfg.data.out_dir, TEST_SET, cfg.data.src_lang, cfg.data.tgt_lang)[0] if s.strip()]
    lines = (sources * (args.translate_lines // len(sources) + 1))[: args.translate_lines]
    text = work / "translate.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model_dir = random_model_dir(args.translate_config, tokenizer, work / "translate_model")
    row = translate_memory(model_dir, text, args.threads, every=max(1, len(lines) // 20))
    results["translate"] = {**row, "weights": f"random-init {args.translate_config}"}
    log(f"translate {row['lines']:,} lines in {row['seconds']:.0f} s, peak RSS {row['peak_rss_mib']:,.0f} MiB")


def run_serve(args, cfg, tokenizer, results, work: Path, log) -> None:
    model_dir, weights = decode_model_dir(args, tokenizer, work)
    sources = [s for s in read_split(cfg.data.out_dir, TEST_SET, cfg.data.src_lang, cfg.data.tgt_lang)[0] if s.strip()]
    clients = [int(n) for n in args.serve_clients.split(",")]
    results["serve"] = {**serve.measure(model_dir, sources[: args.serve_sentences], args.threads, args.serve_requests,
                                        clients, log), "test_set": TEST_SET, "weights": weights}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)

    cfg = compose(*([f"data.out_dir={args.data}"] if args.data else []))
    tok_path = args.tokenizer or tokenizer_path(cfg.data.out_dir, cfg.tokenizer)
    if not Path(tok_path).is_file() or not (Path(cfg.data.out_dir) / "manifest.json").is_file():
        print(f"error: no prepared data ({Path(cfg.data.out_dir) / 'manifest.json'}, {tok_path}): "
              "run `make data` first", file=sys.stderr)
        sys.exit(2)
    tokenizer = Tokenizer(tok_path)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    results = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "command": command_line(argv),
               "machine": machine(), "threads": args.threads, "versions": versions(), "vocab_size": len(tokenizer),
               "tokenizer": str(tok_path), "load": [os.getloadavg()[0]]}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if "training" not in args.skip:
                run_training(args, cfg, tokenizer, results, log)
            if "decoding" not in args.skip:
                run_decoding(args, cfg, tokenizer, results, Path(tmp), log)
            if "translate" not in args.skip:
                run_translate(args, cfg, tokenizer, results, Path(tmp), log)
            if "serve" not in args.skip:
                run_serve(args, cfg, tokenizer, results, Path(tmp), log)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    results["load"].append(os.getloadavg()[0])
    section = report.markdown(results)
    print(section)
    if not args.no_write:
        report.append(args.out, section)
        log(f"appended to {args.out}")
    return results

