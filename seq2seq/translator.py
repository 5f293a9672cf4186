"""The Python API: `Translator.load("outputs/cpu_small/model").translate(["Hello."], beam=4)`.

Sentences are cleaned as the training data was, sorted by length into batches (less padding), searched,
and returned in input order: exactly one result per input, an empty input giving an empty output.
A line longer than the model's source positions is split at sentence ends (. ! ? then a space), the
parts translated separately and joined; a single sentence still too long is truncated, with a warning.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from seq2seq.data.batching import collate, layout_of
from seq2seq.data.corpora import sha256_file
from seq2seq.data.text import clean
from seq2seq.data.tokenizer import PAD
from seq2seq.decode.config import SearchConfig
from seq2seq.decode.constraints import Constraints
from seq2seq.decode.ensemble import Ensemble
from seq2seq.decode.precision import autocast, prepare
from seq2seq.decode.precision import check as check_precision
from seq2seq.decode.prefix import WORD_START, TargetPrefix
from seq2seq.decode.search import Hypothesis, force, length_penalty, max_lengths
from seq2seq.decode.search import search as run_search
from seq2seq.decode.unseen import SOURCE_WORDS, read_source_words, unseen_capitalised
from seq2seq.model.directory import ModelDirError, load_model_dir
from seq2seq.viz.maps import alignments as attention_alignments

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
TOP = 5  # candidates shown per step by `explain`


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def excerpt(text: str, width: int = 40) -> str:
    """The start of a text for a one-line warning."""
    return text if len(text) <= width else text[:width] + "…"


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
class Scored:
    """A given translation under the model: `Translator.score`."""

    pieces: list[str]  # the target's pieces (<eos> not included)
    token_logprobs: list[float]  # one per piece, then <eos>
    lenpen: float  # the α its `score` is normalised with

    @property
    def logprob(self) -> float:
        """The sum of the pieces' log-probabilities, <eos> included."""
        return sum(self.token_logprobs)

    @property
    def mean(self) -> float:
        """The mean log-probability per piece, <eos> included."""
        return self.logprob / len(self.token_logprobs)

    @property
    def score(self) -> float:
        """What beam search ranks by: log-probability / length penalty (Wu et al. 2016)."""
        return self.logprob / length_penalty(len(self.token_logprobs), self.lenpen)


@dataclass
class _Unit:
    """What one search call translates: a whole line, or one sentence of an over-long line."""

    ids: list[int]
    line: int  # which input line it belongs to
    prefix: str | None = None  # French text the translation must begin with
    constraints: list[str] = field(default_factory=list)  # French phrases the translation must hold
    names: list[str] = field(default_factory=list)  # words to carry through whole (SearchConfig.copy_unseen)
    hyps: list[Hypothesis] = field(default_factory=list)
    alignments: list[list[tuple[int, int]]] | None = None
    steps: list[Step] | None = None
    generator: torch.Generator | None = None  # its own sampling generator, when its sentence has a seed


