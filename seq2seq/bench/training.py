"""Training throughput: source + target (non-pad) tokens per second of forward + backward + Adam step.

Every implementation gets the same token-bucketed batches, the same loss (our label-smoothed
cross-entropy, §5.4) and the same optimizer (Adam, §5.3, as the trainer builds it), so only the model
differs. They run in turns, batch by batch, each in its own process (measure.py); the first `warmup`
batches are run but not timed.
"""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import torch
from omegaconf import OmegaConf

from seq2seq.bench.measure import Worker, in_turns
from seq2seq.bench.peers import build
from seq2seq.data.batching import TokenBucketBatcher, collate, example_length, layout_of
from seq2seq.train.loss import label_smoothed_loss


def sample_batches(pairs, layout: str, batch_tokens: int, count: int,
                   seed: int = 1) -> list[list[tuple[list[int], list[int]]]]:
    """`count` batches of epoch 0 of the trainer's token bucketing over all `pairs` (lengths mixed, as in training)."""
    lengths = np.array([example_length(s, t, layout) for s, t in pairs])
    batcher = TokenBucketBatcher(lengths, batch_tokens, seed=seed)
    return [[pairs[i] for i in b] for b in batcher.batches(0)[:count]]


class Trainer:
    """One implementation of one model config with its optimizer; `step(pairs)` trains on one batch."""

    def __init__(self, implementation: str, model_cfg: dict, vocab_size: int, threads: int, seed: int = 1):
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.cfg = OmegaConf.create(model_cfg)
        self.layout = layout_of(self.cfg.kind)
        self.model = build(implementation, self.cfg, vocab_size).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, foreach=True)

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def step(self, pairs) -> int:
        """Forward, loss, backward, Adam on one batch; returns its source + target tokens."""
        batch = collate(pairs, self.layout, bool(self.cfg.get("loss_on_source", False)))
        loss, _ = label_smoothed_loss(self.model.logits(batch), batch.tgt_out, 0.1)
        (loss / batch.tgt_tokens).backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return batch.src_tokens + batch.tgt_tokens


def throughput(implementations: list[str], model_cfg, vocab_size: int, batches, warmup: int, threads: int,
               isolate: bool = True) -> list[dict]:
    """One row per implementation: tokens/s over the batches after `warmup`, parameters, peak RSS."""
    container = OmegaConf.to_container(model_cfg, resolve=True)
    with ExitStack() as stack:
        workers = {name: stack.enter_context(Worker(Trainer, isolate, implementation=name, model_cfg=container,
                                                     vocab_size=vocab_size, threads=threads))
                   for name in implementations}
        rows = {name: {"implementation": name, "params": workers[name].call("parameters")[0], "batches": 0,
                       "tokens": 0, "seconds": 0.0, "peak_rss_mib": 0.0} for name in implementations}
        for i, pairs in enumerate(batches):
            for name in in_turns(implementations, i):
                tokens, seconds, rss = workers[name].call("step", pairs)
                row = rows[name]
                row["peak_rss_mib"] = max(row["peak_rss_mib"], rss)
                if i >= warmup:
                    row["batches"] += 1
                    row["tokens"] += tokens
                    row["seconds"] += seconds
    for row in rows.values():
        row["tokens_per_s"] = row["tokens"] / max(row["seconds"], 1e-9)
    return list(rows.values())
