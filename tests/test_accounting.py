"""What training counts: FLOPs (seq2seq/train/flops.py) against PyTorch's own count of a real step, the
tokens a model reads, and the labels a loss is normalised by.

`torch.utils.flop_counter.FlopCounterMode` counts every matrix product of a forward and backward pass.
It has no formula for the fused CPU attention kernel, so attention runs on the math path here; that path
computes full squares, and flops.py counts causal masks as full squares too.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from seq2seq.config import compose
from seq2seq.data.batching import collate, layout_of
from seq2seq.model.build import build_model
from seq2seq.train.flops import FlopCounter
from seq2seq.train.loss import label_smoothed_loss

V = 96


def measured_flops(model, batch) -> int:
    """FLOPs of one real training forward + backward, as PyTorch counts them."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        logits, labels = model.labelled_logits(batch)
        loss, _ = label_smoothed_loss(logits, labels, 0.1)
        loss.backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("model_name,overrides", [
    ("transformer_tiny", []),
    ("gpt_tiny", []),
    ("gpt_tiny", ["model.prefix_lm=true"]),
])
def test_counted_flops_agree_with_torch_flop_counter(model_name, overrides):
    cfg = compose(f"model={model_name}", "model.dropout=0.0", *overrides).model
    torch.manual_seed(0)
    model = build_model(cfg, V).train()
    # Unpadded: every row has the same source and target lengths, so padding costs nothing extra.
    pairs = [(list(range(10, 10 + 11)), list(range(40, 40 + 7))) for _ in range(3)]
    batch = collate(pairs, layout_of(cfg.kind))
    counted, measured = FlopCounter(model)(batch), measured_flops(model, batch)
    assert counted == pytest.approx(measured, rel=0.03)


def test_decoder_only_tokens_are_what_the_model_sees():
    s, t = [5, 6, 7], [8, 9]
    batch = collate([(s, t)], "concat")
    assert batch.input_tokens == len(s) + len(t) + 1  # s <sep> t: <eos> is only a label
    assert batch.label_tokens == len(t) + 1
    assert batch.length_products[0] == (len(s) + len(t) + 1) ** 2


def test_decoder_only_projects_only_labelled_positions():
    cfg = compose("model=gpt_tiny", "model.dropout=0.0").model
    torch.manual_seed(0)
    model = build_model(cfg, V).eval()
    pairs = [([11, 12, 13, 14], [20, 21]), ([15], [22, 23, 24])]
    batch = collate(pairs, "concat")
    logits, labels = model.labelled_logits(batch)
    assert logits.shape == (batch.label_tokens, V) and labels.shape == (batch.label_tokens,)
    full = model.logits(batch)
    keep = batch.tgt_out != 0
    torch.testing.assert_close(logits, full[keep])
    torch.testing.assert_close(labels, batch.tgt_out[keep])


@pytest.mark.parametrize("loss_on_source", [False, True])
def test_the_loss_is_normalised_by_the_labels_it_sums(loss_on_source):
    pairs = [([5, 6, 7], [8, 9]), ([10], [11, 12, 13])]
    batch = collate(pairs, "concat", loss_on_source)
    assert batch.label_tokens == int((batch.tgt_out != 0).sum()) == len(batch.labels)
    sources = sum(len(s) for s, _ in pairs)  # s[1:] <sep>: the labels the source positions add
    assert batch.label_tokens == batch.tgt_tokens + (sources if loss_on_source else 0)
