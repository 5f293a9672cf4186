"""The written contract between search and a model: what greedy, beam and sampling call, and nothing else.

Both model kinds (`EncoderDecoder`, `DecoderOnly`), an ensemble of models, and the tests' hand-set
models satisfy it, so search never asks which kind it drives.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class SearchState(Protocol):
    """What a model carries between steps for a batch of rows (encoder output, key/value caches)."""

    def expand(self, k: int) -> None:
        """Every row becomes k consecutive rows: a sentence's beam."""

    def reorder(self, index: torch.Tensor) -> None:
        """Rows take their state from rows `index` of the same sentence (hypotheses changing places)."""

    def select(self, index: torch.Tensor) -> None:
        """Keep rows `index`, whole sentences only (finished sentences leave the batch)."""


@runtime_checkable
class SearchModel(Protocol):
    """Begin a batch, step with a cache, and the length cap."""

    decoder_start_id: int  # the first piece of every prefix handed to `step`

    def source_lengths(self, src: torch.Tensor) -> torch.Tensor:
        """Source pieces per row of `src` (the model's own source layout), padding not counted."""

    def max_target_pieces(self, src: torch.Tensor) -> int | torch.Tensor:
        """The most pieces (before <eos>) the model's positions hold after each row's source."""

    def begin(self, src: torch.Tensor, use_cache: bool = True) -> SearchState:
        """Run what depends on the source alone, once per sentence."""

    def step(self, state: SearchState, prefix: torch.Tensor) -> torch.Tensor:
        """Next-piece logits (rows, V) after `prefix` (rows, t), which starts with `decoder_start_id`."""
