"""Search strategies: greedy, beam search with length penalty, sampling with temperature; forced decoding.

They drive any model that keeps the contract of `seq2seq.decode.contract.SearchModel`: the
encoder–decoder and the decoder-only model alike. Output length (pieces before <eos>) is capped at
a · source length + b (the paper: a=1, b=50, §6.1), and at `model.max_target_pieces(src)`. No search
ever emits <pad>, <s> or <sep>. An optional `TargetPrefix` forces the first pieces of each output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from seq2seq.data.tokenizer import BOS, EOS, PAD, SEP
from seq2seq.decode.config import SearchConfig
from seq2seq.decode.constraints import Constraints, Progress, allocate
from seq2seq.decode.prefix import TargetPrefix

BANNED = (PAD, BOS, SEP)  # never part of a translation: padding, the decoder's start, the source/target separator
NEG_INF = float("-inf")


@dataclass
class Hypothesis:
    tokens: list[int]  # generated pieces, <eos> not included
    score: float  # what ranked it: log-probability divided by the length penalty (beam) or the sum (greedy, sampling)
    logprob: float  # sum of token log-probabilities, <eos> included
    token_logprobs: list[float] = field(default_factory=list)  # one per generated piece, then <eos>


def length_penalty(length: torch.Tensor | int, alpha: float):
    """Wu et al. (2016): lp(Y) = ((5 + |Y|) / 6)^α, |Y| counting <eos>."""
    return ((5.0 + length) / 6.0) ** alpha


def max_lengths(model, src: torch.Tensor, a: float, b: int, prefix: TargetPrefix | None = None) -> torch.Tensor:
    """Per row, the most pieces before <eos>: a · source length + b, raised to hold the forced prefix, and
    never past what the model's positions hold."""
    limit = (model.source_lengths(src).float() * a + b).long().clamp(min=1)
    if prefix is not None:
        limit = torch.maximum(limit, prefix.lengths())
    return limit.clamp(max=model.max_target_pieces(src))


def ban(scores: torch.Tensor) -> torch.Tensor:
    """Rule out the BANNED pieces (in place). Log-probabilities are not renormalised, so scores stay the model's."""
    scores[:, list(BANNED)] = NEG_INF
    return scores


def _filter_top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, NEG_INF)
    if 0.0 < top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cumulative - sorted_logits.softmax(-1) >= top_p  # keep the smallest set reaching top_p
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), NEG_INF)
    return logits


