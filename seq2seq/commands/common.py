"""Helpers shared by the argparse commands: the model to load, the search flags, safe input and output."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from seq2seq.decode.config import SearchConfig, SearchConfigError
from seq2seq.decode.precision import PRECISIONS
from seq2seq.errors import UserError
from seq2seq.model.directory import default_model_dir
from seq2seq.translator import Translator


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- model

def add_model_arguments(p, ensemble: bool = False) -> None:
    g = p.add_argument_group("model")
    if ensemble:
        g.add_argument("--model", type=Path, action="append",
                       help="model directory (default: the model/ of the latest finished `make train` run); "
                            "repeat for an ensemble, which averages the models' next-piece probabilities")
    else:
        g.add_argument("--model", type=Path,
                       help="model directory (default: the model/ of the latest finished `make train` run)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    g.add_argument("--batch-size", type=int, default=64, help="sentences per batch (default 64)")
    g.add_argument("--batch-tokens", type=int,
                   help="source pieces per batch, padding included (instead of --batch-size)")
    g.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's choice, all cores)")
    g.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32 (default), bf16 autocast, or int8 dynamic quantization (CPU); "
                        "see docs/BENCHMARKS.md for speed and BLEU")


def load_translator(args):
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be at least 1 (got {args.threads})")
        torch.set_num_threads(args.threads)
    directory = args.model
    if directory is None:
        directory = args.model = default_model_dir()  # the commands that record the model read it back
        warn(f"model: {directory}")
    if isinstance(directory, list) and len(directory) == 1:
        directory = directory[0]
    try:
        return Translator.load(directory, args.device, warn=warn, precision=args.precision)
    except ValueError as e:  # int8 on a GPU
        raise UserError(str(e)) from None


# ---------------------------------------------------------------------------------------------- search

def add_search_arguments(p, sampling: bool = True) -> None:
    g = p.add_argument_group("search (beam search unless --temperature is given)")
    g.add_argument("--beam", type=int, default=4, help="beam size (default 4, the paper's)")
    g.add_argument("--lenpen", type=float, default=0.6, help="length penalty alpha of Wu et al. 2016 (default 0.6)")
    g.add_argument("--max-len-a", type=float, default=1.0,
                   help="output at most a * source length + b pieces (default a=1)")
    g.add_argument("--max-len-b", type=int, default=50, help="(default b=50)")
    g.add_argument("--copy-unseen", action=argparse.BooleanOptionalAction,
                   help="capitalised source words that training never saw (names, mostly) must appear in the "
                        "translation as written (default: with beam search, when the model directory has "
                        "source_words.txt; --copy-unseen requires it, --no-copy-unseen turns it off)")
    if not sampling:
        return
    g.add_argument("--nbest", type=int, default=1, help="hypotheses per input, at most --beam (default 1)")
    g.add_argument("--temperature", type=float,
                   help="sample each piece from softmax(logits / T) instead of beam search: "
                        "T < 1 sharpens, T > 1 flattens, 0 = always the most likely piece (greedy)")
    g.add_argument("--top-k", type=int, default=0, help="sample among the k most likely pieces only (0 = all)")
    g.add_argument("--top-p", type=float, default=1.0,
                   help="sample among the smallest set of pieces holding probability p")
    g.add_argument("--seed", type=int, help="random seed for sampling (reproducible output)")


def search_config(args) -> SearchConfig:
    """The search the flags describe; UserError names the flag that is wrong."""
    fields = {"beam": args.beam, "lenpen": args.lenpen, "max_len_a": args.max_len_a, "max_len_b": args.max_len_b,
              "copy_unseen": args.copy_unseen}
    for name in ("nbest", "temperature", "top_k", "top_p", "seed", "constraints_ordered"):
        if hasattr(args, name):
            fields[name] = getattr(args, name)
    try:
        return SearchConfig(**fields)
    except SearchConfigError as e:
        raise UserError(e.for_cli()) from None


def batching(args) -> dict:
    """Checked `batch_size` / `batch_tokens` keywords for `Translator.translate_full`."""
    if args.batch_size < 1 or (args.batch_tokens is not None and args.batch_tokens < 1):
        raise UserError("--batch-size and --batch-tokens must be at least 1")
    return {"batch_size": args.batch_size, "batch_tokens": args.batch_tokens}


# ---------------------------------------------------------------------------------------------- input / output

def read_lines(stream, warn=warn, first: int = 1):
    """Lines of a binary stream without their line ends, split on \\n only (so one output line per input
    line, as `wc -l` counts them); invalid UTF-8 is replaced with U+FFFD and reported by line number."""
    for number, raw in enumerate(stream, first):
        raw = raw.removesuffix(b"\n").removesuffix(b"\r")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            warn(f"warning: line {number} is not valid UTF-8; the bad bytes are replaced with U+FFFD")
            yield raw.decode("utf-8", errors="replace")


def count_lines(path: Path) -> int:
    """Lines as `read_lines` yields them: a last line without its newline counts too."""
    with path.open("rb") as f:
        return sum(1 for _ in f)


def add_progress_argument(group) -> None:
    group.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="a progress bar on standard error (lines, lines/s, ETA); default: when it is a terminal")


def progress_bar(args, total: int | None, initial: int = 0, show_by_default: bool = True):
    """A tqdm bar on standard error, or a stand-in that shows nothing (`--no-progress`, or not a terminal)."""
    show = args.progress if args.progress is not None else show_by_default and sys.stderr.isatty()
    if not show:
        return contextlib.nullcontext(NoProgress())

    return tqdm(total=total, initial=initial, unit=" lines", file=sys.stderr, dynamic_ncols=True)


class NoProgress:
    def update(self, n: int = 1) -> None:
        pass


def check_output(path: Path | None, force: bool) -> None:
    """Refuse, before any work, to overwrite an existing file (or to write where no file can go)."""
    if path is None:
        return
    if path.is_dir():
        raise UserError(f"{path} is a directory, not an output file")
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise UserError(f"cannot write {path}: no directory {path.parent}")
