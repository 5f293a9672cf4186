"""The encoder–decoder of §3: shapes, masks, attention paths, parameter count, initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from seq2seq.config import compose
from seq2seq.data.tokenizer import PAD
from seq2seq.model.attention import MultiHeadAttention, causal_mask, padding_mask, record_attention, reference_attention
from seq2seq.model.build import build_model, count_parameters
from seq2seq.model.layers import sinusoidal_table


def tiny_model(**overrides):
    cfg = compose("model=transformer_tiny", *[f"model.{k}={v}" for k, v in overrides.items()]).model
    torch.manual_seed(0)
    return build_model(cfg, 50).eval()


def test_transformer_base_has_the_papers_parameter_count():
    cfg = compose("model=transformer_base").model
    assert count_parameters(build_model(cfg, 16000)) == 52_330_496


def test_untied_and_prenorm_switches_change_the_parameters_as_expected():
    base = count_parameters(tiny_model())
    untied = count_parameters(tiny_model(tie_embeddings=False))
    assert untied - base == 2 * 50 * 32  # a target embedding and an output projection of their own
    assert count_parameters(tiny_model(norm="pre")) - base == 2 * 2 * 32  # final LayerNorm per stack


def test_sinusoids_follow_section_3_5():
    table = sinusoidal_table(10, 8)
    pos, i = 3, 1
    assert table[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 8)), abs=1e-6)
    assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 8)), abs=1e-6)
    halves = sinusoidal_table(10, 8, "halves")
    assert torch.allclose(halves[:, :4], table[:, 0::2]) and torch.allclose(halves[:, 4:], table[:, 1::2])


def test_shared_embedding_is_initialised_with_std_d_model_to_the_minus_half():
    cfg = compose("model=transformer_base").model
    model = build_model(cfg, 16000)
    std = model.generator.weight.std().item()
    assert std == pytest.approx(512**-0.5, rel=0.05)
    assert model.src_embed.embedding.weight is model.generator.weight is model.tgt_embed.embedding.weight


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_path_equals_the_reference_attention(causal):
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 4, 6, 8) for _ in range(3))
    tokens = torch.tensor([[5, 5, 5, 5, 5, 5], [5, 5, 5, 5, PAD, PAD], [5, 5, 5, PAD, PAD, PAD]])
    mask = padding_mask(tokens, PAD)
    if causal:
        mask = mask & causal_mask(6)
    fast = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ref, weights = reference_attention(q, k, v, mask)
    rows = mask.expand(3, 4, 6, 6).any(-1)  # rows with at least one visible key
    assert torch.allclose(fast[rows], ref[rows], atol=1e-5)
    assert torch.allclose(weights[rows].sum(-1), torch.ones(()), atol=1e-5)


def test_module_paths_agree_and_recording_returns_weights():
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    fast = attn(x, is_causal=True)
    with record_attention(attn) as modules:
        slow = attn(x, is_causal=True)
        weights = modules[0].weights
    assert torch.allclose(fast, slow, atol=1e-5)
    assert weights.shape == (2, 4, 5, 5) and torch.all(weights.triu(1) == 0)


@pytest.mark.parametrize("record", [False, True])
def test_grouped_queries_over_shared_memory_equal_a_repeated_memory(record):
    """Beam search hands cross-attention B·g query rows over B memory rows: the same as repeating the memory."""
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4, cross=True).eval()
    group, x, memory = 3, torch.randn(2 * 3, 2, 16), torch.randn(2, 7, 16)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])[:, None, None, :]
    with record_attention(attn) if record else torch.no_grad():
        shared = attn(x, memory, mask=mask)
        shared_weights = attn.weights
        repeated = attn(x, memory.repeat_interleave(group, 0), mask=mask.repeat_interleave(group, 0))
        repeated_weights = attn.weights
    assert torch.allclose(shared, repeated, atol=1e-6)
    if record:
        assert shared_weights.shape == (6, 4, 2, 7) and torch.allclose(shared_weights, repeated_weights, atol=1e-6)


def test_no_position_attends_to_padding():
    model = tiny_model()
    src = torch.tensor([[7, 8, 9, 3], [7, 8, 3, PAD]])
    with record_attention(model) as modules:
        model(src, torch.tensor([[2, 10, 11], [2, 10, 11]]))
        for m in modules:
            if m.weights.size(-1) == 4:  # attends over the source (encoder self- and cross-attention)
                assert torch.all(m.weights[1, :, :, 3] == 0)


def test_padding_does_not_change_the_real_positions():
    model = tiny_model()
    tgt = torch.tensor([[2, 10, 11]])
    alone = model(torch.tensor([[7, 8, 3]]), tgt)
    padded = model(torch.tensor([[7, 8, 3, PAD, PAD]]), tgt)
    assert torch.allclose(alone, padded, atol=1e-5)


def test_future_target_tokens_do_not_change_earlier_outputs():
    model = tiny_model()
    src = torch.tensor([[7, 8, 9, 3]])
    a = model(src, torch.tensor([[2, 10, 11, 12]]))
    b = model(src, torch.tensor([[2, 10, 11, 40]]))
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6)
    assert not torch.allclose(a[:, 3], b[:, 3])


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_cached_decoding_equals_full_decoding(norm):
    model = tiny_model(norm=norm)
    src = torch.tensor([[7, 8, 9, 3], [7, 8, 3, PAD]])
    prefix = torch.tensor([[2, 10, 11, 12, 13], [2, 14, 15, 16, 17]])
    full = model(src, prefix)
    state = model.begin(src, use_cache=True)
    steps = [model.step(state, prefix[:, : t + 1]) for t in range(prefix.size(1))]
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)


def test_invalid_shapes_are_refused():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="max_positions"):
        tiny_model().encode(torch.full((1, 300), 5))
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model(OmegaConf.create({"kind": "rnn", "vocab_size": 10}))
