"""The decoder-only twin: what each position may see, where the loss falls, parameter parity with the
encoder–decoder, and decoding through the shared search (left padding, cache, beam)."""

from __future__ import annotations

import pytest
import torch

from seq2seq.config import compose
from seq2seq.data.batching import collate
from seq2seq.data.tokenizer import EOS, PAD, SEP
from seq2seq.decode.search import beam_search, greedy, max_lengths, sample
from seq2seq.model.build import build_model, count_parameters
from seq2seq.model.directory import load_model_dir, save_model_dir
from seq2seq.model.gpt import DecoderOnly
from seq2seq.train.loss import label_smoothed_loss
from seq2seq.translator import Translator
from tests.conftest import memorisation_bleu

V = 40


def gpt(seed=0, **overrides) -> DecoderOnly:
    cfg = compose("model=gpt_tiny", *[f"model.{k}={v}" for k, v in overrides.items()]).model
    torch.manual_seed(seed)
    return build_model(cfg, V).eval()


@pytest.mark.parametrize("size", ["tiny", "small", "base"])
def test_twins_have_the_same_vocabulary_width_and_parameters_within_5_percent(size):
    enc_dec = compose(f"model=transformer_{size}").model
    dec = compose(f"model=gpt_{size}").model
    assert ((dec.vocab_size, dec.d_model, dec.d_ff, dec.heads)
            == (enc_dec.vocab_size, enc_dec.d_model, enc_dec.d_ff, enc_dec.heads))
    a = count_parameters(build_model(enc_dec))
    b = count_parameters(build_model(dec))
    assert abs(a - b) / a < 0.05


def test_embeddings_are_tied_and_the_block_is_the_encoder_layer():
    model = gpt()
    assert model.generator.weight is model.embed.embedding.weight
    assert type(model.decoder.layers[0]).__name__ == "EncoderLayer" and len(model.decoder.layers) == 5


def changed_positions(model, tokens, j, prefix_len=None):
    """Positions whose logits change when token j is replaced."""
    other = tokens.clone()
    other[0, j] = 5 if tokens[0, j] != 5 else 6
    a, b = model(tokens, prefix_len), model(other, prefix_len)
    return [i for i in range(tokens.size(1)) if not torch.allclose(a[0, i], b[0, i], atol=1e-6)]


SEQ = torch.tensor([[7, 8, 9, 10, SEP, 11, 12, 13, 14]])  # source of 4, <sep>, target of 4
PREFIX = torch.tensor([5])


def test_causal_model_cannot_see_the_future():
    model = gpt()
    for j in range(SEQ.size(1)):
        assert changed_positions(model, SEQ, j) == list(range(j, SEQ.size(1)))


def test_prefix_lm_source_positions_see_each_other_and_targets_still_not_the_future():
    model = gpt(prefix_lm=True)
    for j in range(5):  # a source token (or <sep>) is seen by every position
        assert changed_positions(model, SEQ, j, PREFIX) == list(range(SEQ.size(1)))
    for j in range(5, SEQ.size(1)):  # a target token only from its own position on
        assert changed_positions(model, SEQ, j, PREFIX) == list(range(j, SEQ.size(1)))


def test_prefix_lm_with_loss_on_source_is_refused():
    with pytest.raises(ValueError, match="loss_on_source"):
        gpt(prefix_lm=True, loss_on_source=True)


@pytest.mark.parametrize("loss_on_source", [False, True])
def test_source_positions_carry_loss_only_when_asked(loss_on_source):
    model = gpt(loss_on_source=loss_on_source)
    pairs = [([7, 8, 9], [11, 12]), ([10], [13, 14, 15])]
    batch = collate(pairs, "concat", model.cfg.loss_on_source)
    logits = model.logits(batch)
    _, nll = label_smoothed_loss(logits, batch.tgt_out, 0.0)
    logprobs = logits.log_softmax(-1)
    expected = 0.0
    for row, (s, t) in enumerate(pairs):
        seq = s + [SEP] + t + [3]
        first = 0 if loss_on_source else len(s)  # position len(s) is <sep>, predicting the first target piece
        expected -= sum(logprobs[row, i, seq[i + 1]].item() for i in range(first, len(seq) - 1))
    assert nll.item() == pytest.approx(expected, rel=1e-5)
    assert (batch.tgt_out[0, :3] == PAD).all() != loss_on_source


@pytest.mark.parametrize("prefix_lm", [False, True])
def test_decoding_steps_compute_what_teacher_forcing_computes(prefix_lm):
    model = gpt(1, prefix_lm=prefix_lm)
    src, tgt = [7, 8, 9, 10], [11, 12, 13]
    full = model(torch.tensor([src + [SEP] + tgt]), torch.tensor([len(src) + 1]))[0]
    for use_cache in (True, False):
        state = model.begin(model.make_source([src]), use_cache)
        for k in range(len(tgt) + 1):
            step = model.step(state, torch.tensor([[SEP] + tgt[:k]]))[0]
            assert torch.allclose(step, full[len(src) + k], atol=1e-5), (use_cache, k)