@torch.no_grad()
def sample(model, src, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           generator: torch.Generator | list[torch.Generator | None] | None = None, max_len_a: float = 1.0,
           max_len_b: int = 50, use_cache: bool = True, observer=None,
           prefix: TargetPrefix | None = None) -> list[Hypothesis]:
    """One continuation per row, choosing each next piece from softmax(logits / temperature).

    Temperature trades the single most likely next piece for variety: below 1 sharpens the distribution,
    above 1 flattens it, and 0 means always the most likely piece (greedy). `observer(step, logprobs,
    chosen)` sees every step's distribution (after temperature) and choice, for `translate --explain`.
    `generator` may be a list with one generator (or None) per row: each row then draws from its own, so
    its output does not depend on the other rows of the batch.
    """
    batch = src.size(0)
    limit = max_lengths(model, src, max_len_a, max_len_b, prefix)
    state = model.begin(src, use_cache)
    rows = torch.arange(batch, device=src.device)
    tokens = torch.full((batch, 1), model.decoder_start_id, dtype=torch.long, device=src.device)
    token_logprobs = torch.zeros(batch, 0, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    for t in range(int(limit.max()) + 1):  # t = pieces generated so far
        logits = model.step(state, tokens).float()
        logprobs = ban(logits.log_softmax(-1))
        if prefix is not None:
            logprobs = prefix.restrict(logprobs, t, rows, tokens)
        if temperature > 0:
            logits = logits.masked_fill(logprobs == NEG_INF, NEG_INF)  # what is banned or ruled out
            shaped = _filter_top_k_top_p(logits / temperature, top_k, top_p).log_softmax(-1)
            chosen = _draw(shaped.exp(), generator)
        else:
            shaped, chosen = logprobs, logprobs.argmax(-1)
        chosen = torch.where(t >= limit, torch.full_like(chosen, EOS), chosen)  # length cap: end here
        chosen = torch.where(finished, torch.full_like(chosen, PAD), chosen)
        if observer is not None:
            observer(t, shaped, chosen)
        chosen_logprobs = logprobs.gather(1, chosen[:, None]).masked_fill(finished[:, None], 0.0)
        token_logprobs = torch.cat([token_logprobs, chosen_logprobs], 1)
        tokens = torch.cat([tokens, chosen[:, None]], 1)
        finished |= chosen == EOS
        if finished.all():
            break
    return [_hypothesis(tokens[i, 1:].tolist(), token_logprobs[i].tolist()) for i in range(batch)]


def _draw(probs: torch.Tensor, generator) -> torch.Tensor:
    """One piece per row of `probs`, from one shared generator or from each row's own."""
    if not isinstance(generator, (list, tuple)):
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return torch.cat([torch.multinomial(row[None], 1, generator=g)[0] for row, g in zip(probs, generator)])


def greedy(model, src, **kwargs) -> list[Hypothesis]:
    """The most likely next piece at every step (sampling at temperature 0)."""
    return sample(model, src, temperature=0.0, **kwargs)


def _hypothesis(tokens: list[int], token_logprobs: list[float]) -> Hypothesis:
    n = tokens.index(EOS) + 1 if EOS in tokens else len(tokens)
    lps = token_logprobs[:n]
    return Hypothesis(tokens[: n - 1] if EOS in tokens else tokens[:n], sum(lps), sum(lps), lps)


@torch.no_grad()
def force(model, src, targets: list[list[int]], use_cache: bool = True) -> list[Hypothesis]:
    """Forced decoding: each row's given target, then <eos>, fed step by step through the same calls search
    makes; the hypotheses hold the model's log-probability of every piece (score = the sum)."""
    width = max(len(t) for t in targets) + 1
    gold = torch.full((len(targets), width), PAD, dtype=torch.long)
    for i, t in enumerate(targets):
        gold[i, : len(t) + 1] = torch.tensor(t + [EOS], dtype=torch.long)
    gold = gold.to(src.device)
    state = model.begin(src, use_cache)
    tokens = torch.full((len(targets), 1), model.decoder_start_id, dtype=torch.long, device=src.device)
    columns = []
    for t in range(width):
        logprobs = model.step(state, tokens).float().log_softmax(-1)
        columns.append(logprobs.gather(1, gold[:, t:t + 1]))
        tokens = torch.cat([tokens, gold[:, t:t + 1]], 1)
    token_logprobs = torch.cat(columns, 1).tolist()
    return [_hypothesis(t + [EOS], lps[: len(t) + 1]) for t, lps in zip(targets, token_logprobs)]


def search(model, src, config: SearchConfig, generator: torch.Generator | None = None, observer=None,
           prefix: TargetPrefix | None = None, constraints: list[Constraints] | None = None) -> list[list[Hypothesis]]:
    """Run the search `config` names: per row, best-first hypotheses (one when sampling)."""
    common = {"max_len_a": config.max_len_a, "max_len_b": config.max_len_b, "use_cache": config.use_cache,
              "prefix": prefix}
    if config.sampling:
        if constraints is not None:
            raise ValueError("lexical constraints need beam search, not sampling (temperature)")
        found = sample(model, src, config.temperature, config.top_k, config.top_p, generator, observer=observer,
                       **common)
        return [[h] for h in found]
    return beam_search(model, src, config.beam, config.lenpen, config.nbest, constraints=constraints, **common)


# ---------------------------------------------------------------------------------------------- beam search

@dataclass
class _Beams:
    """The live hypotheses of the sentences still searched: `beam` rows per sentence, best first."""

    active: torch.Tensor  # (n,) which sentences of the batch
    tokens: torch.Tensor  # (n·beam, 1 + t): decoder start, then the pieces so far
    token_logprobs: torch.Tensor  # (n·beam, t)
    scores: torch.Tensor  # (n, beam): log-probabilities so far, -inf for a dead row
    progress: list[Progress] | None = None  # (n·beam) with constraints: each row's progress on them


@dataclass
class _Candidates:
    """The 2·beam best one-piece extensions of each sentence's live hypotheses, best first."""

    scores: torch.Tensor  # (n, 2·beam)
    origin: torch.Tensor  # (n, 2·beam): which of the sentence's beam rows it extends
    token: torch.Tensor  # (n, 2·beam)
    is_eos: torch.Tensor  # (n, 2·beam)


@torch.no_grad()
def beam_search(model, src, beam: int = 4, lenpen: float = 0.6, nbest: int = 1, max_len_a: float = 1.0,
                max_len_b: int = 50, use_cache: bool = True, prefix: TargetPrefix | None = None,
                constraints: list[Constraints] | None = None) -> list[list[Hypothesis]]:
    """Beam search batched over sentences × beams (§6.1: beam 4, α = 0.6), in fairseq's moves per step:
    `_candidates` (the 2·beam best extensions, so finished ones never starve the beam), `_finalize` (those
    ending in <eos> join the sentence's finished list), `_advance` (the best `beam` others stay live) and
    `_prune` (a sentence leaves the batch once no live hypothesis can beat its finished ones). With
    `constraints` (one per sentence), `_constrained_step` takes the place of the middle three.
    Returns, per sentence, the `nbest` best hypotheses by length-penalised score.
    """
    if not 1 <= nbest <= beam:
        raise ValueError(f"nbest ({nbest}) must be between 1 and the beam size ({beam})")
    batch, device = src.size(0), src.device
    limit = max_lengths(model, src, max_len_a, max_len_b, prefix)
    state = model.begin(src, use_cache)  # the encoder runs once per sentence ...
    state.expand(beam)  # ... and each sentence gets `beam` hypothesis rows
    scores = torch.zeros(batch, beam, device=device)
    scores[:, 1:] = NEG_INF  # all beams start identical: keep one
    beams = _Beams(torch.arange(batch, device=device),
                   torch.full((batch * beam, 1), model.decoder_start_id, dtype=torch.long, device=device),
                   torch.zeros(batch * beam, 0, device=device), scores)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    unmet: list[list[Hypothesis]] = [[] for _ in range(batch)]  # with constraints: ended at the cap without all
    if constraints is not None:
        beams.progress = [Progress()] * (batch * beam)
    best_possible_lp = length_penalty(limit.float() + 1, lenpen)  # the longest a hypothesis can get, <eos> included
    for t in range(int(limit.max()) + 1):  # t = pieces generated so far
        logprobs = ban(model.step(state, beams.tokens).float().log_softmax(-1))
        sentence = beams.active.repeat_interleave(beam)
        if prefix is not None:
            logprobs = prefix.restrict(logprobs, t, sentence, beams.tokens)
        logprobs, lp = _cap(logprobs, t >= limit[sentence]), length_penalty(float(t + 1), lenpen)
        if constraints is None:
            cands = _candidates(beams, logprobs, beam)
            _finalize(beams, cands, finished, lp, beam)
            origin = _advance(beams, cands, beam)
        else:
            origin = _constrained_step(beams, logprobs, t < limit[sentence], constraints, (finished, unmet), lp, beam)
        state.reorder(origin)
        keep_rows = _prune(beams, finished, best_possible_lp, beam)
        if keep_rows is not None:
            if keep_rows.numel() == 0:
                break
            state.select(keep_rows)
    return [sorted(hyps or fallback, key=lambda h: -h.score)[:nbest] for hyps, fallback in zip(finished, unmet)]


def _cap(logprobs: torch.Tensor, at_limit: torch.Tensor) -> torch.Tensor:
    """The length cap: rows at their limit can only end here."""
    if at_limit.any():
        forced = torch.full_like(logprobs[at_limit], NEG_INF)
        forced[:, EOS] = logprobs[at_limit, EOS]
        logprobs[at_limit] = forced
    return logprobs


def _candidates(beams: _Beams, logprobs: torch.Tensor, beam: int) -> _Candidates:
    n, vocab = beams.active.numel(), logprobs.size(-1)
    total = (beams.scores.view(-1, 1) + logprobs).view(n, beam * vocab)
    scores, cand = total.topk(2 * beam, dim=1)
    token = cand % vocab
    return _Candidates(scores, cand // vocab, token, token == EOS)


def _finalize(beams: _Beams, cands: _Candidates, finished: list[list[Hypothesis]], lp: float, beam: int) -> None:
    """Hypotheses ending in <eos> among the best `beam` candidates are finished: score = log p / lp."""
    new_done = (cands.is_eos[:, :beam] & (cands.scores[:, :beam] > NEG_INF)).nonzero().tolist()
    for i, j in new_done:
        _finish(beams, finished, i, int(cands.origin[i, j]), float(cands.scores[i, j]), lp, beam)


def _finish(beams: _Beams, finished: list[list[Hypothesis]], i: int, b: int, total: float, lp: float,
            beam: int) -> None:
    """Row b of sentence i ends here with <eos>, at log-probability `total`."""
    row = i * beam + b
    lps = beams.token_logprobs[row].tolist() + [total - float(beams.scores[i, b])]
    finished[int(beams.active[i])].append(Hypothesis(beams.tokens[row, 1:].tolist(), total / lp, total, lps))


def _advance(beams: _Beams, cands: _Candidates, beam: int) -> torch.Tensor:
    """The best `beam` candidates that do not end in <eos> become the live hypotheses; returns, per new
    row, the row it came from (for the model's state)."""
    n, device = beams.active.numel(), beams.scores.device
    rank = torch.arange(2 * beam, device=device).expand(n, -1) + cands.is_eos * (2 * beam)
    keep = rank.argsort(dim=1)[:, :beam]
    next_scores = cands.scores.gather(1, keep).masked_fill(cands.is_eos.gather(1, keep), NEG_INF)
    return _move(beams, cands.origin.gather(1, keep), cands.token.gather(1, keep), next_scores)


def _move(beams: _Beams, next_origin: torch.Tensor, next_token: torch.Tensor,
          next_scores: torch.Tensor) -> torch.Tensor:
    """Live rows extend rows `next_origin` (n, beam) of their sentence by `next_token` (n, beam); returns
    the rows they came from (for the model's state)."""
    n, beam = next_origin.shape
    origin = (torch.arange(n, device=next_origin.device)[:, None] * beam + next_origin).view(-1)
    step_lp = (next_scores - beams.scores.gather(1, next_origin)).view(-1, 1)
    beams.tokens = torch.cat([beams.tokens[origin], next_token.view(-1, 1)], 1)
    beams.token_logprobs = torch.cat([beams.token_logprobs[origin], step_lp], 1)
    beams.scores = next_scores
    return origin


def _constrained_step(beams: _Beams, logprobs: torch.Tensor, below_cap: torch.Tensor, constraints: list[Constraints],
                      finished: tuple[list[list[Hypothesis]], ...], lp: float, beam: int) -> torch.Tensor:
    """One step of dynamic beam allocation (seq2seq/decode/constraints.py): finalize, then fill the beam
    bank by bank. <eos> waits until a row has met every constraint; a row at its cap ends anyway, into
    `finished[1]`, which only counts for a sentence that has nothing in `finished[0]`."""
    n, vocab = beams.active.numel(), logprobs.size(-1)
    sentence = beams.active.repeat_interleave(beam).tolist()
    unmet = [not constraints[s].done(p) for s, p in zip(sentence, beams.progress)]
    logprobs[torch.tensor(unmet, device=logprobs.device) & below_cap, EOS] = NEG_INF
    for row, (sent, state) in enumerate(zip(sentence, beams.progress)):
        if state.closing and constraints[sent].glue is not None:  # a name just ended: no piece may extend it
            logprobs[row, constraints[sent].glue] = NEG_INF
    total = beams.scores.view(-1, 1) + logprobs
    top_scores, top = total.view(n, beam * vocab).topk(2 * beam, dim=1)
    best = total.argmax(1).tolist()
    picks = []
    for i, sent in enumerate(beams.active.tolist()):
        cands = dict(zip((divmod(c, vocab) for c in top[i].tolist()), top_scores[i].tolist()))
        for b in range(beam):
            row = i * beam + b
            for token in constraints[sent].useful(beams.progress[row]) | {best[row]}:
                cands[(b, token)] = float(total[row, token])
        rules = constraints[sent]
        after = [(s, b, w, rules.advance(beams.progress[i * beam + b], w))
                 for (b, w), s in cands.items() if s > NEG_INF]
        order = allocate([(c[0], rules.pieces_met(c[3]), c) for c in after])
        for s, b, w, _ in order[:beam]:  # as plain beam search: <eos> among the first `beam` is finished
            if w == EOS:
                _finish(beams, finished[unmet[i * beam + b]], i, b, s, lp, beam)
        live = [c for c in order if c[2] != EOS][:beam]
        picks.append(live + [(NEG_INF, 0, EOS, Progress())] * (beam - len(live)))  # dead rows fill the rest
    beams.progress = [c[3] for row in picks for c in row]
    def column(k: int, dtype) -> torch.Tensor:
        return torch.tensor([[c[k] for c in row] for row in picks], dtype=dtype, device=logprobs.device)

    return _move(beams, column(1, torch.long), column(2, torch.long), column(0, torch.float))


def _prune(beams: _Beams, finished: list[list[Hypothesis]], best_possible_lp: torch.Tensor, beam: int):
    """Drop the sentences that are done: `beam` finished and no live hypothesis able to beat the worst of
    them (a live one's score can at best stay its log-probability, normalised by the longest length it
    may reach), or no live hypothesis at all. Returns the rows kept, or None when all stay."""
    best_live = (beams.scores.max(1).values / best_possible_lp[beams.active]).tolist()
    done = set()
    for i, sent in enumerate(beams.active.tolist()):
        hyps = finished[sent]
        if best_live[i] == NEG_INF or (len(hyps) >= beam and sorted(h.score for h in hyps)[-beam] >= best_live[i]):
            done.add(i)
    if not done:
        return None
    device = beams.scores.device
    keep = torch.tensor([i for i in range(beams.active.numel()) if i not in done], dtype=torch.long, device=device)
    rows = (keep[:, None] * beam + torch.arange(beam, device=device)).view(-1)
    beams.active, beams.scores = beams.active[keep], beams.scores[keep]
    beams.tokens, beams.token_logprobs = beams.tokens[rows], beams.token_logprobs[rows]
    if beams.progress is not None:
        beams.progress = [beams.progress[r] for r in rows.tolist()]
    return rows
