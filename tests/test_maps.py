"""seq2seq.viz.maps: attention weights read from a teacher-forced pass, and hard alignments."""

from __future__ import annotations

import pytest
import torch

from seq2seq.config import compose
from seq2seq.data.tokenizer import EOS, SEP
from seq2seq.model.build import build_model
from seq2seq.viz.maps import attention_maps, cross_attention, format_alignment, hard_alignment

SOURCES = [[10, 11, 12, 13, 14], [20, 21]]
TARGETS = [[30, 31], [40, 41, 42, 43, 44, 45]]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(compose("model=transformer_tiny").model, 100).eval()


def test_maps_have_the_pieces_shapes_and_rows_that_sum_to_one(model):
    for maps, src, tgt in zip(attention_maps(model, SOURCES, TARGETS), SOURCES, TARGETS):
        layers, heads, s, t = 2, 4, len(src) + 1, len(tgt) + 1
        assert maps.source == src + [EOS] and maps.target == tgt + [EOS]
        assert maps.encoder.shape == (layers, heads, s, s)
        assert maps.decoder.shape == (layers, heads, t, t)
        assert maps.cross.shape == (layers, heads, t, s)
        for w in (maps.encoder, maps.decoder, maps.cross):
            assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-5)
        assert maps.decoder.triu(diagonal=1).abs().max() == 0  # no query sees a later target piece


def test_a_padded_batch_gives_each_pair_its_own_maps(model):
    batched = attention_maps(model, SOURCES, TARGETS)
    for i in range(len(SOURCES)):
        alone = attention_maps(model, [SOURCES[i]], [TARGETS[i]])[0]
        for name in ("encoder", "decoder", "cross"):
            assert torch.allclose(getattr(batched[i], name), getattr(alone, name), atol=1e-5)


def test_cross_attention_selects_layers_and_heads(model):
    full = attention_maps(model, SOURCES[:1], TARGETS[:1])[0].cross
    assert torch.allclose(cross_attention(model, SOURCES[0], TARGETS[0]), full[-1].mean(0))
    assert torch.allclose(cross_attention(model, SOURCES[0], TARGETS[0], layer=0, average_heads=False), full[0])
    assert cross_attention(model, SOURCES[0], TARGETS[0], layer=None).shape == (2, 3, 6)


def test_hard_alignment_takes_the_argmax_without_eos():
    cross = torch.tensor([[0.1, 0.7, 0.2],   # target 0 -> source 1
                          [0.6, 0.1, 0.3],   # target 1 -> source 0
                          [0.1, 0.1, 0.8]])  # the <eos> row and column are left out
    assert hard_alignment(cross) == [(1, 0), (0, 1)]
    assert format_alignment(hard_alignment(cross)) == "1-0 0-1"
    assert hard_alignment(torch.ones(1, 4) / 4) == []  # an empty translation aligns nothing



@pytest.fixture(scope="module", params=[False, True], ids=["causal", "prefix_lm"])
def gpt(request):
    torch.manual_seed(0)
    return build_model(compose("model=gpt_tiny", f"model.prefix_lm={request.param}").model, 100).eval()


def test_decoder_only_maps_are_blocks_of_one_attention_matrix(gpt):
    batched = attention_maps(gpt, SOURCES, TARGETS)
    for maps, src, tgt in zip(batched, SOURCES, TARGETS):
        layers, heads, s, t = 5, 4, len(src) + 1, len(tgt) + 1
        assert maps.source == src + [SEP] and maps.target == tgt + [EOS]
        assert maps.encoder.shape == (layers, heads, s, s) and maps.decoder.shape == (layers, heads, t, t)
        assert maps.cross.shape == (layers, heads, t, s)
        # A target row's weight is spread over the source pieces and the target side (<sep> onwards) only.
        total = maps.cross[..., :-1].sum(-1) + maps.decoder.sum(-1)
        assert torch.allclose(total, torch.ones(()), atol=1e-5)
        assert maps.decoder.triu(diagonal=1).abs().max() == 0
        assert torch.allclose(maps.encoder.sum(-1), torch.ones(()), atol=1e-5)  # the source sees only itself
    for i in range(len(SOURCES)):
        alone = attention_maps(gpt, [SOURCES[i]], [TARGETS[i]])[0]
        assert torch.allclose(batched[i].cross, alone.cross, atol=1e-5)
