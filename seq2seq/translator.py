"""The Python API: `Translator.load("outputs/cpu_small/model").translate(["Hello."], beam=4)`.

Sentences are cleaned as the training data was, sorted by length into batches (less padding), searched,
and returned in input order: exactly one result per input, an empty input giving an empty output.
A line longer than the model's source positions is split at sentence ends (. ! ? then a space), the
parts translated separately and joined; a single sentence still too long is truncated, with a warning.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch

from seq2seq.data.batching import collate, layout_of
from seq2seq.data.text import clean
from seq2seq.data.tokenizer import PAD
from seq2seq.decode.precision import autocast, check as check_precision, prepare
from seq2seq.decode.search import Hypothesis, beam_search, sample

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
TOP = 5  # candidates shown per step by `explain`


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class Step:
    """One generated piece, as `translate --explain` shows it."""

    token: int
    prob: float  # probability of the chosen piece in the distribution searched (after temperature, top-k/top-p)
    logprob: float  # the model's own log-probability of it (temperature 1)
    top: list[tuple[int, float]]  # the TOP most probable pieces of that distribution, with their probabilities


@dataclass
class Translation:
    """All results for one input line. Hypotheses are best first; `alignments` and `steps` are filled on request."""

    source: str
    source_pieces: list[str]
    hypotheses: list[Hypothesis]
    texts: list[str]  # detokenized hypotheses
    pieces: list[list[str]]  # pieces of each hypothesis (<eos> not included)
    alignments: list[list[tuple[int, int]]] | None = None  # per hypothesis: (source index, target index) pairs
    steps: list[Step] | None = None  # the best hypothesis, piece by piece, then <eos>

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""

    def confidence(self, k: int = 0) -> float | None:
        """Mean log-probability per piece (<eos> included) of hypothesis k: low values flag doubtful output."""
        lps = self.hypotheses[k].token_logprobs if k < len(self.hypotheses) else []
        return sum(lps) / len(lps) if lps else None


@dataclass
class _Unit:
    """What one search call translates: a whole line, or one sentence of an over-long line."""

    ids: list[int]
    hyps: list[Hypothesis] = field(default_factory=list)
    alignments: list[list[tuple[int, int]]] | None = None
    steps: list[Step] | None = None


class Translator:
    def __init__(self, model, tokenizer, device: str | torch.device = "cpu", warn=None, precision: str = "fp32"):
        self.device = torch.device(device)
        self.model, self.tokenizer = prepare(model.eval(), precision, self.device), tokenizer
        self.precision = precision  # fp32 | bf16 | int8 (seq2seq/decode/precision.py)
        self.warn = warn or (lambda msg: None)
        # Room for the source in the model's positions (the decoder-only model also holds the target).
        self.max_source_pieces = model.max_source_pieces()

    @classmethod
    def load(cls, directory, device: str = "auto", warn=None, precision: str = "fp32") -> Translator:
        """Load a model directory (model.pt, config.json, spm.model); ModelDirError names what is wrong."""
        from seq2seq.model.directory import load_model_dir

        dev = pick_device(device)
        check_precision(precision, dev)  # before the weights move anywhere
        model, tokenizer, _ = load_model_dir(directory, dev)
        return cls(model, tokenizer, dev, warn, precision)

    # ------------------------------------------------------------------------------------------ input

    def split(self, sentences: list[str]) -> list[list[list[int]]]:
        """Each input → the source ids of its parts: none for an empty line, one unless it is too long."""
        texts = [clean(s) for s in sentences]
        out = []
        for text, ids in zip(texts, self.tokenizer.encode(texts)):
            if not ids:
                out.append([])
            elif len(ids) <= self.max_source_pieces:
                out.append([ids])
            else:
                out.append(self._split_long(text, len(ids)))
        return out

    def _split_long(self, text: str, n_pieces: int) -> list[list[int]]:
        limit, shown = self.max_source_pieces, text if len(text) <= 40 else text[:40] + "…"
        parts = self.tokenizer.encode(SENTENCE_END.split(text))
        if len(parts) > 1:
            self.warn(f"warning: input {shown!r} has {n_pieces} pieces, more than the model's {limit}: "
                      f"translated as {len(parts)} sentences")
        for i, part in enumerate(parts):
            if len(part) > limit:
                self.warn(f"warning: a sentence of {len(part)} pieces in input {shown!r} is longer than the "
                          f"model's {limit}: truncated")
                parts[i] = part[:limit]
        return parts

    # ------------------------------------------------------------------------------------------ search

    def translate_full(self, sentences: list[str], beam: int = 4, lenpen: float = 0.6, nbest: int = 1,
                       max_len_a: float = 1.0, max_len_b: int = 50, temperature: float | None = None,
                       top_k: int = 0, top_p: float = 1.0, seed: int | None = None, batch_size: int = 64,
                       batch_tokens: int | None = None, use_cache: bool = True, alignments: bool = False,
                       alignment_layer: int = -1, explain: bool = False) -> list[Translation]:
        """Translate with beam search, or sample when `temperature` is given (0 = greedy).

        `alignments`: per hypothesis, the source piece each target piece attends to most (cross-attention
        of `alignment_layer`, heads averaged). `explain`: the best hypothesis step by step (`Step`).
        `seed`: one seed for the call, or a list of one seed (or None) per sentence, each of which then
        samples the same whatever else is in the call.
        """
        if temperature is None and not 1 <= nbest <= beam:
            raise ValueError(f"nbest ({nbest}) must be between 1 and the beam size ({beam})")
        if temperature is not None and nbest != 1:
            raise ValueError("sampling draws one translation per input: nbest must be 1")
        parts = self.split(sentences)
        units = [_Unit(ids) for line in parts for ids in line]
        order = sorted(range(len(units)), key=lambda i: len(units[i].ids))
        generator = self._generators(seed, parts) if temperature is not None else None
        with autocast(self.precision, self.device):
            for chunk in self._batches(order, [u.ids for u in units], batch_size, batch_tokens):
                batch = [units[i] for i in chunk]
                src = self.model.make_source([u.ids for u in batch], self.device)
                kwargs = {"max_len_a": max_len_a, "max_len_b": max_len_b, "use_cache": use_cache}
                if temperature is None:
                    found = beam_search(self.model, src, beam=beam, lenpen=lenpen, nbest=nbest, **kwargs)
                    for u, hyps in zip(batch, found):
                        u.hyps = hyps
                    if explain:
                        self._explain_by_rescoring(batch)
                else:
                    recorder = _StepRecorder() if explain else None
                    rows = [generator[i] for i in chunk] if isinstance(generator, list) else generator
                    found = sample(self.model, src, temperature=temperature, top_k=top_k, top_p=top_p,
                                   generator=rows, observer=recorder, **kwargs)
                    for row, (u, hyp) in enumerate(zip(batch, found)):
                        u.hyps = [hyp]
                        if explain:
                            u.steps = recorder.steps(row, hyp)
                if alignments:
                    self._align(batch, alignment_layer)
        results, k = [], 0
        for sentence, line in zip(sentences, parts):
            results.append(self._merge(sentence, units[k:k + len(line)], alignments))
            k += len(line)
        return results

    def _generators(self, seed, parts: list[list[list[int]]]):
        """One generator for an int seed; for a list of seeds, one per part of each line (None: unseeded)."""
        if seed is None or not isinstance(seed, (list, tuple)):
            return None if seed is None else torch.Generator(device=self.device).manual_seed(seed)
        if len(seed) != len(parts):
            raise ValueError(f"{len(seed)} seeds for {len(parts)} sentences")
        make = lambda s: torch.Generator(device=self.device).manual_seed(s % 2**63)  # noqa: E731
        return [None if s is None else make(s + k * 1_000_003) for s, line in zip(seed, parts) for k in range(len(line))]

    def translate(self, sentences: list[str] | str, **kwargs) -> list[str] | str:
        """Best translation of each sentence, in input order (one string in, one string out)."""
        if isinstance(sentences, str):
            return self.translate([sentences], **kwargs)[0]
        return [t.text for t in self.translate_full(sentences, **kwargs)]

    # ------------------------------------------------------------------------------------------ extras

    @torch.no_grad()
    def _explain_by_rescoring(self, batch: list[_Unit]) -> None:
        """Beam search keeps no per-step distributions: one teacher-forced pass over the best hypotheses
        gives them (at temperature 1, which is what beam search ranks by)."""
        data = collate([(u.ids, u.hyps[0].tokens) for u in batch], layout_of(self.model.kind)).to(self.device)
        logprobs = self.model.logits(data).float().log_softmax(-1)
        for row, u in enumerate(batch):
            targets = data.tgt_out[row] != PAD  # the labels of the hypothesis' pieces and <eos>, in either layout
            rows, chosen = logprobs[row, targets], data.tgt_out[row, targets]
            u.steps = _steps(rows, chosen, rows.gather(1, chosen[:, None]).squeeze(1).tolist())

    def _align(self, batch: list[_Unit], layer: int) -> None:
        from seq2seq.viz.maps import alignments

        flat = [(u, h) for u in batch for h in u.hyps]
        found = alignments(self.model, [u.ids for u, _ in flat], [h.tokens for _, h in flat], layer)
        for u in batch:
            u.alignments = []
        for (u, _), pairs in zip(flat, found):
            u.alignments.append(pairs)

    def _merge(self, sentence: str, units: list[_Unit], alignments: bool) -> Translation:
        """One Translation from the parts of a line: tokens joined, scores and log-probabilities summed,
        alignment indices shifted. Per-piece log-probabilities keep only the last part's <eos>."""
        source_ids = [i for u in units for i in u.ids]
        if len(units) == 1:
            hyps = units[0].hyps
            aligned, steps = units[0].alignments, units[0].steps
        else:
            hyps, aligned = [], [] if alignments else None
            for k in range(min((len(u.hyps) for u in units), default=0)):
                parts = [u.hyps[k] for u in units]
                lps = [lp for h in parts for lp in h.token_logprobs[:len(h.tokens)]]  # the pieces of every part ...
                lps += parts[-1].token_logprobs[len(parts[-1].tokens):]  # ... then the last part's <eos>
                hyps.append(Hypothesis([t for h in parts for t in h.tokens], sum(h.score for h in parts),
                                       sum(h.logprob for h in parts), lps))
                if alignments:
                    pairs, s0, t0 = [], 0, 0
                    for u, h in zip(units, parts):
                        pairs += [(s + s0, t + t0) for s, t in u.alignments[k]]
                        s0, t0 = s0 + len(u.ids), t0 + len(h.tokens)
                    aligned.append(pairs)
            steps = None
            if units and all(u.steps is not None for u in units):
                steps = [s for u in units[:-1] for s in u.steps[:-1]] + units[-1].steps
        return Translation(sentence, self.tokenizer.id_to_piece(source_ids), hyps,
                           [clean(t) for t in self.tokenizer.decode([h.tokens for h in hyps])] if hyps else [],
                           [self.tokenizer.id_to_piece(h.tokens) for h in hyps], aligned, steps)

    @staticmethod
    def _batches(order, ids, batch_size, batch_tokens):
        chunk, longest = [], 0
        for i in order:
            longest_if_added = max(longest, len(ids[i]) + 1)
            if chunk and (len(chunk) >= batch_size or (batch_tokens and longest_if_added * (len(chunk) + 1) > batch_tokens)):
                yield chunk
                chunk, longest_if_added = [], len(ids[i]) + 1
            chunk.append(i)
            longest = longest_if_added
        if chunk:
            yield chunk


