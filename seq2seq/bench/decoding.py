"""Decoding speed (sentences/s), greedy and beam 4, on the same batches for every engine:

- ours: seq2seq.decode.search on the model directory, with and without the key/value cache, and at
  reduced precision (bf16 autocast; int8 dynamic quantization, the counterpart of CTranslate2 int8);
- Hugging Face `generate()` on the MarianMT export of the same weights (seq2seq/export/marian.py);
- CTranslate2 (float32 and int8) on the CTranslate2 export (seq2seq/export/ct2.py), and float32 once more made
  to use MKL, the matrix library PyTorch uses (CTranslate2 takes oneDNN on CPUs not made by Intel).

Ids in, ids out: tokenization is outside the timing for every engine. Each engine lives in its own
process and they decode in turns, batch by batch (measure.py); with `repeat` > 1 the fastest pass
counts. Greedy outputs come back so that the caller can check that the engines agree token for token.
Beam search is the paper's for us (α = 0.6 in Wu et al.'s length penalty, §6.1); Hugging Face and
CTranslate2 run beam 4 with their own length normalisation (score / length^0.6), so their beam outputs
may differ. Every engine gets our length cap (|source| + 50 pieces) for the longest sentence of a batch.
"""

from __future__ import annotations

import os
from contextlib import ExitStack

import torch

from seq2seq.bench.measure import Worker, in_turns
from seq2seq.data.tokenizer import EOS, PAD
from seq2seq.decode.precision import autocast, prepare
from seq2seq.decode.search import beam_search, greedy
from seq2seq.model.directory import load_model_dir
from seq2seq.model.transformer import EncoderDecoder

SEARCHES = {"greedy": 1, "beam 4": 4}
LENPEN = 0.6


class Ours:
    """Our search over `batches` (lists of source ids) of the model directory, at `precision`
    (seq2seq/decode/precision.py: fp32, bf16 autocast, int8 dynamic quantization)."""

    def __init__(self, model_dir: str, batches: list[list[list[int]]], threads: int, precision: str = "fp32"):
        torch.set_num_threads(threads)
        self.model = prepare(load_model_dir(model_dir)[0], precision, torch.device("cpu"))
        self.precision = precision
        self.sources = [self.model.make_source(b) for b in batches]

    def decode(self, index: int, beam: int, use_cache: bool = True) -> list[list[int]]:
        src = self.sources[index]
        with autocast(self.precision, src.device):
            if beam == 1:
                return [h.tokens for h in greedy(self.model, src, use_cache=use_cache)]
            return [hs[0].tokens for hs in beam_search(self.model, src, beam=beam, lenpen=LENPEN, use_cache=use_cache)]


class HuggingFace:
    """`generate()` of the exported MarianMTModel; `limits`: our length caps, per sentence of each batch."""

    def __init__(self, hf_dir: str, batches: list[list[list[int]]], limits: list[list[int]], threads: int):
        from transformers import MarianMTModel  # noqa: PLC0415 - lazy: optional package (bench extra)

        torch.set_num_threads(threads)
        self.hf = MarianMTModel.from_pretrained(hf_dir).eval()
        self.start = self.hf.generation_config.decoder_start_token_id
        self.inputs = [(EncoderDecoder.make_source(b), max(lim) + 1) for b, lim in zip(batches, limits)]

    @torch.no_grad()
    def decode(self, index: int, beam: int) -> list[list[int]]:
        src, max_new = self.inputs[index]
        generated = self.hf.generate(input_ids=src, attention_mask=(src != PAD).long(), num_beams=beam,
                                     do_sample=False, max_new_tokens=max_new, max_length=None,
                                     length_penalty=LENPEN if beam > 1 else 1.0)
        out = []
        for tokens in generated.tolist():
            tokens = tokens[1:] if tokens and tokens[0] == self.start else tokens
            out.append(tokens[: tokens.index(EOS)] if EOS in tokens else [t for t in tokens if t != PAD])
        return out