class Translator:
    def __init__(self, model, tokenizer, device: str | torch.device = "cpu", warn=None, precision: str = "fp32",
                 source_words: frozenset[str] | None = None):
        self.device = torch.device(device)
        self.source_words = source_words  # the words training saw (lower-cased), for SearchConfig.copy_unseen
        self.model, self.tokenizer = prepare(model.eval(), precision, self.device), tokenizer
        self.precision = precision  # fp32 | bf16 | int8 (seq2seq/decode/precision.py)
        self.warn = warn or (lambda msg: None)
        # Room for the source in the model's positions (the decoder-only model also holds the target).
        self.max_source_pieces = model.max_source_pieces()
        self._pieces: list[str] | None = None
        self._glue: torch.Tensor | None = None  # see _word_glue
        self._said_beam = False  # the beam raised for constraints is said once

    @classmethod
    def load(cls, directory, device: str = "auto", warn=None, precision: str = "fp32") -> Translator:
        """Load a model directory (model.pt, config.json, spm.model); ModelDirError names what is wrong.
        A list of directories loads an ensemble (seq2seq/decode/ensemble.py): one tokenizer for all."""
        directories = [Path(directory)] if isinstance(directory, (str, os.PathLike)) else [Path(d) for d in directory]
        dev = pick_device(device)
        check_precision(precision, dev)  # before the weights move anywhere
        loaded = [load_model_dir(d, dev) for d in directories]
        tokenizers = [sha256_file(d / "spm.model") for d in directories]
        for d, sha in zip(directories[1:], tokenizers[1:]):
            if sha != tokenizers[0]:
                raise ModelDirError(f"{d}: its tokenizer (spm.model sha256 {sha[:12]}…) is not {directories[0]}'s "
                                    f"({tokenizers[0][:12]}…); an ensemble needs one tokenizer")
        model = loaded[0][0] if len(loaded) == 1 else Ensemble([m for m, _, _ in loaded])
        return cls(model, loaded[0][1], dev, warn, precision, read_source_words(directories[0] / SOURCE_WORDS))

    @property
    def ensemble(self) -> bool:
        """Several models decoding as one (Translator.load with several directories)."""
        return isinstance(self.model, Ensemble)

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
        limit, shown = self.max_source_pieces, excerpt(text)
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

    def translate_full(self, sentences: list[str], search: SearchConfig | None = None, *,
                       target_prefix: list[str | None] | None = None, batch_size: int = 64,
                       batch_tokens: int | None = None, alignments: bool = False, alignment_layer: int = -1,
                       explain: bool = False, progress: Callable[[int], None] | None = None,
                       constraints: list[list[str]] | None = None,
                       seeds: list[int | None] | None = None) -> list[Translation]:
        """Translate with the search `search` describes (default: beam 4, α 0.6).

        `target_prefix`: per sentence, French text the translation must begin with (None or "" for none);
        see seq2seq/decode/prefix.py. `alignments`: per hypothesis, the source piece each target piece
        attends to most (cross-attention of `alignment_layer`, heads averaged). `explain`: the best
        hypothesis step by step (`Step`). `progress(n)` hears of every n input lines done. `constraints`:
        per sentence, French phrases that must appear (beam search only; seq2seq/decode/constraints.py).
        A line split at sentence ends gives its prefix and its constraints to its first part.
        `seeds`: per sentence, a seed (or None) for sampling in place of `search.seed`: such a sentence then
        samples the same whatever else is in the call (the service batches requests that way).
        """
        search = search or SearchConfig()
        for name, given in (("target prefixes", target_prefix), ("constraint lists", constraints)):
            if given is not None and len(given) != len(sentences):
                raise ValueError(f"{len(given)} {name} for {len(sentences)} sentences")
        self.check(search, alignments, explain, bool(constraints and any(constraints)))
        copies = search.copy_unseen is not False and not search.sampling and self.source_words is not None
        names = [unseen_capitalised(clean(s), self.source_words) for s in sentences] if copies else None
        parts = self.split(sentences)
        units = [_Unit(ids, line) for line, pieces in enumerate(parts) for ids in pieces]
        unfinished = [len(pieces) for pieces in parts]  # per line, the units not searched yet
        if progress is not None:
            progress(unfinished.count(0))  # empty lines are done already
        first = 0
        none = [None] * len(parts)
        for line, prefix, wanted, unseen in zip(parts, target_prefix or none, constraints or none, names or none):
            if line:
                u = units[first]
                u.prefix, u.constraints = prefix, [c for c in wanted or [] if clean(c)]
                u.names = [n for n in unseen or [] if n not in u.constraints]
            first += len(line)
        order = sorted(range(len(units)), key=lambda i: len(units[i].ids))
        if search.sampling and seeds is not None:
            self._seed_units(units, seeds, len(sentences))
        generator = None
        if search.sampling and search.seed is not None and seeds is None:
            generator = torch.Generator(device=self.device).manual_seed(search.seed)
        with autocast(self.precision, self.device):
            for chunk in self._batches(order, [u.ids for u in units], batch_size, batch_tokens):
                batch = [units[i] for i in chunk]
                self._search(batch, search, generator, explain)
                if alignments:
                    self._align(batch, alignment_layer)
                if progress is not None:
                    for u in batch:
                        unfinished[u.line] -= 1
                    progress(sum(unfinished[line] == 0 for line in {u.line for u in batch}))  # finished just now
        results, k = [], 0
        for sentence, line in zip(sentences, parts):
            results.append(self._merge(sentence, units[k:k + len(line)], alignments))
            k += len(line)
        return results

    def _seed_units(self, units: list[_Unit], seeds: list[int | None], lines: int) -> None:
        """Each unit its own generator from its sentence's seed (the parts of a split line: seed + k·1000003)."""
        if len(seeds) != lines:
            raise ValueError(f"{len(seeds)} seeds for {lines} sentences")
        parts: dict[int, int] = {}
        for u in units:
            k = parts[u.line] = parts.get(u.line, -1) + 1
            seed = seeds[u.line]
            u.generator = None if seed is None else torch.Generator(device=self.device).manual_seed(
                (seed + k * 1_000_003) % 2**63)

    def check(self, search: SearchConfig, alignments: bool = False, explain: bool = False,
              constraints: bool = False) -> None:
        """ValueError for a combination of options this translator cannot serve."""
        if search.sampling and constraints:
            raise ValueError("lexical constraints need beam search, not sampling (temperature)")
        if search.copy_unseen is True and self.source_words is None:
            raise ValueError(f"copy_unseen needs the words training saw: this model directory has no {SOURCE_WORDS} "
                             f"(training writes it into model/ since 2026-11-30)")
        if self.ensemble and (alignments or (explain and not search.sampling)):
            raise ValueError("alignments, and explain with beam search, read one model's attention or logits: "
                             "not available for an ensemble")

    def translate(self, sentences: list[str] | str, search: SearchConfig | None = None, **kwargs) -> list[str] | str:
        """Best translation of each sentence, in input order (one string in, one string out). Search
        settings come as a SearchConfig or as its field names (`beam=4, lenpen=0.6`, `temperature=0.8`);
        `seed` may be a list with one seed (or None) per sentence (`translate_full`'s `seeds`); other
        keywords go to `translate_full`."""
        if isinstance(sentences, str):
            return self.translate([sentences], search, **kwargs)[0]
        if isinstance(kwargs.get("seed"), (list, tuple)):
            kwargs["seeds"] = list(kwargs.pop("seed"))
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in SearchConfig.names()}
        if options and search is not None:
            raise TypeError(f"pass search settings in the SearchConfig or as keywords, not both: {sorted(options)}")
        return [t.text for t in self.translate_full(sentences, search or SearchConfig(**options), **kwargs)]

    def _search(self, batch: list[_Unit], search: SearchConfig, generator, explain: bool) -> None:
        """One batch of units through the search, filling each unit's hypotheses (and steps). Lines with
        more constraints than the beam holds banks for go in a group with a larger beam; lines with unseen
        names to carry (copy_unseen), in one with twice the beam."""
        groups: dict[int, list[_Unit]] = {}
        for u in batch:
            needed = len(u.constraints) + len(u.names) + 1
            usual = 2 * search.beam if u.names else search.beam  # banks need room: Post & Vilar (2018) search wider
            if not search.sampling and needed > usual and not self._said_beam:
                self.warn(f"warning: beam {usual} is too small for {needed - 1} constraints: "
                          f"raised to the number of constraints + 1 for such lines")
                self._said_beam = True
            groups.setdefault(max(usual, needed), []).append(u)
        for beam, units in groups.items():
            self._search_group(units, search if beam == search.beam else replace(search, beam=beam), generator, explain)

    def _search_group(self, batch: list[_Unit], search: SearchConfig, generator, explain: bool) -> None:
        src = self.model.make_source([u.ids for u in batch], self.device)
        prefix = self._target_prefix(batch, src, search)
        constraints = self._constraints(batch, src, search)
        recorder = _StepRecorder() if explain and search.sampling else None
        if generator is None and any(u.generator is not None for u in batch):
            generator = [u.generator for u in batch]  # one per row: a seeded sentence samples as it would alone
        found = run_search(self.model, src, search, generator, recorder, prefix, constraints)
        for row, (u, hyps) in enumerate(zip(batch, found)):
            u.hyps = hyps
            if recorder is not None:
                u.steps = recorder.steps(row, hyps[0])
        if explain and not search.sampling:
            self._explain_by_rescoring(batch)

    def _constraints(self, batch: list[_Unit], src: torch.Tensor, search: SearchConfig) -> list[Constraints] | None:
        """Each unit's constraint phrases as pieces (as they appear word-initially); a phrase longer than the
        length cap is dropped for that line, with a warning."""
        if not any(u.constraints or u.names for u in batch):
            return None
        caps = max_lengths(self.model, src, search.max_len_a, search.max_len_b).tolist()
        out = []
        for u, cap in zip(batch, caps):
            texts = u.constraints + u.names
            phrases = self.tokenizer.encode([clean(c) for c in texts])
            for ids, text in zip(phrases, texts):
                if len(ids) > cap:
                    self.warn(f"warning: constraint {text!r} has {len(ids)} pieces, more than the length cap of "
                              f"{cap}: dropped for this line")
            kept = [(ids, k >= len(u.constraints)) for k, ids in enumerate(phrases) if len(ids) <= cap]
            out.append(Constraints([ids for ids, _ in kept], search.constraints_ordered,
                                   whole={k for k, (_, name) in enumerate(kept) if name}, glue=self._word_glue()))
        return out

    def _word_glue(self) -> torch.Tensor:
        """The pieces that would continue a word (no leading ▁, a letter or digit first): banned right after a
        name constraint, so that "Amir" is not met by "Amirurs"."""
        if self._glue is None:
            ids = [i for i, p in enumerate(self.pieces) if not p.startswith(WORD_START) and p[:1].isalnum()]
            self._glue = torch.tensor(ids, dtype=torch.long, device=self.device)
        return self._glue

    def _target_prefix(self, batch: list[_Unit], src: torch.Tensor, search: SearchConfig) -> TargetPrefix | None:
        if not any(u.prefix and clean(u.prefix) for u in batch):
            return None
        caps = max_lengths(self.model, src, search.max_len_a, search.max_len_b).tolist()
        room = torch.as_tensor(self.model.max_target_pieces(src)).expand(len(batch)).tolist()
        rules = [self._prefix_rule(u.prefix, cap, space) for u, cap, space in zip(batch, caps, room)]
        return TargetPrefix.build(rules, self.pieces, self.device)

    def _prefix_rule(self, text: str | None, cap: int, room: int) -> tuple[list[int], str, bool]:
        """(forced pieces, the open word, <eos> allowed after them) for one prefix; see decode/prefix.py."""
        if not text or not clean(text):
            return [], "", True
        ids = self.tokenizer.encode([clean(text)])[0]
        if len(ids) >= cap:
            self.warn(f"warning: target prefix {excerpt(text)!r} has {len(ids)} pieces, as many as the length cap "
                      f"of {cap} or more: the output is the prefix{' (truncated)' if len(ids) > room else ''}")
            return ids[:room], "", True
        if text[-1].isspace():  # a finished word: a new one starts next, or the sentence ends
            return ids, WORD_START, True
        starts = [k for k, i in enumerate(ids) if self.pieces[i].startswith(WORD_START)]
        last_word = starts[-1] if starts else 0
        return ids[:last_word], "".join(self.pieces[i] for i in ids[last_word:]), False

    @property
    def pieces(self) -> list[str]:
        """The text of every piece of the vocabulary, by id."""
        if self._pieces is None:
            self._pieces = self.tokenizer.id_to_piece(list(range(len(self.tokenizer))))
        return self._pieces

    # ------------------------------------------------------------------------------------------ scoring

    def score(self, sources: list[str], targets: list[str], search: SearchConfig | None = None,
              batch_size: int = 64, batch_tokens: int | None = None) -> list[Scored]:
        """The model's log-probability of each given translation (forced decoding through the same
        steps search takes), with the search's length-penalised score under `search.lenpen`. Sentences
        are cleaned as for translation; an over-long side is truncated with a warning."""
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
        search = search or SearchConfig()
        src_ids = self.tokenizer.encode([clean(s) for s in sources])
        tgt_ids = self.tokenizer.encode([clean(t) for t in targets])
        both = [s + t for s, t in zip(src_ids, tgt_ids)]
        order = sorted(range(len(sources)), key=lambda i: len(both[i]))
        out: list[Scored | None] = [None] * len(sources)
        with autocast(self.precision, self.device):
            for chunk in self._batches(order, both, batch_size, batch_tokens):
                srcs = [self._fit(src_ids[i], self.max_source_pieces, sources[i], "source") for i in chunk]
                src = self.model.make_source(srcs, self.device)
                room = torch.as_tensor(self.model.max_target_pieces(src)).expand(len(chunk)).tolist()
                tgts = [self._fit(tgt_ids[i], r, targets[i], "target") for i, r in zip(chunk, room)]
                for i, tgt, hyp in zip(chunk, tgts, force(self.model, src, tgts, search.use_cache)):
                    out[i] = Scored(self.tokenizer.id_to_piece(tgt), hyp.token_logprobs, search.lenpen)
        return out

    def _fit(self, ids: list[int], limit: int, text: str, side: str) -> list[int]:
        """The first `limit` pieces, with a warning when that drops some."""
        if len(ids) > limit:
            self.warn(f"warning: {side} {excerpt(text)!r} has {len(ids)} pieces, more than the model's {limit}: "
                      "truncated")
        return ids[:limit]

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
        flat = [(u, h) for u in batch for h in u.hyps]
        found = attention_alignments(self.model, [u.ids for u, _ in flat], [h.tokens for _, h in flat], layer)
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
            if chunk and (len(chunk) >= batch_size
                          or (batch_tokens and longest_if_added * (len(chunk) + 1) > batch_tokens)):
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
