"""Search strategies: greedy, beam search with length penalty, sampling with temperature.

They drive any model that offers `decoder_start_id`, `source_lengths(src)`, `begin(src, use_cache)` →
state (with `expand(k)` to k rows a sentence, `reorder(index)` within a sentence's beams and
`select(index)` of whole sentences' rows), and
`step(state, prefix)` → next-token logits: the encoder–decoder and the
decoder-only model alike. Output length (pieces before <eos>) is capped at a · source length + b (the
paper: a=1, b=50, §6.1), and at `model.max_target_pieces(src)` when the model defines it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from seq2seq.data.tokenizer import BOS, EOS, PAD, SEP

BANNED = (PAD, BOS, SEP)  # never part of a translation: padding, the decoder's start, the source/target separator


@dataclass
class Hypothesis:
    tokens: list[int]  # generated pieces, <eos> not included
    score: float  # what ranked it: log-probability divided by the length penalty (beam) or the sum (greedy, sampling)
    logprob: float  # sum of token log-probabilities, <eos> included
    token_logprobs: list[float] = field(default_factory=list)  # one per generated piece, then <eos>


def length_penalty(length: torch.Tensor | int, alpha: float):
    """Wu et al. (2016): lp(Y) = ((5 + |Y|) / 6)^α, |Y| counting <eos>."""
    return ((5.0 + length) / 6.0) ** alpha


def max_lengths(model, src: torch.Tensor, a: float, b: int) -> torch.Tensor:
    limit = (model.source_lengths(src).float() * a + b).long().clamp(min=1)
    room = getattr(model, "max_target_pieces", None)  # optional: the pieces the decoder's positions hold
    return limit if room is None else limit.clamp(max=room(src))


def ban(scores: torch.Tensor) -> torch.Tensor:
    """Rule out the BANNED pieces (in place). Log-probabilities are not renormalised, so scores stay the model's."""
    scores[:, list(BANNED)] = float("-inf")
    return scores


def _filter_top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0.0 < top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cumulative - sorted_logits.softmax(-1) >= top_p  # keep the smallest set reaching top_p
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    return logits