SENTENCES = [[7, 8, 9, 10, 11, 12], [13, 14], [15, 16, 17], [18]]


@pytest.mark.parametrize("prefix_lm", [False, True])
def test_a_left_padded_batch_decodes_as_each_sentence_alone_and_cache_changes_nothing(prefix_lm):
    model = gpt(2, prefix_lm=prefix_lm)
    src = model.make_source(SENTENCES)
    assert src[1].tolist() == [PAD] * 4 + [13, 14] and model.source_lengths(src).tolist() == [6, 2, 3, 1]
    for search in (lambda s, c: [h[0] for h in beam_search(model, s, beam=3, max_len_b=8, use_cache=c)],
                   lambda s, c: greedy(model, s, max_len_b=8, use_cache=c)):
        batch = search(src, True)
        assert len({tuple(h.tokens) for h in batch}) > 1  # the sentences do get different outputs
        assert [h.tokens for h in search(src, False)] == [h.tokens for h in batch]
        for sent, hyp in zip(SENTENCES, batch):
            (alone,) = search(model.make_source([sent]), True)
            assert hyp.tokens == alone.tokens
            assert hyp.token_logprobs == pytest.approx(alone.token_logprobs, abs=1e-5)


def test_beam_one_equals_greedy_and_sampling_is_reproducible():
    model = gpt(3)
    src = model.make_source(SENTENCES)
    g = greedy(model, src, max_len_b=8)
    b = beam_search(model, src, beam=1, lenpen=0.0, max_len_b=8)
    assert [h.tokens for h in g] == [h[0].tokens for h in b]
    assert [h.logprob for h in g] == pytest.approx([h[0].logprob for h in b], abs=1e-4)
    draw = lambda: [h.tokens for h in sample(model, src, 1.0,  # noqa: E731
                                             generator=torch.Generator().manual_seed(4), max_len_b=8)]
    assert draw() == draw()


def test_too_long_inputs_name_max_positions_and_outputs_stop_where_positions_end():
    model = gpt()
    with pytest.raises(ValueError, match="max_positions"):
        model(torch.full((1, 600), 7))
    assert model.max_source_pieces() == 255
    src = model.make_source([[7] * 255, [8] * 3])
    assert max_lengths(model, src, 1.0, 50).tolist() == [512 - 1 - 255, 53]
    table = model.generator.weight.data
    table[EOS] = -table[7]  # <eos> becomes unlikely: the long output runs into the cap instead of a crash
    hyps = greedy(model, src, max_len_b=50)
    assert len(hyps[0].tokens) == 256


def test_model_directory_round_trip_and_translator(tmp_path, toy_tokenizer):
    cfg = compose("model=gpt_tiny").model
    torch.manual_seed(0)
    model = build_model(cfg, len(toy_tokenizer))
    save_model_dir(tmp_path / "model", model.state_dict(), cfg, len(toy_tokenizer), toy_tokenizer.path)
    loaded, _, loaded_cfg = load_model_dir(tmp_path / "model")
    assert isinstance(loaded, DecoderOnly) and loaded_cfg.layers == 5
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    out = Translator.load(tmp_path / "model", device="cpu").translate(["The cat sleeps.", "", "A big red ball."],
                                                                       beam=2, max_len_b=5)
    assert len(out) == 3 and out[1] == ""


@pytest.mark.slow
def test_tiny_decoder_only_model_memorises_32_pairs(toy_tokenizer):
    """Teacher forcing on `s <sep> t` with the loss on t, then left-padded beam search, learn translation."""
    decode = lambda model, src: [h[0].tokens for h in beam_search(model, src, beam=2, max_len_b=30)]  # noqa: E731
    assert memorisation_bleu("gpt_tiny", toy_tokenizer, decode) > 90


class RarelyEnds:
    """A model whose <eos> logit is lowered by 30: every row runs into its own length cap."""

    def __init__(self, model):
        self.model = model

    def __getattr__(self, name):
        return getattr(self.model, name)

    def step(self, state, prefix):
        logits = self.model.step(state, prefix)
        logits[:, EOS] -= 30.0
        return logits


def test_two_near_limit_sources_in_one_batch_run_to_their_own_caps():
    """Each row's cap is 511 - its own length; the padded width must not shorten or crash the other rows."""
    model = RarelyEnds(gpt())
    src = model.make_source([[7] * 250, [8] * 236])
    caps = [512 - 1 - 250, 512 - 1 - 236]
    big_b = 400  # a·|s| + b above every cap: the positions are what stops each row
    assert max_lengths(model, src, 1.0, big_b).tolist() == caps
    runs = {"greedy": [h.tokens for h in greedy(model, src, max_len_b=big_b)],
            "beam": [h[0].tokens for h in beam_search(model, src, beam=2, max_len_b=big_b)],
            "sample": [h.tokens for h in sample(model, src, 1.0, generator=torch.Generator().manual_seed(0),
                                                max_len_b=big_b)]}
    for name, outputs in runs.items():
        assert [len(t) for t in outputs] == caps, name
