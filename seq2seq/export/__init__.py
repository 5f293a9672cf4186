"""Export a model directory to other toolkits.

    hf   Hugging Face `transformers`: MarianMT for the encoder–decoder (marian.py), GPT-2 for the
         decoder-only model where its architecture allows (gpt2.py)
    ct2  CTranslate2, converted from the MarianMT export (ct2.py)

`transformers` (and `ctranslate2` for ct2) are optional: the `dev` / `bench` extras install them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from seq2seq.errors import ExportError
from seq2seq.model.directory import load_model_dir

FORMATS = ("hf", "ct2")


def require(package: str):
    """Import an optional package or raise ExportError naming the extra that installs it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ExportError(f"export needs the `{package}` package: pip install '{package}' "
                          "(or the project's `bench` extra)") from None


def export(model_dir, fmt: str, out, quantization: str | None = None) -> Path:
    """Export the model directory `model_dir` to `out` in format `fmt`; returns `out`."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if quantization and fmt != "ct2":
        raise ExportError("--quantization applies to --format ct2 only")
    model, tokenizer, cfg = load_model_dir(model_dir)
    out = Path(out)
    if fmt == "hf":
        if cfg.kind == "gpt":
            from seq2seq.export.gpt2 import save_gpt2  # noqa: PLC0415 - import cycle: gpt2.py imports this package

            return save_gpt2(model, cfg, tokenizer, out)
        from seq2seq.export.marian import save_marian  # noqa: PLC0415 - import cycle: marian.py imports this package

        return save_marian(model, cfg, tokenizer, out)
    from seq2seq.export.ct2 import save_ct2  # noqa: PLC0415 - import cycle: ct2.py imports this package

    return save_ct2(model, cfg, tokenizer, out, quantization)
