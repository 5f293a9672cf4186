"""What a client may send: unknown fields are refused, types are strict, ranges are checked.

The settings a batch shares (`Settings`) are kept apart from what varies per sentence (`Row`: text,
seed), so that requests asking for the same search can be decoded together.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_BEAM = 16
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Limits:
    """What one request may ask; every limit is a command-line option of `seq2seq serve`."""

    max_inputs: int = 64  # sentences in one /translate request
    max_chars: int = 20_000  # characters in one request, all sentences together
    max_sentence_chars: int = 2_000  # characters in one sentence (/attention included)
    max_body_bytes: int = 1_000_000
    max_queue: int = 256  # requests waiting for the model; beyond it, 503
    max_batch_tokens: int = 4096  # source pieces decoded together
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others
    batching: bool = True  # False: every request decoded alone (the batch-of-1 server the bench compares with)


@dataclass(frozen=True)
class Settings:
    """The search settings a batch shares: requests with equal Settings may be decoded together."""

    beam: int = 4
    nbest: int = 1
    temperature: float | None = None
    top_k: int = 0
    top_p: float = 1.0
    alignments: bool = False
    copy_unseen: bool | None = None


@dataclass(frozen=True)
class Row:
    """What varies per sentence within a batch (a target prefix or constraints would join the seed here)."""

    text: str
    seed: int | None = None
    prefix: str | None = None  # French text the translation must begin with
    constraints: tuple[str, ...] = ()  # French phrases the translation must hold


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TranslateRequest(Strict):
    """POST /translate. Without `temperature`: beam search; with it: sampling (0 = greedy)."""

    text: str | list[str] = Field(description="a sentence, or a list of them (one result each, in order)")
    model: str = Field("default", description="a model name the server was started with (see /models)")
    beam: int = Field(4, ge=1, le=MAX_BEAM, description="beam size")
    nbest: int = Field(1, ge=1, le=MAX_BEAM, description="hypotheses per input, at most `beam`")
    temperature: float | None = Field(None, ge=0, le=10, description="sample at this temperature (0: greedy)")
    top_k: int = Field(0, ge=0, description="sample among the k most likely pieces (0: all)")
    top_p: float = Field(1.0, gt=0, le=1, description="sample among the smallest set holding probability p")
    seed: int | None = Field(None, ge=0, le=MAX_SEED,
                             description="sampling seed: sentence i of the request draws from its own generator "
                                         "seeded seed + i, so the output does not depend on other requests")
    alignments: bool = Field(False, description="add, per hypothesis, (source, target) piece pairs")
    target_prefix: str | list[str | None] | None = Field(
        None, description="French text each translation must begin with: a string for one sentence, or a list "
                          "with one (or null) per sentence; the search goes on after it")
    constraints: list[str] | list[list[str]] | None = Field(
        None, description="French phrases each translation must contain (beam search): a list of phrases for one "
                          "sentence, or one such list per sentence")
    copy_unseen: bool | None = Field(
        None, description="capitalised source words that training never saw must appear as written (beam search): "
                          "null = when the model lists the words it saw, true = required, false = off")

    @model_validator(mode="after")
    def _check(self):
        if self.temperature is None and self.nbest > self.beam:
            raise ValueError(f"nbest ({self.nbest}) must be at most beam ({self.beam})")
        if self.temperature is not None and self.nbest != 1:
            raise ValueError("sampling (temperature) gives one translation per input: nbest must be 1")
        if self.temperature is not None and self.constraints:
            raise ValueError("constraints need beam search: drop temperature")
        if self.temperature is not None and self.copy_unseen:
            raise ValueError("copy_unseen needs beam search: drop temperature")
        n = len(self.texts)
        if len(self.prefixes) != n or len(self.constraint_lists) != n:
            raise ValueError(f"target_prefix and constraints need one entry per sentence ({n})")
        return self

    @property
    def texts(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)

    @property
    def prefixes(self) -> list[str | None]:
        """One target prefix (or None) per sentence; a single string is one sentence's."""
        if isinstance(self.target_prefix, list):
            return list(self.target_prefix)
        return [None] * len(self.texts) if self.target_prefix is None else [self.target_prefix]

    @property
    def constraint_lists(self) -> list[list[str]]:
        """One list of phrases per sentence; a flat list of phrases is one sentence's."""
        if not self.constraints:
            return [[] for _ in self.texts]
        if all(isinstance(c, str) for c in self.constraints):
            return [list(self.constraints)]
        return [list(c) for c in self.constraints]

    def extra_chars(self) -> int:
        """Characters of the prefixes and constraints, counted against the request's limit with the text."""
        return sum(len(p or "") for p in self.prefixes) + sum(len(c) for cs in self.constraint_lists for c in cs)

    def settings(self) -> Settings:
        sampling = self.temperature is not None
        return Settings(beam=1 if sampling else self.beam, nbest=self.nbest, temperature=self.temperature,
                        top_k=self.top_k if sampling else 0, top_p=self.top_p if sampling else 1.0,
                        alignments=self.alignments, copy_unseen=self.copy_unseen)

    def rows(self) -> list[Row]:
        """One Row per input; input i samples with seed + i."""
        return [Row(text, None if self.seed is None else (self.seed + i) % (MAX_SEED + 1), prefix, tuple(wanted))
                for i, (text, prefix, wanted) in enumerate(zip(self.texts, self.prefixes, self.constraint_lists))]


class AttentionRequest(Strict):
    """POST /attention: one sentence, translated with beam search, and the attention it was made with."""

    text: str = Field(description="one sentence")
    model: str = Field("default", description="a model name the server was started with (see /models)")
    beam: int = Field(4, ge=1, le=MAX_BEAM, description="beam size of the translation (1: greedy)")
    layer: int = Field(-1, description="the layer whose heads are also given one by one (from 0; -1: the last)")