@torch.no_grad()
def sample(model, src, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           generator: torch.Generator | None = None, max_len_a: float = 1.0, max_len_b: int = 50,
           use_cache: bool = True, observer=None) -> list[Hypothesis]:
    """One continuation per row, choosing each next piece from softmax(logits / temperature).

    Temperature trades the single most likely next piece for variety: below 1 sharpens the distribution,
    above 1 flattens it, and 0 means always the most likely piece (greedy). `observer(step, logprobs,
    chosen)` sees every step's distribution (after temperature) and choice, for `translate --explain`.
    """
    batch = src.size(0)
    limit = max_lengths(model, src, max_len_a, max_len_b)
    state = model.begin(src, use_cache)
    prefix = torch.full((batch, 1), model.decoder_start_id, dtype=torch.long, device=src.device)
    token_logprobs = torch.zeros(batch, 0, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    for t in range(int(limit.max()) + 1):  # t = pieces generated so far
        logits = model.step(state, prefix).float()
        logprobs = ban(logits.log_softmax(-1))
        logits = ban(logits)
        if temperature > 0:
            shaped = _filter_top_k_top_p(logits / temperature, top_k, top_p).log_softmax(-1)
            chosen = torch.multinomial(shaped.exp(), 1, generator=generator).squeeze(1)
        else:
            shaped, chosen = logprobs, logprobs.argmax(-1)
        chosen = torch.where(t >= limit, torch.full_like(chosen, EOS), chosen)  # length cap: end here
        chosen = torch.where(finished, torch.full_like(chosen, PAD), chosen)
        if observer is not None:
            observer(t, shaped, chosen)
        token_logprobs = torch.cat([token_logprobs, logprobs.gather(1, chosen[:, None]).masked_fill(finished[:, None], 0.0)], 1)
        prefix = torch.cat([prefix, chosen[:, None]], 1)
        finished |= chosen == EOS
        if finished.all():
            break
    return [_hypothesis(prefix[i, 1:].tolist(), token_logprobs[i].tolist()) for i in range(batch)]


def greedy(model, src, **kwargs) -> list[Hypothesis]:
    """The most likely next piece at every step (sampling at temperature 0)."""
    return sample(model, src, temperature=0.0, **kwargs)


def _hypothesis(tokens: list[int], token_logprobs: list[float]) -> Hypothesis:
    n = tokens.index(EOS) + 1 if EOS in tokens else len(tokens)
    lps = token_logprobs[:n]
    return Hypothesis(tokens[: n - 1] if EOS in tokens else tokens[:n], sum(lps), sum(lps), lps)


@torch.no_grad()
def beam_search(model, src, beam: int = 4, lenpen: float = 0.6, nbest: int = 1, max_len_a: float = 1.0,
                max_len_b: int = 50, use_cache: bool = True) -> list[list[Hypothesis]]:
    """Beam search batched over sentences × beams (§6.1: beam 4, α = 0.6).

    Each step takes the 2·beam best extensions of the live hypotheses, so finished ones (those ending
    in <eos>) never starve the beam; the best `beam` unfinished ones stay live. A sentence is done once
    it holds `beam` finished hypotheses and no live one could still beat them: a live hypothesis's score
    can at best stay its log-probability, normalised by the longest length it may reach.
    Returns, per sentence, the `nbest` best hypotheses by length-penalised score.
    """
    if not 1 <= nbest <= beam:
        raise ValueError(f"nbest ({nbest}) must be between 1 and the beam size ({beam})")
    batch, device = src.size(0), src.device
    limit = max_lengths(model, src, max_len_a, max_len_b)
    state = model.begin(src, use_cache)  # the encoder runs once per sentence ...
    state.expand(beam)  # ... and each sentence gets `beam` hypothesis rows
    active = torch.arange(batch, device=device)  # sentences still being searched
    prefix = torch.full((batch * beam, 1), model.decoder_start_id, dtype=torch.long, device=device)
    token_logprobs = torch.zeros(batch * beam, 0, device=device)
    scores = torch.zeros(batch, beam, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: keep one
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    best_possible_lp = length_penalty(limit.float() + 1, lenpen)  # the longest a hypothesis can get, <eos> included
    for t in range(int(limit.max()) + 1):  # t = pieces generated so far
        logprobs = ban(model.step(state, prefix).float().log_softmax(-1))
        vocab = logprobs.size(-1)
        n = active.numel()
        at_limit = (t >= limit[active]).repeat_interleave(beam)
        if at_limit.any():  # the length cap: these hypotheses can only end here
            forced = torch.full_like(logprobs[at_limit], float("-inf"))
            forced[:, EOS] = logprobs[at_limit, EOS]
            logprobs[at_limit] = forced
        total = (scores.view(-1, 1) + logprobs).view(n, beam * vocab)
        cand_scores, cand = total.topk(2 * beam, dim=1)  # (n, 2·beam), best first
        cand_beam, cand_token = cand // vocab, cand % vocab
        is_eos = cand_token == EOS
        # Finished hypotheses: <eos> among the best `beam` candidates.
        lp = length_penalty(float(t + 1), lenpen)
        new_done = (is_eos[:, :beam] & (cand_scores[:, :beam] > float("-inf"))).nonzero().tolist()
        for i, j in new_done:
            src_row = i * beam + int(cand_beam[i, j])
            lps = token_logprobs[src_row].tolist() + [float(cand_scores[i, j] - scores[i, cand_beam[i, j]])]
            tokens = prefix[src_row, 1:].tolist()
            finished[int(active[i])].append(Hypothesis(tokens, float(cand_scores[i, j]) / lp, float(cand_scores[i, j]), lps))
        # Live hypotheses: the best `beam` candidates that are not <eos>.
        rank = torch.arange(2 * beam, device=device).expand(n, -1) + is_eos * (2 * beam)
        keep = rank.argsort(dim=1)[:, :beam]
        next_scores = cand_scores.gather(1, keep).masked_fill(is_eos.gather(1, keep), float("-inf"))
        next_beam, next_token = cand_beam.gather(1, keep), cand_token.gather(1, keep)
        origin = (torch.arange(n, device=device)[:, None] * beam + next_beam).view(-1)
        step_lp = (next_scores - scores.gather(1, next_beam)).view(-1, 1)
        prefix = torch.cat([prefix[origin], next_token.view(-1, 1)], 1)
        token_logprobs = torch.cat([token_logprobs[origin], step_lp], 1)
        scores = next_scores
        state.reorder(origin)
        # Which sentences are done: `beam` finished and no live hypothesis can still beat the worst of them.
        done = []
        best_live = (scores.max(1).values / best_possible_lp[active]).tolist()
        for i, sent in enumerate(active.tolist()):
            hyps = finished[sent]
            if len(hyps) >= beam and sorted(h.score for h in hyps)[-beam] >= best_live[i]:
                done.append(i)
            elif best_live[i] == float("-inf"):
                done.append(i)
        if done:
            keep_sent = torch.tensor([i for i in range(n) if i not in set(done)], dtype=torch.long, device=device)
            if keep_sent.numel() == 0:
                break
            keep_rows = (keep_sent[:, None] * beam + torch.arange(beam, device=device)).view(-1)
            active, scores = active[keep_sent], scores[keep_sent]
            prefix, token_logprobs = prefix[keep_rows], token_logprobs[keep_rows]
            state.select(keep_rows)
    return [sorted(hyps, key=lambda h: -h.score)[:nbest] for hyps in finished]