def _steps(logprobs: torch.Tensor, chosen: torch.Tensor, model_logprobs: list[float]) -> list[Step]:
    """Steps from the searched log-distributions (n, V) and the chosen pieces (n,)."""
    top = logprobs.topk(min(TOP, logprobs.size(-1)), dim=-1)
    probs = logprobs.gather(1, chosen[:, None]).squeeze(1).exp().tolist()
    return [Step(int(c), p, lp, list(zip(i, v))) for c, p, lp, i, v in
            zip(chosen.tolist(), probs, model_logprobs, top.indices.tolist(), top.values.exp().tolist())]


class _StepRecorder:
    """The `observer` of `search.sample`: keeps, per step, the top of every row's distribution and its choice."""

    def __init__(self):
        self.records: list[tuple[torch.Tensor, ...]] = []  # per step: top values, top ids, chosen log-prob, chosen

    def __call__(self, step: int, logprobs: torch.Tensor, chosen: torch.Tensor) -> None:
        top = logprobs.topk(min(TOP, logprobs.size(-1)), dim=-1)
        picked = logprobs.gather(1, chosen[:, None]).squeeze(1)
        self.records.append((top.values.cpu(), top.indices.cpu(), picked.cpu(), chosen.cpu()))

    def steps(self, row: int, hyp: Hypothesis) -> list[Step]:
        n = len(hyp.token_logprobs)  # the pieces, then <eos> unless the search stopped without one
        return [Step(int(chosen[row]), float(picked[row].exp()), hyp.token_logprobs[j],
                     list(zip(ids[row].tolist(), values[row].exp().tolist())))
                for j, (values, ids, picked, chosen) in enumerate(self.records[:n])]


def record(t, timing: dict, alignments: bool) -> dict:
    """The `--format jsonl` object of one Translation (also what `seq2seq serve` answers per input)."""
    hyps = []
    for k, (text, hyp) in enumerate(zip(t.texts, t.hypotheses)):
        entry = {"text": text, "pieces": t.pieces[k], "score": round(hyp.score, 4), "logprob": round(hyp.logprob, 4),
                 "probs": [round(math.exp(lp), 4) for lp in hyp.token_logprobs],
                 "confidence": round(t.confidence(k), 4) if hyp.token_logprobs else None}
        if alignments:
            entry["alignment"] = [list(pair) for pair in t.alignments[k]]
        hyps.append(entry)
    return {"source": t.source, "source_pieces": t.source_pieces, "hypotheses": hyps, "timing": timing}
