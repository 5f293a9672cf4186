"""Lexical constraints: target phrases that must appear in the output, by dynamic beam allocation.

Post & Vilar (2018, NAACL), "Fast Lexically Constrained Decoding with Dynamic Beam Allocation": at every
step the candidates are the usual best extensions plus, for every live hypothesis, the pieces that make
progress on a constraint and its own best piece. The beam is then split into banks by the number of
constraint pieces met, and filled round-robin from the bank that met most down, each bank's best first:
so a hypothesis that just paid for a constraint piece is not pushed out by cheaper ones that met fewer.
Finished hypotheses are taken from the same order (<eos> among the first `beam`), so one that
met every constraint is not outranked by cheaper unfinished ones. <eos> is allowed only once every
constraint is met (or at the length cap, so that a search never ends with nothing). Constraints are
unordered unless `ordered`.

A constraint listed in `whole` must end a word: the piece after its last one may not continue the word
(`glue`: the vocabulary's word-continuing pieces), so that a name "Amir" is not met by "Amirurs".

A constraint in progress that is interrupted is lost (it must start again from its first piece), and
when several unmet constraints begin with the same piece the first one listed is tracked.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One hypothesis's progress: the constraints met, and the one under way with its pieces matched."""

    met: frozenset[int] = frozenset()
    current: int = -1
    matched: int = 0
    closing: bool = False  # a whole-word constraint ended at the last piece: the word must end here


class Constraints:
    """The constraint phrases (piece ids) of one sentence."""

    def __init__(self, phrases: list[list[int]], ordered: bool = False, whole: set[int] = frozenset(), glue=None):
        kept = [k for k, p in enumerate(phrases) if p]
        self.phrases = [tuple(phrases[k]) for k in kept]
        self.ordered = ordered
        self.whole = frozenset(i for i, k in enumerate(kept) if k in whole)  # indices into self.phrases
        self.glue = glue  # word-continuing piece ids (a LongTensor), banned when `closing`

    def __len__(self) -> int:
        return len(self.phrases)

    def _startable(self, state: Progress) -> list[int]:
        """The constraints that may begin at the next piece."""
        unmet = [c for c in range(len(self.phrases)) if c not in state.met and c != state.current]
        if self.ordered:  # only the first unmet one, and only when none is under way
            return unmet[:1] if state.current < 0 else []
        return unmet

    def advance(self, state: Progress, token: int) -> Progress:
        """The progress after `token`."""
        if state.current >= 0 and self.phrases[state.current][state.matched] == token:
            return self._matched(state.met, state.current, state.matched + 1)
        if state.current >= 0:  # interrupted: that constraint must start again
            state = Progress(state.met)
        for c in self._startable(state):
            if self.phrases[c][0] == token:
                return self._matched(state.met, c, 1)
        return Progress(state.met) if state.closing else state

    def _matched(self, met: frozenset[int], c: int, matched: int) -> Progress:
        if matched == len(self.phrases[c]):
            return Progress(met | {c}, closing=c in self.whole)
        return Progress(met, c, matched)

    def useful(self, state: Progress) -> set[int]:
        """The pieces that make progress from `state`."""
        out = {self.phrases[c][0] for c in self._startable(state)}
        if state.current >= 0:
            out.add(self.phrases[state.current][state.matched])
        return out

    def pieces_met(self, state: Progress) -> int:
        """The bank of `state`: constraint pieces met, those of the one under way included."""
        return sum(len(self.phrases[c]) for c in state.met) + state.matched

    def done(self, state: Progress) -> bool:
        return len(state.met) == len(self.phrases)


def allocate(candidates: list[tuple[float, int, object]]) -> list[object]:
    """Dynamic beam allocation: `candidates` are (score, bank, item); returns the items in the order the
    beam takes them: in turn the best left in each bank, the bank with most pieces met first.
    With a single bank this is best-first, as plain beam search ranks."""
    banks: dict[int, list[tuple[float, object]]] = {}
    for score, bank, item in sorted(candidates, key=lambda c: -c[0]):
        banks.setdefault(bank, []).append((score, item))
    order = sorted((rank, -bank) for bank, members in banks.items() for rank in range(len(members)))
    return [banks[-negated][rank][1] for rank, negated in order]
