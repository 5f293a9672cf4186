"""Ensemble decoding: several models, one search, their next-piece distributions averaged every step.

The average is of probabilities, taken in log space: log (1/K) Σ_k p_k(y | x, prefix), by log-sum-exp, as
fairseq's EnsembleModel does. The ensemble keeps the search contract itself (seq2seq/decode/contract.py),
so greedy, beam search, sampling, constraints, prefixes and scoring all take it as one model. The models
must share one tokenizer; they may be of both kinds (encoder–decoder and decoder-only): each gets the
source in its own layout and the prefix after its own start piece.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class EnsembleState:
    """One state per model, moved together."""

    def __init__(self, states: list):
        self.states = states

    def expand(self, k: int) -> None:
        for s in self.states:
            s.expand(k)

    def reorder(self, index: torch.Tensor) -> None:
        for s in self.states:
            s.reorder(index)

    def select(self, index: torch.Tensor) -> None:
        for s in self.states:
            s.select(index)


class Ensemble(nn.Module):
    """Models that keep the search contract, decoding as one. Sources are in the first model's layout."""

    def __init__(self, models: list[nn.Module]):
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.models = nn.ModuleList(models)
        first = models[0]
        self.kind, self.decoder_start_id = first.kind, first.decoder_start_id
        self.make_source, self.source_ids = first.make_source, first.source_ids
        self.source_lengths = first.source_lengths

    def max_source_pieces(self) -> int:
        return min(m.max_source_pieces() for m in self.models)

    def _sources(self, src: torch.Tensor) -> list[torch.Tensor]:
        """`src` in every model's own layout."""
        ids = None
        out = []
        for m in self.models:
            if m.kind == self.kind:
                out.append(src)
            else:
                ids = ids if ids is not None else self.source_ids(src)
                out.append(m.make_source(ids, src.device))
        return out

    def max_target_pieces(self, src: torch.Tensor) -> int | torch.Tensor:
        rooms = [torch.as_tensor(m.max_target_pieces(s), device=src.device)
                 for m, s in zip(self.models, self._sources(src))]
        return torch.stack([r.expand(src.size(0)) for r in rooms]).min(0).values

    def begin(self, src: torch.Tensor, use_cache: bool = True) -> EnsembleState:
        return EnsembleState([m.begin(s, use_cache) for m, s in zip(self.models, self._sources(src))])

    def step(self, state: EnsembleState, prefix: torch.Tensor) -> torch.Tensor:
        """log (1/K) Σ_k p_k: normalised log-probabilities (rows, V), which the search takes as logits."""
        logprobs = []
        for m, s in zip(self.models, state.states):
            own = prefix
            if m.decoder_start_id != self.decoder_start_id:
                own = prefix.clone()
                own[:, 0] = m.decoder_start_id
            logprobs.append(m.step(s, own).float().log_softmax(-1))
        return torch.logsumexp(torch.stack(logprobs), 0) - math.log(len(logprobs))
