"""The Python API: `Translator.load("outputs/cpu_small/model").translate(["Hello."], beam=4)`.

Sentences are cleaned as the training data was, sorted by length into batches (less padding), searched,
and returned in input order: exactly one result per input, an empty input giving an empty output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seq2seq.data.text import clean
from seq2seq.decode.search import Hypothesis, beam_search, sample
from seq2seq.model.directory import load_model_dir


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class Translation:
    source: str
    source_pieces: list[str]
    hypotheses: list[Hypothesis]  # best first
    texts: list[str]  # detokenized hypotheses, best first

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""


class Translator:
    def __init__(self, model, tokenizer, device: str | torch.device = "cpu", warn=None):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.device = torch.device(device)
        self.warn = warn or (lambda msg: None)
        # Room for the source in the model's positions (the decoder-only model also holds the target).
        self.max_source_pieces = model.max_source_pieces()

    @classmethod
    def load(cls, directory, device: str = "auto", warn=None) -> "Translator":
        dev = pick_device(device)
        model, tokenizer, _ = load_model_dir(directory, dev)
        return cls(model, tokenizer, dev, warn)

    def encode(self, sentences: list[str]) -> list[list[int]]:
        ids = self.tokenizer.encode([clean(s) for s in sentences])
        for i, s in enumerate(ids):
            if len(s) > self.max_source_pieces:
                self.warn(f"warning: input {i + 1} has {len(s)} pieces; truncated to {self.max_source_pieces}")
                ids[i] = s[: self.max_source_pieces]
        return ids

    def translate_full(self, sentences: list[str], beam: int = 4, lenpen: float = 0.6, nbest: int = 1,
                       max_len_a: float = 1.0, max_len_b: int = 50, temperature: float | None = None,
                       top_k: int = 0, top_p: float = 1.0, seed: int | None = None, batch_size: int = 64,
                       batch_tokens: int | None = None, use_cache: bool = True, observer=None) -> list[Translation]:
        """Translate with beam search, or sample when `temperature` is given (0 = greedy)."""
        ids = self.encode(sentences)
        results: list[list[Hypothesis] | None] = [[] if not s else None for s in ids]
        order = sorted((i for i, s in enumerate(ids) if s), key=lambda i: len(ids[i]))
        generator = None
        if temperature is not None and seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        for chunk in self._batches(order, ids, batch_size, batch_tokens):
            src = self.model.make_source([ids[i] for i in chunk], self.device)
            kwargs = dict(max_len_a=max_len_a, max_len_b=max_len_b, use_cache=use_cache)
            if temperature is None:
                hyps = beam_search(self.model, src, beam=beam, lenpen=lenpen, nbest=nbest, **kwargs)
            else:
                hyps = [[h] for h in sample(self.model, src, temperature=temperature, top_k=top_k, top_p=top_p,
                                            generator=generator, observer=observer, **kwargs)]
            for i, h in zip(chunk, hyps):
                results[i] = h
        pieces = [self.tokenizer.id_to_piece(s) for s in ids]
        return [Translation(src, p, hyps, self.tokenizer.decode([h.tokens for h in hyps]) if hyps else [])
                for src, p, hyps in zip(sentences, pieces, results)]

    def translate(self, sentences: list[str], **kwargs) -> list[str]:
        """Best translation of each sentence, in input order."""
        return [t.text for t in self.translate_full(sentences, **kwargs)]

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
