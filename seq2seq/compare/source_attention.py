"""Attention to the source by target position: does a decoder-only model look at the source less and less
as it generates ("attention degeneration", Fu et al. 2023)?

Every system is teacher-forced on test references (seq2seq/viz/maps.py records the weights of eq. 1). For
each target position, over the source pieces and their end marker (<eos>, or <sep> for the decoder-only
model):
  * the entropy (nats) of its attention over the source, the decoder-only model's weights restricted to the
    source block and renormalised: low = the position looks at few source pieces;
  * the share of its attention mass on the source: 1 for cross-attention by construction; for the
    decoder-only model, what is left over from the target it has generated.
Both are averaged over layers, heads and sentences, position by position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from seq2seq.viz.maps import attention_maps

LONG = 20  # target positions a sentence needs for `fades` (4 windows of 5)


@dataclass
class SourceAttention:
    """Per target position (0 = the query that produces the first piece): sums over sentences, and counts."""

    entropy: list[float] = field(default_factory=list)
    share: list[float] = field(default_factory=list)
    count: list[int] = field(default_factory=list)
    long_shares: list[list[float]] = field(default_factory=list)  # per sentence of >= LONG positions: its shares
    long_even: list[list[float]] = field(default_factory=list)  # the same sentences: their `even_share`s

    def add(self, entropy: torch.Tensor, share: torch.Tensor, even: torch.Tensor) -> None:
        """One sentence's per-position values (T,), `even` its shares under evenly spread attention."""
        if len(share) >= LONG:
            self.long_shares.append(share.tolist())
            self.long_even.append(even.tolist())
        for t, (h, s) in enumerate(zip(entropy.tolist(), share.tolist())):
            if t == len(self.count):
                self.entropy.append(0.0), self.share.append(0.0), self.count.append(0)
            self.entropy[t] += h
            self.share[t] += s
            self.count[t] += 1

    def means(self, min_count: int = 1) -> tuple[list[float], list[float]]:
        """(mean entropy, mean share) per position, for positions that `min_count` sentences reach."""
        kept = [t for t, n in enumerate(self.count) if n >= min_count]
        return ([self.entropy[t] / self.count[t] for t in kept], [self.share[t] / self.count[t] for t in kept])


def even_share(source_pieces: int, positions: int, kind: str) -> torch.Tensor:
    """The source's share at each target position if attention were spread evenly over what the position
    can see: 1 for cross-attention; for the decoder-only model, whose query at target position t sits after
    the S source pieces (with <sep>) and t target pieces, S / (S + t)."""
    if kind == "transformer":
        return torch.ones(positions)
    return source_pieces / (source_pieces + torch.arange(positions, dtype=torch.float))


def position_profile(cross: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(entropy, share) per target position from one pair's target → source weights (layers, heads, T, S)."""
    mass = cross.sum(-1)  # (L, h, T)
    p = cross / mass.clamp_min(1e-12)[..., None]
    entropy = -(p * p.clamp_min(1e-12).log()).sum(-1)
    return entropy.mean((0, 1)), mass.mean((0, 1))


@torch.no_grad()
def source_attention(model, pairs: list[tuple[list[int], list[int]]], batch_size: int = 32) -> SourceAttention:
    """The profile of `model` (eval mode) teacher-forced on (source ids, reference ids) pairs."""
    profile = SourceAttention()
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        for maps in attention_maps(model, [s for s, _ in chunk], [t for _, t in chunk]):
            positions, source_pieces = maps.cross.shape[-2:]
            profile.add(*position_profile(maps.cross), even_share(source_pieces, positions, model.kind))
    return profile


def fades(shares: list[list[float]], window: int = 5) -> float | None:
    """How much the source's share falls from the first `window` positions to the `window` after position
    3·window, over the same sentences (those that long), so that sentence length does not confound it: > 0
    means less attention to the source later on; None when no sentence is that long."""
    rows = [s for s in shares if len(s) >= 4 * window]
    if not rows:
        return None
    return sum(sum(s[:window]) - sum(s[3 * window:4 * window]) for s in rows) / (window * len(rows))


def fits(model, source: list[int], target: list[int]) -> bool:
    """Whether the model's positions hold the pair teacher-forced (references can be longer than training's)."""
    limit = model.cfg.max_positions
    if model.kind == "transformer":
        return len(source) + 1 <= limit and len(target) + 1 <= limit
    return len(source) + len(target) + 2 <= limit
