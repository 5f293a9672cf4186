"""`seq2seq attention "SENTENCE"`: translate one sentence and draw what the model attended to.

Writes PNG figures under --out (see seq2seq/viz/figures.py) and prints their paths on standard output,
one a line; the translation goes to standard error. --show-tokens prints the pieces and ids of the
source and the translation first. Works for both model kinds: for the decoder-only model, target →
source attention stands where cross-attention stands.
"""

from __future__ import annotations

from pathlib import Path

from seq2seq.commands.common import load_translator, warn
from seq2seq.decode.config import SearchConfig
from seq2seq.errors import UserError
from seq2seq.viz.figures import labels, write_figures
from seq2seq.viz.maps import attention_maps


def add_arguments(p) -> None:
    p.add_argument("sentence", help="the English sentence to translate and draw")
    p.add_argument("--model", type=Path,
                   help="model directory (default: the model/ of the latest finished `make train` run)")
    p.add_argument("--out", type=Path, default=Path("outputs/attention"),
                   help="folder for the figures, created if needed (default outputs/attention)")
    p.add_argument("--layer", type=int, default=-1,
                   help="layer of the head grid, the self-attention maps and the spotlight, counted from 0; "
                        "negative counts from the end (default -1: the last)")
    p.add_argument("--target-token", metavar="WORD",
                   help="also draw where this target piece (or word) looks in the source, a bar per source piece")
    p.add_argument("--show-tokens", action="store_true",
                   help="print the pieces and ids of the source and the translation")
    p.add_argument("--beam", type=int, default=4, help="beam size of the translation (default 4; 1 = greedy)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.set_defaults(threads=None, precision="fp32")  # the pictures come from the fp32 reference path


def run(args) -> None:
    if args.beam < 1:
        raise UserError(f"--beam must be at least 1 (got {args.beam})")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file, not a folder")
    translator = load_translator(args)
    model, tokenizer = translator.model, translator.tokenizer
    check_layer(model, args.layer)
    source = translator.split([args.sentence])[0]
    if not source:
        raise UserError("the sentence is empty: nothing to translate or draw")
    if len(source) > 1:  # split at sentence ends: one picture cannot show it
        raise UserError(f"the sentence is longer than the model's {translator.max_source_pieces} source pieces: "
                        "draw a shorter one")
    translation = translator.translate_full([args.sentence], SearchConfig(beam=args.beam))[0]
    target = translation.hypotheses[0].tokens
    warn(f"{translation.source}\n-> {translation.text}")
    if args.show_tokens:
        print(token_table("source", source[0], tokenizer))
        print(token_table("translation", target, tokenizer))

    maps = attention_maps(model, source, [target])[0]
    try:
        paths = write_figures(maps, labels(maps, tokenizer, model.kind), args.out, args.layer, args.target_token)
    except ValueError as e:  # the --target-token word is not in the translation
        raise UserError(f"--target-token: {e}") from None
    except OSError as e:
        raise UserError(f"cannot write figures under {args.out}: {e.strerror or e}") from None
    for path in paths:
        print(path)


def check_layer(model, layer: int) -> None:
    """UserError unless `layer` indexes every stack the figures read."""
    if model.kind == "transformer":
        stacks = {"encoder": len(model.encoder.layers), "decoder": len(model.decoder.layers)}
    else:
        stacks = {"model": len(model.decoder.layers)}
    for name, count in stacks.items():
        if not -count <= layer < count:
            raise UserError(f"--layer {layer}: the {name} has {count} layers (0 to {count - 1}, or -1 to -{count})")


def token_table(title: str, ids: list[int], tokenizer) -> str:
    """`title (n pieces):` then one `index  id  piece` line per piece: the indices the figures and
    `translate --alignments` count with."""
    lines = [f"{title} ({len(ids)} pieces):"]
    lines += [f"  {i:>3}  {t:>6}  {p}" for i, (t, p) in enumerate(zip(ids, tokenizer.id_to_piece(ids)))]
    return "\n".join(lines)
