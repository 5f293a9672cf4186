"""Token-based batches of pairs of similar length (§5.1), for both model kinds.

One bucketing logic serves two layouts of a pair (source ids s, target ids t):
  * `pair`   (encoder–decoder): src = s <eos>,  decoder input = <bos> t,  labels = t <eos>
  * `concat` (decoder-only):    input = s <sep> t,  labels = (s <sep> t <eos>) shifted by one; the labels
    of source positions are PAD (no loss) unless `loss_on_source`.
A batch holds at most `batch_tokens` tokens counting padding (rows × longest row).

A batch also carries what the FLOP counter and the loss normalisation need: the tokens the model reads,
the labels that carry a loss, and the products of the lengths that attention squares.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from seq2seq.data.tokenizer import BOS, EOS, PAD, SEP

LAYOUTS = ("pair", "concat")


@dataclass
class Batch:
    """Tensors of one batch. `src` is None for the decoder-only layout."""

    src: torch.Tensor | None  # (B, S)
    tgt_in: torch.Tensor  # (B, T): decoder input (pair) or the whole sequence (concat)
    tgt_out: torch.Tensor  # (B, T): next-token labels, PAD = no loss
    prefix_len: torch.Tensor | None  # (B,): len(s <sep>) for the concat layout
    src_tokens: int  # non-pad source tokens (concat: s <sep>)
    tgt_tokens: int  # non-pad target tokens (t <eos>: the target labels, eos included)
    padded_tokens: int  # rows × columns over all tensors fed to the model
    length_products: tuple[int, int, int]  # (Σ src², Σ tgt², Σ src·tgt) or (Σ len², 0, 0): attention FLOPs
    input_tokens: int  # non-pad tokens the model reads (pair: s <eos> + <bos> t; concat: s <sep> t)
    label_tokens: int  # labels that carry a loss (tgt_tokens, plus the source's with loss_on_source)
    label_index: torch.Tensor | None = None  # concat: flat (row · T + column) positions of those labels

    @property
    def labels(self) -> torch.Tensor:
        """The labels that carry a loss: (B, T) for `pair`; flat (label_tokens,) for `concat`, in the order
        of `label_index`, matching the decoder-only model's `labelled_logits`."""
        return self.tgt_out if self.label_index is None else self.tgt_out.flatten()[self.label_index]

    def _apply(self, fn) -> "Batch":
        names = ("src", "tgt_in", "tgt_out", "prefix_len", "label_index")
        return replace(self, **{k: None if getattr(self, k) is None else fn(getattr(self, k)) for k in names})

    def to(self, device) -> "Batch":
        return self._apply(lambda t: t.to(device, non_blocking=True))

    def pin_memory(self) -> "Batch":
        return self._apply(torch.Tensor.pin_memory)


def _pad(rows: list[list[int]], value: int = PAD) -> torch.Tensor:
    out = np.full((len(rows), max(len(r) for r in rows)), value, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return torch.from_numpy(out)


def layout_of(kind: str) -> str:
    """The batch layout a model kind trains on: `pair` (encoder–decoder) or `concat` (decoder-only)."""
    return "pair" if kind == "transformer" else "concat"


def example_length(src: list[int], tgt: list[int], layout: str) -> int:
    """Columns a pair occupies in its batch: what bucketing sorts by and budgets."""
    if layout == "pair":
        return max(len(src), len(tgt)) + 1
    return len(src) + len(tgt) + 1


def collate(pairs: list[tuple[list[int], list[int]]], layout: str, loss_on_source: bool = False) -> Batch:
    """Lay out a list of (source ids, target ids) pairs as padded tensors."""
    if layout == "pair":
        src = [s + [EOS] for s, _ in pairs]
        tgt_in = [[BOS] + t for _, t in pairs]
        tgt_out = [t + [EOS] for _, t in pairs]
        src_t, in_t, out_t = _pad(src), _pad(tgt_in), _pad(tgt_out)
        products = (sum(len(s) ** 2 for s in src), sum(len(t) ** 2 for t in tgt_in),
                    sum(len(s) * len(t) for s, t in zip(src, tgt_in)))
        src_tokens, tgt_tokens = sum(map(len, src)), sum(map(len, tgt_out))
        return Batch(src_t, in_t, out_t, None, src_tokens=src_tokens, tgt_tokens=tgt_tokens,
                     padded_tokens=src_t.numel() + in_t.numel(), length_products=products,
                     input_tokens=src_tokens + tgt_tokens, label_tokens=tgt_tokens)
    if layout != "concat":
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    seqs = [s + [SEP] + t + [EOS] for s, t in pairs]
    labels = []
    for (s, _), seq in zip(pairs, seqs):
        lab = seq[1:]
        if not loss_on_source:  # the first len(s) labels predict source tokens and <sep>
            lab = [PAD] * len(s) + lab[len(s):]
        labels.append(lab)
    in_t, out_t = _pad([q[:-1] for q in seqs]), _pad(labels)
    label_index = (out_t != PAD).flatten().nonzero().squeeze(1)  # on the host, while batching
    lengths = [len(q) - 1 for q in seqs]
    return Batch(None, in_t, out_t, torch.tensor([len(s) + 1 for s, _ in pairs]),
                 src_tokens=sum(len(s) + 1 for s, _ in pairs), tgt_tokens=sum(len(t) + 1 for _, t in pairs),
                 padded_tokens=in_t.numel(), length_products=(sum(n * n for n in lengths), 0, 0),
                 input_tokens=sum(lengths), label_tokens=len(label_index), label_index=label_index)


class TokenBucketBatcher:
    """Deterministic token-bucketed batches: sort by length (random tie-break), cut, shuffle the batches.

    Epoch `e` always yields the same batches for the same seed, so a position (epoch, index) is enough
    to resume mid-epoch.
    """

    def __init__(self, lengths: list[int] | np.ndarray, batch_tokens: int, seed: int = 1, shuffle: bool = True):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if len(self.lengths) and self.lengths.max() > batch_tokens:
            raise ValueError(f"batch_tokens={batch_tokens} is smaller than the longest example ({self.lengths.max()})")
        self.batch_tokens = batch_tokens
        self.seed = seed
        self.shuffle = shuffle

    def batches(self, epoch: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        jitter = rng.random(len(self.lengths)) if self.shuffle else np.zeros(len(self.lengths))
        order = np.lexsort((jitter, self.lengths))
        batches, start, longest = [], 0, 0
        for i, idx in enumerate(order):
            longest_if_added = max(longest, self.lengths[idx])
            if longest_if_added * (i - start + 1) > self.batch_tokens:
                batches.append(order[start:i])
                start, longest_if_added = i, self.lengths[idx]
            longest = longest_if_added
        if start < len(order):
            batches.append(order[start:])
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def padding_ratio(self, epoch: int = 0) -> float:
        """Share of the batch tensors that is padding, by the bucketing lengths."""
        real = padded = 0
        for b in self.batches(epoch):
            lens = self.lengths[b]
            real += int(lens.sum())
            padded += int(lens.max()) * len(lens)
        return 1.0 - real / max(padded, 1)
