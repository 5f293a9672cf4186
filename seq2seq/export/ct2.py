"""CTranslate2 from the MarianMT export (marian.py), decoding exactly as search.py does.

`ct2-transformers-converter` cannot take our MarianMT directory as is: its Marian loader assumes the
Helsinki-NLP opus-mt layout, where Hugging Face appended <pad> as the *last* vocabulary entry (it drops
the last row of every vocabulary matrix, so our 400-piece vocabulary fails its size check) and the
decoder starts from a zero vector instead of a token. Ours has <pad> at id 0 and starts from <bos>.
CTranslate2's Python converter with its BART loader (the same post-norm network; Marian's differences
are the two flags set below) converts it whole, starting from `decoder_start_token_id`.

Translate with `ctranslate2.Translator(out).translate_batch([pieces + ["</s>"]])`: the source pieces of
`spm.model` (copied into `out`), ending in </s> as our encoder's input does.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from seq2seq.export import ExportError, require
from seq2seq.export.marian import save_marian

QUANTIZATIONS = ("float32", "int8", "int8_float32", "int16", "float16", "bfloat16", "int8_float16", "int8_bfloat16")


def _converter(hf_dir: Path):
    require("ctranslate2")
    from ctranslate2.converters.converter import Converter  # noqa: PLC0415 - lazy: optional package (bench extra)
    from ctranslate2.converters.transformers import BartLoader  # noqa: PLC0415 - lazy: optional package (bench extra)
    from transformers import MarianMTModel, MarianTokenizer  # noqa: PLC0415 - lazy: optional package (bench extra)

    class MarianLoader(BartLoader):
        """BART's loader with Marian's settings: no LayerNorm on the embeddings, post-norm."""

        @property
        def architecture_name(self):
            return "MarianMTModel"

        def get_model_spec(self, model):
            model.config.normalize_before = False
            model.config.normalize_embedding = False
            return super().get_model_spec(model)

        def set_config(self, config, model, tokenizer):
            ids = model.config
            config.bos_token, config.eos_token, config.unk_token, config.decoder_start_token = (
                tokenizer.convert_ids_to_tokens([ids.bos_token_id, ids.eos_token_id, tokenizer.unk_token_id,
                                                 ids.decoder_start_token_id]))

    class MarianConverter(Converter):
        def _load(self):
            return MarianLoader()(MarianMTModel.from_pretrained(str(hf_dir)),
                                  MarianTokenizer.from_pretrained(str(hf_dir)))

    return MarianConverter()


def save_ct2(model, cfg, tokenizer, out, quantization: str | None = None) -> Path:
    """Write a CTranslate2 model directory (model.bin, config.json, shared_vocabulary.json, spm.model)."""
    if cfg.kind != "transformer":
        raise ExportError(f"--format ct2 exports encoder–decoder models; this one is model.kind={cfg.kind}")
    if quantization and quantization not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantization!r}; expected one of {', '.join(QUANTIZATIONS)}")
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        save_marian(model, cfg, tokenizer, tmp)
        _converter(Path(tmp)).convert(str(out), quantization=quantization, force=True)
    shutil.copyfile(tokenizer.path, out / "spm.model")
    return out
