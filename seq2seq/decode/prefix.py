"""Forced target prefixes: the output begins with given pieces, and search continues from there.

A prefix that ends inside a word leaves its last piece open: instead of forcing it, the next step may
take any piece that starts with it (so "Le chi" may go on as "▁chien"), which lets the word continue as
the model would segment it. A prefix that ends with a space forces its pieces, then a word-initial piece
or <eos>.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seq2seq.data.tokenizer import EOS


@dataclass
class TargetPrefix:
    """Per sentence of a batch: `forced` pieces (B, L), -1 past each prefix's end; then, at step `open_at`
    (-1: none), only the pieces marked in `allowed` (B, V)."""

    forced: torch.Tensor
    open_at: torch.Tensor
    allowed: torch.Tensor

    @classmethod
    def build(cls, prefixes: list[tuple[list[int], list[bool] | None]], vocab: int, device=None) -> TargetPrefix:
        """`prefixes`: per sentence, (forced ids, mask over the vocabulary for the step after them or None)."""
        width = max((len(ids) for ids, _ in prefixes), default=0)
        forced = torch.full((len(prefixes), max(width, 1)), -1, dtype=torch.long)
        open_at = torch.full((len(prefixes),), -1, dtype=torch.long)
        allowed = torch.ones(len(prefixes), vocab, dtype=torch.bool)
        for i, (ids, mask) in enumerate(prefixes):
            forced[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            if mask is not None:
                open_at[i], allowed[i] = len(ids), torch.tensor(mask)
        return cls(forced.to(device), open_at.to(device), allowed.to(device))

    def lengths(self) -> torch.Tensor:
        """Pieces each prefix takes: the forced ones, and the open one."""
        return (self.forced >= 0).sum(1) + (self.open_at >= 0).long()

    def select(self, sentences: torch.Tensor) -> TargetPrefix:
        return TargetPrefix(self.forced[sentences], self.open_at[sentences], self.allowed[sentences])

    def restrict(self, scores: torch.Tensor, t: int, sentence: torch.Tensor) -> torch.Tensor:
        """Scores (rows, V) at step t with -inf wherever the prefix rules a piece out; `sentence` (rows,)
        maps rows to this batch's sentences."""
        if t > self.forced.size(1):
            return scores
        column = self.forced[sentence, t] if t < self.forced.size(1) else torch.full_like(sentence, -1)
        allowed = torch.where((self.open_at[sentence] == t)[:, None], self.allowed[sentence], True)
        one_hot = torch.zeros_like(allowed).scatter_(1, column.clamp(min=0)[:, None], True)
        allowed = torch.where((column >= 0)[:, None], one_hot, allowed)
        return scores.masked_fill(~allowed, float("-inf"))


def open_piece_mask(pieces: list[str], start: str, allow_eos: bool) -> list[bool]:
    """Over the vocabulary: the pieces whose text starts with `start` (and <eos> if `allow_eos`)."""
    mask = [p.startswith(start) for p in pieces]
    mask[EOS] = allow_eos
    return mask