class CTranslate2:
    """A CTranslate2 translator of the export at `compute_type`, on batches of source pieces ending in </s>.
    CTranslate2 multiplies float32 matrices with Intel MKL on Intel CPUs and with oneDNN on others;
    `use_mkl=True` (CT2_USE_MKL=1, read once per process) makes it take MKL everywhere, as PyTorch does."""

    def __init__(self, ct2_dir: str, batches: list[list[list[str]]], limits: list[list[int]], threads: int,
                 compute_type: str, use_mkl: bool = False):
        if use_mkl:
            os.environ["CT2_USE_MKL"] = "1"
        else:  # the default row is CTranslate2's own choice, whatever the caller's shell says
            os.environ.pop("CT2_USE_MKL", None)
        import ctranslate2  # noqa: PLC0415 - lazy: optional package (bench extra)

        self.translator = ctranslate2.Translator(ct2_dir, device="cpu", compute_type=compute_type,
                                                 intra_threads=threads, inter_threads=1)
        self.batches, self.limits = batches, limits

    def decode(self, index: int, beam: int) -> list[list[str]]:
        results = self.translator.translate_batch(self.batches[index], beam_size=beam,
                                                  max_decoding_length=max(self.limits[index]),
                                                  length_penalty=LENPEN if beam > 1 else 1.0)
        return [r.hypotheses[0] for r in results]


def engines(model_dir, hf_dir, ct2_dir, batches, pieces, limits, threads, isolate: bool = True) -> dict:
    """name -> (worker factory, its keyword arguments, extra decode() arguments). Peers whose export
    is missing (None) are left out; so is CTranslate2 on MKL when the engines share one process (`isolate`
    False: the first CTranslate2 translator fixes its matrix library for the process)."""
    table = {"ours": (Ours, dict(model_dir=model_dir, batches=batches), ()),
             "ours, no cache": (Ours, dict(model_dir=model_dir, batches=batches), (False,))}
    for precision in ("bf16", "int8"):
        table[f"ours {precision}"] = (Ours, dict(model_dir=model_dir, batches=batches, precision=precision), ())
    if hf_dir is not None:
        table["Hugging Face generate()"] = (HuggingFace, dict(hf_dir=hf_dir, batches=batches, limits=limits), ())
    if ct2_dir is not None:
        for compute_type in ("float32", "int8"):
            table[f"CTranslate2 {compute_type}"] = (CTranslate2, dict(ct2_dir=ct2_dir, batches=pieces, limits=limits,
                                                                      compute_type=compute_type), ())
        if isolate:
            table["CTranslate2 float32, MKL"] = (CTranslate2, dict(ct2_dir=ct2_dir, batches=pieces, limits=limits,
                                                                   compute_type="float32", use_mkl=True), ())
    return {name: (factory, {**kwargs, "threads": threads}, extra) for name, (factory, kwargs, extra) in table.items()}


def speeds(table: dict, n_batches: int, n_sentences: int, repeat: int = 1, isolate: bool = True) -> list[dict]:
    """Every engine of `table` (engines()) decodes every batch with every search, in turns. One row per
    (engine, search): sentences/s and target pieces/s of the fastest of `repeat` passes, peak RSS, greedy outputs."""
    names = list(table)
    rows = {(name, search): {"engine": name, "search": search, "sentences": n_sentences, "seconds": float("inf"),
                             "peak_rss_mib": 0.0, "outputs": None} for name in names for search in SEARCHES}
    with ExitStack() as stack:
        workers = {name: stack.enter_context(Worker(factory, isolate, **kwargs))
                   for name, (factory, kwargs, _) in table.items()}
        for name in names:  # warm-up: the first batch, untimed
            workers[name].call("decode", 0, 1, *table[name][2])
        for search, beam in SEARCHES.items():
            for _ in range(repeat):
                seconds = dict.fromkeys(names, 0.0)
                outputs = {name: [] for name in names}
                for i in range(n_batches):
                    for name in in_turns(names, i):
                        result, secs, rss = workers[name].call("decode", i, beam, *table[name][2])
                        seconds[name] += secs
                        outputs[name] += result
                        row = rows[(name, search)]
                        row["peak_rss_mib"] = max(row["peak_rss_mib"], rss)
                for name in names:
                    row = rows[(name, search)]
                    row["seconds"] = min(row["seconds"], seconds[name])
                    row["target_tokens"] = sum(map(len, outputs[name]))  # pieces generated, <eos> not counted
                    row["outputs"] = outputs[name] if beam == 1 else None
    for row in rows.values():
        row["sentences_per_s"] = n_sentences / max(row["seconds"], 1e-9)
        row["target_tokens_per_s"] = row["target_tokens"] / max(row["seconds"], 1e-9)
    return list(rows.values())
