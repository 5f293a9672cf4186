"""Forced target prefixes: the output begins with given pieces, and search continues from there.

A prefix that ends inside a word leaves that word open ("token healing"): its pieces are not forced;
instead the next pieces must spell the word's text and may go on past it (so "Un gr" may continue as
"▁grand", however the prefix alone was segmented), which lets the word end as the model would write it.
A prefix that ends with a space forces its pieces, then a word-initial piece or <eos>.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from seq2seq.data.tokenizer import EOS

WORD_START = "\u2581"  # SentencePiece's sign of a word boundary


@dataclass
class TargetPrefix:
    """Per sentence of a batch: `forced` pieces (B, L), -1 past each prefix's end; then the text `open_word`
    ("" for none) that the next pieces must spell, <eos> allowed there only where `eos_ok`."""

    forced: torch.Tensor
    open_word: list[str]
    eos_ok: list[bool]
    pieces: list[str]  # the vocabulary's pieces by id
    _masks: dict[tuple[str, bool], torch.Tensor] = field(default_factory=dict)

    @classmethod
    def build(cls, rules: list[tuple[list[int], str, bool]], pieces: list[str], device=None) -> TargetPrefix:
        """`rules`: per sentence, (forced ids, open word, <eos> allowed right after the forced ids)."""
        width = max((len(ids) for ids, _, _ in rules), default=0)
        forced = torch.full((len(rules), max(width, 1)), -1, dtype=torch.long)
        for i, (ids, _, _) in enumerate(rules):
            forced[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return cls(forced.to(device), [w for _, w, _ in rules], [e for _, _, e in rules], pieces)

    def lengths(self) -> torch.Tensor:
        """The fewest pieces the output takes: the forced ones, and one more for an open word."""
        return (self.forced >= 0).sum(1) + torch.tensor([bool(w) for w in self.open_word], device=self.forced.device)

    def restrict(self, scores: torch.Tensor, t: int, sentence: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Scores (rows, V) at step t with -inf wherever the prefix rules a piece out. `sentence` (rows,)
        maps rows to this batch's sentences; `tokens` (rows, 1 + t) are the rows' pieces so far."""
        width = self.forced.size(1)
        if t < width:
            column = self.forced[sentence, t]
            one_hot = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, column.clamp(min=0)[:, None], True)
            scores = scores.masked_fill((column >= 0)[:, None] & ~one_hot, float("-inf"))
        if not any(self.open_word):
            return scores
        starts = (self.forced >= 0).sum(1)[sentence].tolist()
        for row, (sent, start) in enumerate(zip(sentence.tolist(), starts)):
            word = self.open_word[sent]
            if word and start <= t < start + len(word):
                rest = self._rest(word, tokens[row, 1 + start:].tolist())
                if rest:
                    allowed = self._mask(rest, self.eos_ok[sent] and rest == word, scores.device)
                    scores[row] = scores[row].masked_fill(~allowed, float("-inf"))
        return scores

    def _rest(self, word: str, ids: list[int]) -> str:
        """What of `word` the pieces `ids` have not spelled yet ("" once spelled, or gone past)."""
        text = "".join(self.pieces[i] for i in ids)
        return word[len(text):] if word.startswith(text) else ""

    def _mask(self, rest: str, eos_ok: bool, device) -> torch.Tensor:
        """The pieces that continue `rest`: those starting with it, and those it starts with."""
        key = (rest, eos_ok)
        if key not in self._masks:
            mask = [bool(p) and (p.startswith(rest) or rest.startswith(p)) for p in self.pieces]
            mask[EOS] = eos_ok
            self._masks[key] = torch.tensor(mask, device=device)
        return self._masks[key]
