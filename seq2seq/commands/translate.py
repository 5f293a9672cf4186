"""`seq2seq translate`: sentences in, translations out, exactly one output line per input line, in order.

Input: the text arguments; or standard input (one sentence a line, translated in buffers of
--buffer-size lines so long files start producing output early); or -i FILE. Output: standard output, or
-o FILE (written atomically; an existing file only with --force). Messages go to standard error.

Text mode prints, per hypothesis (--nbest of them, tab-separated on the line), the translation, then
its score with --scores, then its alignment with --alignments (fairseq's `S-T` pairs: source piece S,
target piece T, counted from 0). --format jsonl prints one JSON object per line instead.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from itertools import islice
from pathlib import Path

from seq2seq.commands.common import (
    add_model_arguments,
    add_progress_argument,
    add_search_arguments,
    batching,
    check_output,
    count_lines,
    load_translator,
    progress_bar,
    read_lines,
    search_config,
    warn,
)
from seq2seq.commands.partial import PartialOutput
from seq2seq.data.corpora import sha256_file
from seq2seq.errors import UserError
from seq2seq.io import atomic_write
from seq2seq.translator import record
from seq2seq.viz.maps import format_alignment

HISTORY = Path.home() / ".seq2seq_history"
# option -> (the translate_full keyword it fills, the flag): files with one entry per input line
LINE_FILES = {"prefix_file": ("target_prefix", "--prefix-file"),
              "constraints_file": ("constraints", "--constraints-file")}


def add_arguments(p) -> None:
    p.add_argument("text", nargs="*", help="sentences to translate, one output line each (none: read standard input)")
    g = p.add_argument_group("input and output")
    g.add_argument("-i", "--input", type=Path, help="read sentences from this file, one a line")
    g.add_argument("-o", "--output", type=Path, help="write translations to this file (atomically)")
    g.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    g.add_argument("--resume", action="store_true",
                   help="with -i and -o: write OUTPUT.partial as you go, and continue it if it is there")
    add_progress_argument(g)
    g.add_argument("--buffer-size", type=int,
                   help="lines read before translating (default 1000; 1 when reading a terminal)")
    g.add_argument("--format", choices=("text", "jsonl"), default="text",
                   help="text: translations, tab-separated extras; jsonl: one JSON object per input line")
    g.add_argument("--scores", action="store_true", help="text mode: add each hypothesis's score after a tab")
    g.add_argument("--alignments", action="store_true",
                   help="add, per hypothesis, the source piece each target piece attends to most (S-T pairs)")
    g.add_argument("--alignment-layer", type=int, default=-1,
                   help="decoder layer whose cross-attention (heads averaged) gives the alignments (default: last)")
    g.add_argument("--explain", action="store_true",
                   help="on standard error: each generated piece, the top-5 candidates and their probabilities")
    g.add_argument("--interactive", action="store_true",
                   help="a prompt with line editing and history; `source ||| prefix` forces a target prefix")
    g.add_argument("--prefix-file", type=Path, metavar="F",
                   help="one French prefix per input line (an empty line: none): each translation begins with it")
    g.add_argument("--constraints-file", type=Path, metavar="F",
                   help="per input line, tab-separated French phrases the translation must contain (beam search)")
    g.add_argument("--constraints-ordered", action="store_true", help="the constraints must appear in the order given")
    add_search_arguments(p)
    add_model_arguments(p, ensemble=True)


def run(args) -> None:
    search = search_config(args)
    options = {"search": search, **batching(args)}  # the keywords of Translator.translate_full
    check_arguments(args)
    extras = read_line_files(args)
    translator = load_translator(args)
    options.update(alignments=args.alignments, alignment_layer=args.alignment_layer, explain=args.explain)
    try:
        translator.check(search, args.alignments, args.explain)
    except ValueError as e:
        raise UserError(str(e)) from None
    layers = len(translator.model.decoder.layers) if args.alignments else 0
    if args.alignments and not -layers <= args.alignment_layer < layers:
        raise UserError(f"--alignment-layer {args.alignment_layer}: the decoder has {layers} layers")
    formatter = Formatter(args, translator, search)
    try:
        if args.interactive:
            return interactive(translator, options, formatter)
        if args.resume:
            return resume(args, translator, options, formatter, extras)
        total = count_lines(args.input) if args.input else len(args.text) or None
        with progress_bar(args, total, show_by_default=bool(args.input or args.output)) as bar:
            options["progress"] = bar.update
            if args.output is None:
                return translate_stream(translator, options, formatter, sys.stdout.buffer, *input_lines(args), extras)

            atomic_write(args.output, lambda f: translate_stream(translator, options, formatter, f, *input_lines(args),
                                                                 extras))
    except KeyboardInterrupt:
        sys.exit(130)


def check_arguments(args) -> None:
    """Refuse, before any work, what cannot go together."""
    if args.buffer_size is not None and args.buffer_size < 1:
        raise UserError("--buffer-size must be at least 1")
    if sum(map(bool, (args.text, args.input, args.interactive))) > 1:
        raise UserError("give sentences as arguments, or -i FILE, or --interactive: only one of them")
    if args.input is not None and not args.input.is_file():
        raise UserError(f"input file not found: {args.input}")
    if args.resume and (args.input is None or args.output is None):
        raise UserError("--resume continues a file: it needs -i INPUT and -o OUTPUT")
    if args.constraints_file is not None and args.temperature is not None:
        raise UserError("--constraints-file needs beam search: drop --temperature")
    check_output(args.output, args.force)


def resume(args, translator, options: dict, formatter: Formatter, extras: dict[str, list]) -> None:
    """Translate into OUTPUT.partial, after the lines an earlier run left there; see commands/partial.py."""
    meta = {"input_sha256": sha256_file(args.input), "model": model_record(args.model, translator),
              "options": {**asdict(options["search"]), "format": args.format, "scores": args.scores,
                          "alignments": args.alignments, "alignment_layer": args.alignment_layer,
                          **{f"{attr}_sha256": sha256_file(getattr(args, attr)) if getattr(args, attr) else None
                             for attr in LINE_FILES}}}
    output = PartialOutput(args.output, meta)
    f, done = output.open()
    if done:
        warn(f"resuming {output.partial} after its {done} lines")
    lines, buffer_size = input_lines(args)
    with f, progress_bar(args, count_lines(args.input), initial=done, show_by_default=True) as bar:
        options["progress"] = bar.update
        translate_stream(translator, options, formatter, f, islice(lines, done, None), buffer_size,
                         {keyword: values[done:] for keyword, values in extras.items()})
        output.finish(f)


def model_record(directories: Path | list[Path], translator) -> dict:
    """What says which model made an output: its directories, the sha256 of their weights, the precision."""
    directories = directories if isinstance(directories, list) else [directories]
    return {"directories": [str(d.resolve()) for d in directories],
            "sha256": [sha256_file(d / "model.pt") for d in directories], "precision": translator.precision}


def input_lines(args):
    """-> (lines, buffer size): arguments, the -i file or standard input."""
    if args.text:
        return iter(args.text), len(args.text)
    stream = args.input.open("rb") if args.input else sys.stdin.buffer
    size = args.buffer_size or (1 if stream.isatty() else 1000)
    return read_lines(stream), size


def read_line_files(args) -> dict[str, list]:
    """What --prefix-file and --constraints-file give each input line: {translate_full keyword: one entry
    per line}. A line count other than the input's is refused before any work (for standard input, as
    soon as the mismatch shows)."""
    n = count_lines(args.input) if args.input is not None else len(args.text) if args.text else None
    out = {}
    for attr, (keyword, flag) in LINE_FILES.items():
        path = getattr(args, attr)
        if path is None:
            continue
        if args.interactive:
            raise UserError(f"--interactive takes no {flag} (a prefix goes after `|||` on the line)")
        if not path.is_file():
            raise UserError(f"{flag} not found: {path}")
        with path.open("rb") as f:
            lines = list(read_lines(f, warn=lambda m, p=path: warn(f"{p}: {m}")))
        if n is not None and n != len(lines):
            raise line_count_error(keyword, len(lines), n)
        if keyword == "constraints":  # tab-separated phrases
            lines = [[c for c in line.split("\t") if c.strip()] for line in lines]
        out[keyword] = lines
    return out


def translate_stream(translator, options: dict, formatter: Formatter, out, lines, buffer_size: int,
                     extras: dict[str, list] | None = None) -> None:
    """Translate `lines` buffer by buffer, writing (and flushing) one line per input line; `extras` gives
    per-line keywords of translate_full (target_prefix, constraints)."""
    number, extras = 0, extras or {}
    while chunk := list(islice(lines, buffer_size)):
        start = time.perf_counter()
        extra = {keyword: values[number:number + len(chunk)] for keyword, values in extras.items()}
        for keyword, values in extra.items():
            if len(values) < len(chunk):
                raise line_count_error(keyword, len(extras[keyword]), "more")
        translations = translator.translate_full(chunk, **options, **extra)
        timing = {"batch_seconds": round(time.perf_counter() - start, 4), "batch_lines": len(chunk)}
        for t in translations:
            number += 1
            out.write((formatter.line(t, timing) + "\n").encode("utf-8"))
            if options["explain"]:
                formatter.explain(number, t)
        out.flush()
    for keyword, values in extras.items():
        if len(values) != number:
            raise line_count_error(keyword, len(values), number)


def line_count_error(keyword: str, lines: int, input_lines) -> UserError:
    flag = next(flag for k, flag in LINE_FILES.values() if k == keyword)
    return UserError(f"{flag} has {lines} lines but the input has {input_lines}")


def interactive(translator, options: dict, formatter: Formatter) -> None:
    """A REPL like `fairseq-interactive`: readline editing, history in ~/.seq2seq_history, Ctrl-D quits."""
    try:
        import readline  # noqa: PLC0415 - lazy: optional module (no GNU readline on Windows), for the REPL only
    except ImportError:  # no GNU readline (Windows): plain input()
        readline = None
    if readline is not None:
        try:
            readline.read_history_file(HISTORY)
        except OSError:
            pass
    warn("Type a sentence and press Enter; Ctrl-D quits.")
    number = 0
    try:
        while True:
            try:
                line = input("> ")
            except EOFError:
                print(file=sys.stderr)
                return
            except KeyboardInterrupt:  # Ctrl-C drops the current line, as in a shell
                print(file=sys.stderr)
                continue
            number += 1
            start = time.perf_counter()
            source, bar, prefix = line.partition("|||")
            t = translator.translate_full([source if bar else line], **options,
                                          target_prefix=[prefix.lstrip() if bar else None])[0]
            timing = {"batch_seconds": round(time.perf_counter() - start, 4), "batch_lines": 1}
            print(formatter.line(t, timing), flush=True)
            if options["explain"]:
                formatter.explain(number, t)
    finally:
        if readline is not None:
            try:
                readline.set_history_length(1000)
                readline.write_history_file(HISTORY)
            except OSError:
                pass


class Formatter:
    """Text or JSON lines for translations, and the step-by-step view of --explain."""

    def __init__(self, args, translator, search):
        self.format, self.scores, self.alignments = args.format, args.scores, args.alignments
        self.tokenizer = translator.tokenizer
        recomputed = "" if search.sampling else ": the best hypothesis, its distributions recomputed"
        self.search = search.describe() + recomputed

    def line(self, t, timing: dict) -> str:
        if self.format == "jsonl":
            return json.dumps(self.record(t, timing), ensure_ascii=False)
        fields = []
        for k, text in enumerate(t.texts):
            fields.append(text)
            if self.scores:
                fields.append(f"{t.hypotheses[k].score:.4f}")
            if self.alignments:
                fields.append(format_alignment(t.alignments[k]))
        return "\t".join(fields)

    def record(self, t, timing: dict) -> dict:
        return record(t, timing, self.alignments)

    def explain(self, number: int, t) -> None:
        """The generation loop of the best hypothesis: each step's top candidates, the choice, the running
        log-probability."""
        if not t.steps:
            warn(f"[{number}] (empty input)")
            return
        piece = lambda i: self.tokenizer.id_to_piece([i])[0]
        lines = [f"[{number}] {t.source}", f"    {self.search}",
                 f"    {'step':>4}  {'chosen':<14} {'p':>6} {'log p':>7} {'running':>8}   top-5 candidates (p)"]
        running = 0.0
        for j, s in enumerate(t.steps, 1):
            running += s.logprob
            top = "  ".join(f"{piece(i)} {p:.3f}" for i, p in s.top)
            lines.append(f"    {j:>4}  {piece(s.token):<14} {s.prob:>6.3f} {s.logprob:>7.3f} {running:>8.3f}   {top}")
        lines.append(f"    -> {t.text}   (confidence: mean log p {t.confidence():.3f})")
        warn("\n".join(lines))
