"""Search strategies on a fake model with fixed per-step probabilities, and on a real tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from seq2seq.config import compose
from seq2seq.data.tokenizer import BOS, EOS, PAD, SEP
from seq2seq.decode.config import SearchConfig, SearchConfigError
from seq2seq.decode.constraints import Constraints, Progress
from seq2seq.decode.contract import SearchModel, SearchState
from seq2seq.decode.ensemble import Ensemble
from seq2seq.decode.search import beam_search, force, greedy, length_penalty, sample, search
from seq2seq.model.build import build_model

V = 10


class FixedModel:
    """Next-token probabilities depend only on the prefix, from a table {prefix tuple: {token: p}};
    the rest of the mass is spread evenly over the other tokens."""

    decoder_start_id = BOS

    def __init__(self, table, default=None):
        self.table, self.default = table, default or {}

    @staticmethod
    def source_lengths(src):
        return (src != PAD).sum(1) - 1

    @staticmethod
    def max_target_pieces(src):
        return 1000  # no positions to run out of

    class State:
        def reorder(self, index):
            pass

        select = reorder

        def expand(self, k):
            pass

    def begin(self, src, use_cache=True):
        return self.State()

    def step(self, state, prefix):
        rows = []
        for p in prefix.tolist():
            probs = dict(self.table.get(tuple(p[1:]), self.default))
            rest = (1.0 - sum(probs.values())) / (V - len(probs))
            rows.append([math.log(probs.get(i, rest)) if probs.get(i, rest) > 0 else -1e9 for i in range(V)])
        return torch.tensor(rows)


def lengthpen_model():
    # Either stop at once (p=0.5, empty output) or say "5 6" (0.48 · 0.9, then <eos> 0.9).
    return FixedModel({(): {EOS: 0.5, 5: 0.48}, (5,): {6: 0.9}, (5, 6): {EOS: 0.9}})


def test_length_penalty_changes_the_winner_as_computed_by_hand():
    src = torch.tensor([[7, 7, 3]])
    short, long = math.log(0.5), math.log(0.48) + 2 * math.log(0.9)
    assert short > long  # without a length penalty the empty output wins ...
    best = beam_search(lengthpen_model(), src, beam=2, lenpen=0.0)[0][0]
    assert best.tokens == [] and best.score == pytest.approx(short, abs=1e-5)
    # ... with alpha = 1.5, lp(3) = (8/6)^1.5 makes the longer one win: -0.944 / 1.540 > -0.693
    assert long / length_penalty(3, 1.5) > short / length_penalty(1, 1.5)
    best = beam_search(lengthpen_model(), src, beam=2, lenpen=1.5)[0][0]
    assert best.tokens == [5, 6] and best.score == pytest.approx(long / length_penalty(3, 1.5), abs=1e-5)
    assert best.logprob == pytest.approx(long, abs=1e-5)


def test_nbest_lists_are_sorted_and_bounded_by_the_beam():
    hyps = beam_search(lengthpen_model(), torch.tensor([[7, 3]]), beam=3, lenpen=0.0, nbest=3)[0]
    assert len(hyps) == 3 and [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    with pytest.raises(ValueError, match="nbest"):
        beam_search(lengthpen_model(), torch.tensor([[7, 3]]), beam=2, nbest=3)


@pytest.mark.parametrize("a,b", [(1.0, 0), (0.0, 3), (2.0, 1)])
def test_max_length_cutoff_holds(a, b):
    never_stops = FixedModel({}, default={EOS: 0.0, 5: 0.9})
    src = torch.tensor([[7, 7, 7, 3], [7, 3, PAD, PAD]])
    limits = [int(3 * a + b), int(1 * a + b)]
    for hyps, limit in zip(beam_search(never_stops, src, beam=2, max_len_a=a, max_len_b=b), limits):
        assert len(hyps[0].tokens) == max(limit, 1)
    for hyp, limit in zip(greedy(never_stops, src, max_len_a=a, max_len_b=b), limits):
        assert len(hyp.tokens) == max(limit, 1)


def random_tiny_model(seed=0):
    torch.manual_seed(seed)
    return build_model(compose("model=transformer_tiny").model, 40).eval()


def test_beam_one_equals_greedy_on_a_real_model():
    model = random_tiny_model()
    src = torch.tensor([[7, 8, 9, 10, 3], [11, 12, 3, PAD, PAD], [13, 3, PAD, PAD, PAD]])
    g = greedy(model, src, max_len_b=12)
    b = beam_search(model, src, beam=1, lenpen=0.0, max_len_b=12)
    for hg, (hb,) in zip(g, b):
        assert hg.tokens == hb.tokens
        assert hg.logprob == pytest.approx(hb.logprob, abs=1e-4)


def test_cached_and_uncached_search_agree():
    model = random_tiny_model(1)
    src = torch.tensor([[7, 8, 9, 10, 3], [11, 12, 3, PAD, PAD]])
    cached = beam_search(model, src, beam=3, max_len_b=10, use_cache=True, nbest=3)
    plain = beam_search(model, src, beam=3, max_len_b=10, use_cache=False, nbest=3)
    for hc, hp in zip(cached, plain):
        assert [h.tokens for h in hc] == [h.tokens for h in hp]
        assert [h.score for h in hc] == pytest.approx([h.score for h in hp], abs=1e-5)


def test_a_mixed_length_batch_decodes_as_each_sentence_alone():
    model = random_tiny_model(2)
    sentences = [[7, 8, 9, 10, 11, 12], [13, 14], [15, 16, 17]]
    batch = beam_search(model, model.make_source(sentences), beam=3, max_len_b=10)
    for sent, hyps in zip(sentences, batch):
        alone = beam_search(model, model.make_source([sent]), beam=3, max_len_b=10)[0]
        assert hyps[0].tokens == alone[0].tokens
        assert hyps[0].score == pytest.approx(alone[0].score, abs=1e-5)


def test_sampling_is_reproducible_and_temperature_zero_is_greedy():
    model = random_tiny_model(3)
    src = torch.tensor([[7, 8, 9, 10, 3], [11, 12, 3, PAD, PAD]])
    draw = lambda seed: [h.tokens for h in sample(model, src, 1.0,  # noqa: E731
                                                  generator=torch.Generator().manual_seed(seed), max_len_b=10)]
    assert draw(5) == draw(5)
    cold = sample(model, src, temperature=1e-4, generator=torch.Generator().manual_seed(0), max_len_b=10)
    assert [h.tokens for h in cold] == [h.tokens for h in greedy(model, src, max_len_b=10)]
    top1 = sample(model, src, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(0), max_len_b=10)
    assert [h.tokens for h in top1] == [h.tokens for h in greedy(model, src, max_len_b=10)]


def test_a_generator_per_row_makes_each_row_sample_as_it_would_alone():
    model = random_tiny_model(3)
    sentences = [[7, 8, 9, 10], [11, 12], [13, 14, 15]]
    rows = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    batched = sample(model, model.make_source(sentences), 1.0, generator=rows([5, 6, 7]), max_len_b=10)
    for sent, seed, hyp in zip(sentences, [5, 6, 7], batched):
        alone = sample(model, model.make_source([sent]), 1.0, generator=rows([seed]), max_len_b=10)[0]
        assert hyp.tokens == alone.tokens
        assert hyp.logprob == pytest.approx(alone.logprob, abs=1e-5)
    other = sample(model, model.make_source(sentences), 1.0, generator=rows([5, 99, 7]), max_len_b=10)
    assert other[0].tokens == batched[0].tokens and other[2].tokens == batched[2].tokens
def test_no_search_emits_pad_bos_or_sep():
    """A model that prefers <pad>, <s> and <sep> still never gets them into an output, whatever the search."""
    banned = {PAD, BOS, SEP}
    prefers_specials = FixedModel({}, default={PAD: 0.3, BOS: 0.25, SEP: 0.2, 5: 0.1, EOS: 0.05})
    src = torch.tensor([[7, 7, 3], [7, 3, PAD]])
    outputs = [h.tokens for h in greedy(prefers_specials, src, max_len_b=6)]
    outputs += [h.tokens for hs in beam_search(prefers_specials, src, beam=3, nbest=3, max_len_b=6) for h in hs]
    outputs += [h.tokens for h in sample(prefers_specials, src, 5.0, generator=torch.Generator().manual_seed(0),
                                         max_len_b=6)]
    assert not banned & {t for o in outputs for t in o}
    assert greedy(prefers_specials, src, max_len_b=6)[0].tokens == [5] * 8  # the best piece left, up to the cap (2 + 6)


@pytest.mark.parametrize("name", ["transformer_tiny", "gpt_tiny"])
def test_hot_sampling_on_both_model_kinds_never_emits_pad_bos_or_sep(name):
    torch.manual_seed(0)
    model = build_model(compose(f"model={name}").model, 40).eval()
    src = model.make_source([[7, 8, 9, 10], [11, 12]] * 4)
    draws = sample(model, src, 100.0, generator=torch.Generator().manual_seed(1), max_len_b=30)
    pieces = [t for h in draws for t in h.tokens]
    assert len(pieces) > 50 and not {PAD, BOS, SEP} & set(pieces)  # nearly uniform over 40: ~3/40 would be banned ones


@pytest.mark.parametrize("name", ["transformer_tiny", "gpt_tiny", "fixed"])
def test_both_model_kinds_and_the_fixed_model_keep_the_search_contract(name):
    if name == "fixed":
        model, src = lengthpen_model(), torch.tensor([[7, 3]])
    else:
        model = build_model(compose(f"model={name}").model, 40).eval()
        src = model.make_source([[7, 8, 9]])
    assert isinstance(model, SearchModel) and isinstance(model.begin(src), SearchState)
    assert not isinstance(object(), SearchModel) and not isinstance(object(), SearchState)


@pytest.mark.parametrize("fields, message", [
    ({"beam": 0}, "beam must be at least 1 (got 0)"),
    ({"beam": 2, "nbest": 3}, "nbest (3) must be between 1 and beam (2)"),
    ({"max_len_a": -1.0}, "max_len_a and max_len_b must not be negative"),
    ({"temperature": -0.5}, "temperature must be 0 (greedy) or positive (got -0.5)"),
    ({"temperature": 1.0, "nbest": 2},
     "nbest needs beam search: sampling (temperature) gives one translation per line"),
    ({"temperature": 1.0, "top_p": 0.0}, "top_k must be >= 0 and top_p in (0, 1]"),
])
def test_search_config_refuses_out_of_range_settings_in_one_line(fields, message):
    with pytest.raises(SearchConfigError) as e:
        SearchConfig(**fields)
    assert str(e.value) == message


def test_search_config_errors_name_the_command_line_flags():
    with pytest.raises(SearchConfigError) as e:
        SearchConfig(max_len_b=-1)
    assert e.value.for_cli() == "--max-len-a and --max-len-b must not be negative"


def test_search_config_runs_the_search_it_names():
    model = random_tiny_model(4)
    src = torch.tensor([[7, 8, 9, 10, 3], [11, 12, 3, PAD, PAD]])
    beam = search(model, src, SearchConfig(beam=3, nbest=2, max_len_b=10))
    assert ([[h.tokens for h in hs] for hs in beam]
            == [[h.tokens for h in hs] for hs in beam_search(model, src, beam=3, nbest=2, max_len_b=10)])
    assert [hs[0].tokens for hs in search(model, src, SearchConfig(temperature=0.0, max_len_b=10))] == \
        [h.tokens for h in greedy(model, src, max_len_b=10)]


# -------------------------------------------------------------------------------- constraints

def test_constraint_progress_unordered_ordered_and_interrupted():
    c = Constraints([[5, 6], [7]])
    state = c.advance(Progress(), 5)
    assert (state.current, state.matched, c.pieces_met(state), c.useful(state)) == (0, 1, 1, {6, 7})
    state = c.advance(state, 8)  # interrupted: [5, 6] must start again
    assert c.pieces_met(state) == 0 and c.useful(state) == {5, 7}
    state = c.advance(c.advance(c.advance(state, 7), 5), 6)
    assert c.done(state) and c.pieces_met(state) == 3 and c.useful(state) == set()
    ordered = Constraints([[5, 6], [7]], ordered=True)
    assert ordered.useful(Progress()) == {5} and ordered.advance(Progress(), 7) == Progress()


def test_a_bank_keeps_the_constrained_hypothesis_that_plain_beam_drops():
    # Step 1 offers 5 (0.5), 6 (0.4) and the constraint piece 8 (0.05); each then ends with p(<eos>) = 0.9.
    model = FixedModel({(): {5: 0.5, 6: 0.4, 8: 0.05}, (5,): {EOS: 0.9}, (6,): {EOS: 0.9}, (8,): {EOS: 0.9}})
    src = torch.tensor([[7, 3]])
    plain = beam_search(model, src, beam=2, lenpen=0.0, nbest=2)[0]
    assert [h.tokens for h in plain] == [[5], [6]]  # beam 2 keeps 5 and 6: 8 is gone after step 1
    (best,) = beam_search(model, src, beam=2, lenpen=0.0, constraints=[Constraints([[8]])])[0]
    # Bank 1 (one constraint piece met) kept 8 beside bank 0's 5; without it only 5 8 … or 6 8 … were left,
    # and those end far lower (p(8 | 5) = 0.1 / 9, then p(<eos>) = 0.1).
    assert best.tokens == [8] and best.score == pytest.approx(math.log(0.05) + math.log(0.9), abs=1e-5)


@pytest.mark.parametrize("name", ["transformer_tiny", "gpt_tiny"])
def test_constrained_search_without_constraints_is_plain_beam_search(name):
    torch.manual_seed(5)
    model = build_model(compose(f"model={name}").model, 40).eval()
    src = model.make_source([[7, 8, 9, 10, 11, 12], [13, 14], [15, 16, 17]])
    plain = beam_search(model, src, beam=3, nbest=3, max_len_b=10)
    banked = beam_search(model, src, beam=3, nbest=3, max_len_b=10, constraints=[Constraints([])] * 3)
    for p, b in zip(plain, banked):
        assert [h.tokens for h in p] == [h.tokens for h in b]
        assert [h.score for h in p] == pytest.approx([h.score for h in b], abs=1e-6)


def test_eos_waits_for_every_constraint():
    ends_at_once = FixedModel({}, default={EOS: 0.6, 5: 0.2})
    src = torch.tensor([[7, 7, 7, 3]])
    assert beam_search(ends_at_once, src, beam=3, lenpen=0.0)[0][0].tokens == []
    for ordered in (False, True):
        hyps = beam_search(ends_at_once, src, beam=3, nbest=3, lenpen=0.0,
                           constraints=[Constraints([[8, 9], [6]], ordered)])[0]
        assert len(hyps) == 3
        for h in hyps:
            assert 6 in h.tokens and any(h.tokens[k:k + 2] == [8, 9] for k in range(len(h.tokens)))
            assert not ordered or h.tokens.index(6) > h.tokens.index(8)


def test_a_whole_word_constraint_is_not_met_inside_a_longer_word():
    c = Constraints([[5, 6], [7]], whole={0}, glue=torch.tensor([9]))
    assert c.advance(c.advance(Progress(), 5), 6).closing and not c.advance(Progress(), 7).closing
    assert not c.advance(c.advance(c.advance(Progress(), 5), 6), 8).closing  # the next piece clears it
    # After 5 6 the model prefers the word-continuing piece 9 (0.8) to <eos> (0.2): "Amir" + "urs".
    model = FixedModel({(5, 6): {9: 0.8, EOS: 0.2}, (5, 6, 9): {EOS: 0.9}}, default={5: 0.6, 6: 0.3, EOS: 0.1})
    src = torch.tensor([[7, 3]])
    glued = beam_search(model, src, beam=1, lenpen=0.0, constraints=[Constraints([[5, 6]])])[0][0]
    assert glued.tokens == [5, 6, 9]
    whole = beam_search(model, src, beam=1, lenpen=0.0,
                        constraints=[Constraints([[5, 6]], whole={0}, glue=torch.tensor([9]))])[0][0]
    assert whole.tokens == [5, 6]


# -------------------------------------------------------------------------------- ensembles

def tiny(name: str, seed: int):
    torch.manual_seed(seed)
    return build_model(compose(f"model={name}").model, 40).eval()


@pytest.mark.parametrize("name", ["transformer_tiny", "gpt_tiny"])
def test_an_ensemble_of_one_is_that_model(name):
    model = tiny(name, 7)
    one = Ensemble([model])
    assert isinstance(one, SearchModel)
    src = model.make_source([[7, 8, 9, 10], [11, 12], [13, 14, 15]])
    runs = [lambda m: [[h] for h in greedy(m, src, max_len_b=10)],
            lambda m: beam_search(m, src, beam=3, nbest=2, max_len_b=10),
            lambda m: [[h] for h in sample(m, src, 1.0, generator=torch.Generator().manual_seed(3), max_len_b=10)]]
    for run in runs:
        for alone, ensembled in zip(run(model), run(one)):
            assert [h.tokens for h in alone] == [h.tokens for h in ensembled]
            assert [h.score for h in alone] == pytest.approx([h.score for h in ensembled], abs=1e-5)


def test_an_ensemble_of_both_kinds_averages_their_probabilities_every_step():
    enc_dec, dec = tiny("transformer_tiny", 8), tiny("gpt_tiny", 9)
    pair = Ensemble([enc_dec, dec])
    sources, targets = [[7, 8, 9, 10], [11, 12]], [[20, 21, 22], [23]]
    alone = [force(m, m.make_source(sources), targets) for m in (enc_dec, dec)]
    together = force(pair, pair.make_source(sources), targets)
    for a, b, both in zip(*alone, together):
        expected = [math.log((math.exp(x) + math.exp(y)) / 2) for x, y in zip(a.token_logprobs, b.token_logprobs)]
        assert both.token_logprobs == pytest.approx(expected, abs=1e-5)
    assert [h[0].tokens for h in beam_search(pair, pair.make_source(sources), beam=2, max_len_b=6)]  # it searches
