"""Loss (§5.4), schedule (§5.3), checkpoints (§6.1) and batching (§5.1) in isolation."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from functools import partial

import pytest
import torch
from omegaconf import OmegaConf

from seq2seq.config import compose
from seq2seq.data.batching import TokenBucketBatcher, collate, example_length
from seq2seq.data.sets import encode_pairs
from seq2seq.data.tokenizer import BOS, EOS, PAD, SEP
from seq2seq.train import checkpoint
from seq2seq.train.loss import label_smoothed_loss
from seq2seq.train.schedule import noam_lr, noam_scale
from seq2seq.train.trainer import Progress, TrainData, dropout_pairs, seconds_left
from tests.conftest import toy_pairs


def test_label_smoothed_loss_equals_a_hand_computation():
    logits = torch.tensor([[[2.0, 0.0, 1.0, -1.0], [0.5, 0.5, 0.0, 3.0]]])
    labels = torch.tensor([[2, PAD]])  # the second position is padding: no loss
    eps, V = 0.1, 4
    logp = torch.log_softmax(logits[0, 0], -1)
    expected = -((1 - eps) * logp[2] + eps / V * logp.sum())
    loss, nll = label_smoothed_loss(logits, labels, eps)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert nll.item() == pytest.approx(-logp[2].item(), abs=1e-6)


def test_schedule_gives_the_papers_values():
    d, warmup = 512, 4000
    assert noam_lr(1, d, warmup) == pytest.approx(512**-0.5 * 4000**-1.5)
    assert noam_lr(4000, d, warmup) == pytest.approx(512**-0.5 * 4000**-0.5)  # the peak, ~7.0e-4
    assert noam_lr(16384, d, warmup) == pytest.approx(512**-0.5 / 128)  # 16384^-0.5 = 1/128
    assert max(noam_lr(s, d, warmup) for s in range(1, 10000)) == noam_lr(4000, d, warmup)
    scale = noam_scale(256, 400, peak_lr=1e-3)
    assert noam_lr(400, 256, 400, scale) == pytest.approx(1e-3)


def test_checkpoints_are_atomic_and_averaging_gives_the_mean(tmp_path):
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(3)}
    checkpoint.save({"model": a}, checkpoint.step_path(tmp_path, 1))
    checkpoint.save({"model": b}, checkpoint.step_path(tmp_path, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000001.pt", "step_00000002.pt"]
    assert not list(tmp_path.glob("*.tmp"))
    avg = checkpoint.average(checkpoint.list_steps(tmp_path))
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and avg["n"].item() == 3


def test_a_truncated_checkpoint_is_named_and_the_previous_one_used(tmp_path):
    checkpoint.save({"model": {"w": torch.ones(3)}}, checkpoint.step_path(tmp_path, 1))
    checkpoint.save({"model": {"w": torch.zeros(300)}}, checkpoint.step_path(tmp_path, 2))
    newest = checkpoint.step_path(tmp_path, 2)
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.raises(checkpoint.CheckpointError, match="step_00000002.pt"):
        checkpoint.load(newest)
    warnings = []
    state = checkpoint.latest_loadable(tmp_path, warn=warnings.append)
    assert torch.equal(state["model"]["w"], torch.ones(3)) and "step_00000002" in warnings[0]


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(tmp_path / 'pwned')!r}, 'w').write('pwned')",))

    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": Evil()}, path)
    with pytest.raises(checkpoint.CheckpointError, match="evil.pt"):
        checkpoint.load(path)
    assert not (tmp_path / "pwned").exists()


def test_prune_keeps_the_last_n(tmp_path):
    for step in range(1, 6):
        checkpoint.save({"model": {}}, checkpoint.step_path(tmp_path, step))
    checkpoint.prune(tmp_path, 2)
    assert [p.name for p in checkpoint.list_steps(tmp_path)] == ["step_00000004.pt", "step_00000005.pt"]


def test_pair_and_concat_layouts():
    pairs = [([10, 11, 12], [20, 21]), ([13], [22, 23, 24])]
    b = collate(pairs, "pair")
    assert b.src.tolist() == [[10, 11, 12, EOS], [13, EOS, PAD, PAD]]
    assert b.tgt_in.tolist() == [[BOS, 20, 21, PAD], [BOS, 22, 23, 24]]
    assert b.tgt_out.tolist() == [[20, 21, EOS, PAD], [22, 23, 24, EOS]]
    assert (b.src_tokens, b.tgt_tokens) == (6, 7)
    c = collate(pairs, "concat")
    assert c.tgt_in.tolist() == [[10, 11, 12, SEP, 20, 21], [13, SEP, 22, 23, 24, PAD]]
    assert c.tgt_out.tolist() == [[PAD, PAD, PAD, 20, 21, EOS], [PAD, 22, 23, 24, EOS, PAD]]
    assert c.prefix_len.tolist() == [4, 2]
    assert collate(pairs, "concat", loss_on_source=True).tgt_out[0].tolist() == [11, 12, SEP, 20, 21, EOS]


def test_bucketing_respects_the_budget_covers_every_example_and_is_deterministic():
    rng = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 60, (2000,), generator=rng).tolist()
    batcher = TokenBucketBatcher(lengths, batch_tokens=500, seed=3)
    batches = batcher.batches(epoch=0)
    assert sorted(i for b in batches for i in b.tolist()) == list(range(2000))
    assert all(max(lengths[i] for i in b) * len(b) <= 500 for b in batches)
    assert [b.tolist() for b in batches] == [b.tolist() for b in TokenBucketBatcher(lengths, 500, seed=3).batches(0)]
    assert [b.tolist() for b in batches] != [b.tolist() for b in batcher.batches(1)]
    assert batcher.padding_ratio() < 0.05  # similar lengths together
    assert example_length([1, 2], [3], "pair") == 3 and example_length([1, 2], [3], "concat") == 4
    with pytest.raises(ValueError, match="batch_tokens"):
        TokenBucketBatcher([600], 500)


def test_label_smoothed_loss_matches_torch_cross_entropy():
    torch.manual_seed(0)
    logits, labels = torch.randn(3, 5, 11), torch.randint(0, 11, (3, 5))
    loss, _ = label_smoothed_loss(logits, labels, 0.1)
    expected = torch.nn.functional.cross_entropy(logits.view(-1, 11), labels.view(-1), ignore_index=PAD,
                                                 label_smoothing=0.1, reduction="sum")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_eta_follows_the_budget_that_binds_first():
    tcfg = OmegaConf.create({"max_steps": 1000, "max_tokens": None, "max_flops": None})
    progress = Progress(step=100, seconds=50.0, tokens=400_000, flops=1e12)
    assert seconds_left(tcfg, Progress(), math.inf) is None  # nothing measured yet
    assert seconds_left(tcfg, progress, math.inf) == (450.0, "max_steps")  # 900 steps at 0.5 s
    assert seconds_left(tcfg, progress, 120.0) == (70.0, "max_minutes")  # a wall-clock cap binds sooner
    tcfg.max_tokens = 600_000  # 200k tokens at 8,000 tokens/s
    assert seconds_left(tcfg, progress, math.inf) == (25.0, "max_tokens")
    tcfg.max_flops = 1.1e12
    assert seconds_left(tcfg, progress, math.inf) == pytest.approx((5.0, "max_flops"))
    assert seconds_left(tcfg, Progress(step=2000, seconds=10.0), math.inf)[0] == 0.0

    cpu_small = compose().trainer  # make train: a step budget, no wall clock
    assert cpu_small.max_steps == 2778 and cpu_small.max_minutes is None


def test_bpe_dropout_segments_each_epoch_anew_the_same_way_every_time(toy_tokenizer):
    src, tgt = map(list, zip(*toy_pairs(200, seed=3)))
    cfg = compose("experiment=tiny", "trainer.bpe_dropout=0.3")
    plain = encode_pairs(toy_tokenizer, src, tgt, cfg.trainer.max_len)
    batcher = TokenBucketBatcher([len(s) + len(t) for s, t in plain], 512, seed=1)
    data = TrainData(plain, batcher, "pair", False, partial(dropout_pairs, toy_tokenizer, src, tgt, cfg))
    (first, batches), (again, batches_again), (second, _) = data.epoch(0), data.epoch(0), data.epoch(1)
    assert first == again and all((a == b).all() for a, b in zip(batches, batches_again))
    assert first != second and first != plain
    assert toy_tokenizer.decode([s for s, _ in first]) == toy_tokenizer.decode([s for s, _ in plain]) == src
    assert sorted(i for b in batches for i in b) == list(range(len(first)))  # every pair once an epoch
    assert TrainData(plain, batcher, "pair", False).epoch(3)[0] is plain  # off: the same pairs every epoch


# A few optimizer steps of transformer_small (tensors large enough that ATen splits its reductions across
# threads) in a fresh process: the sha256 of the weights it reaches.
_STEPS = """
import hashlib, sys, torch
torch.set_num_threads(int(sys.argv[1]))
from seq2seq.config import compose
from seq2seq.data.batching import collate, layout_of
from seq2seq.model.build import build_model
from seq2seq.train.loss import label_smoothed_loss
torch.manual_seed(0)
cfg = compose("model=transformer_small", "model.dropout=0.0").model
model = build_model(cfg, 2000)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
g = torch.Generator().manual_seed(1)
for _ in range(2):
    ids = [(torch.randint(5, 2000, (20,), generator=g).tolist(), torch.randint(5, 2000, (20,), generator=g).tolist())
           for _ in range(32)]
    batch = collate(ids, layout_of(cfg.kind))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = label_smoothed_loss(model.logits(batch), batch.tgt_out, 0.1)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(hashlib.sha256(b"".join(p.detach().float().numpy().tobytes() for p in model.parameters())).hexdigest())
"""


def _weights_after_steps(threads: int, cores: set[int] | None = None) -> str:
    done = subprocess.run([sys.executable, "-c", _STEPS, str(threads)], capture_output=True, text=True, check=True,
                          timeout=120, preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
    return done.stdout.strip()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_training_numerics_follow_the_thread_count_not_the_cores():
    """Why cpu_small pins trainer.threads: the weights depend on how many threads split the sums, not on how
    many cores run them, so one thread count gives one model on any machine."""
    two_threads = _weights_after_steps(2)
    assert _weights_after_steps(2, cores={min(os.sched_getaffinity(0))}) == two_threads  # one core, two threads
    assert _weights_after_steps(1) != two_threads  # another thread count sums in another order
    assert compose("experiment=cpu_small").trainer.threads == 2
