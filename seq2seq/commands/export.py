"""`seq2seq export`: a model directory as a Hugging Face (MarianMT / GPT-2) or CTranslate2 model (docs/EXPORT.md)."""

from __future__ import annotations

from pathlib import Path

from seq2seq.commands.common import default_model_dir
from seq2seq.errors import UserError
from seq2seq.export import ExportError, export


def add_arguments(p) -> None:
    p.add_argument("--model", type=Path, help="model directory (default: the latest run's)")
    p.add_argument("--format", choices=("hf", "ct2"), default="hf",
                   help="hf: Hugging Face transformers directory; ct2: CTranslate2 model directory (default hf)")
    p.add_argument("--out", type=Path, required=True, help="output directory (created; files in it are replaced)")
    p.add_argument("--quantization", help="with --format ct2: weight type, e.g. int8 (default: float32)")


def run(args) -> None:
    model_dir = args.model or default_model_dir()
    try:
        out = export(model_dir, args.format, args.out, args.quantization)
    except ExportError as e:
        raise UserError(str(e)) from None
    print(f"exported {model_dir} -> {out} ({args.format})")
