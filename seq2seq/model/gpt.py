"""The decoder-only twin: translation as continuation of `source <sep> target <eos>`.

One stack of the §3.1 encoder layer (self-attention + feed-forward, no cross-attention) under a causal
mask (§3.2.3) is the GPT block; embeddings, positions, attention with its cache and initialisation are
the encoder–decoder's own modules. Input and output embeddings are one matrix (§3.4).

`prefix_lm` makes attention bidirectional over `source <sep>` and keeps it causal over the target: the
middle ground between the two designs (Raffel et al. 2020, §3.2). Training labels come from
`batching.collate(..., "concat", loss_on_source)`: the loss covers target tokens only unless
`loss_on_source`.

Decoding drives the same interface as the encoder–decoder (`decoder_start_id`, `make_source`, `begin`,
`step`): the source is left-padded so that every row's next position is the last column, and each row's
positions start at its first real token, so a padded batch computes what each sentence computes alone.
"""

from __future__ import annotations

import torch
from torch import nn

from seq2seq.data.tokenizer import EOS, PAD, SEP
from seq2seq.model.layers import Embeddings, EncoderLayer, Stack, init_weights
from seq2seq.model.transformer import check_length
from seq2seq.schema import GptConfig


def visibility(length: int, prefix_len: torch.Tensor | None = None, real: torch.Tensor | None = None,
               device=None) -> torch.Tensor:
    """Boolean mask (B or 1, 1, T, T), True = may attend: causal (key ≤ query); with `prefix_len` (B,) every
    key in a row's prefix too; with `real` (B, T) padding keys hidden, each position still seeing itself so
    that no row is empty (left-padding rows would otherwise give NaN on the reference path)."""
    idx = torch.arange(length, device=device)
    mask = (idx[None, :] <= idx[:, None])[None]  # (1, T, T)
    if prefix_len is not None:
        mask = mask | (idx[None, None, :] < prefix_len[:, None, None])
    if real is not None:
        mask = (mask & real[:, None, :]) | torch.eye(length, dtype=torch.bool, device=device)
    return mask[:, None]


class DecoderOnlyState:
    """What incremental decoding carries: the left-padded source, which of its columns are real, and, when
    caching, the per-layer keys/values (filled by the first step). `reorder` follows beam search."""

    def __init__(self, src: torch.Tensor, use_cache: bool, n_layers: int):
        self.src, self.real = src, src != PAD
        self.caches = [{} for _ in range(n_layers)] if use_cache else None

    def reorder(self, index: torch.Tensor) -> None:
        self.src, self.real = self.src[index], self.real[index]
        if self.caches is not None:
            for cache in self.caches:
                for key in cache:
                    cache[key] = cache[key][index]

    select = reorder  # the cache holds the source's keys too, so any change of rows moves all of it

    def expand(self, k: int) -> None:
        """Every row becomes k consecutive rows (copies: each hypothesis continues its own sequence)."""
        self.reorder(torch.arange(self.src.size(0), device=self.src.device).repeat_interleave(k))


class DecoderOnly(nn.Module):
    """A language model over `s <sep> t`: `model.layers` encoder layers, causal (or prefix-LM) attention."""

    kind = "gpt"
    decoder_start_id = SEP  # the prefix handed to step() starts with <sep>, right after the source

    def __init__(self, cfg: GptConfig, vocab_size: int):
        """`cfg` is checked (GptConfig refuses prefix_lm with loss_on_source); build_model makes one."""
        super().__init__()
        self.cfg = cfg
        self.prefix_lm = cfg.prefix_lm
        d = cfg.d_model
        table = nn.Embedding(vocab_size, d, padding_idx=PAD)
        self.embed = Embeddings(table, cfg.max_positions, cfg.dropout, cfg.positional)
        self.decoder = Stack(EncoderLayer, cfg.layers, cfg)
        self.generator = nn.Linear(d, vocab_size, bias=False)  # pre-softmax projection
        init_weights(self, d)
        if cfg.tie_embeddings:
            self.generator.weight = table.weight

    def run(self, tokens, positions, mask=None, is_causal=False, caches: list | None = None) -> torch.Tensor:
        """Logits (B, T, V) for `tokens` at `positions` ((T,) or (B, T)) under the given attention mask."""
        return self.generator(self.hidden(tokens, positions, mask, is_causal, caches))

    def hidden(self, tokens, positions, mask=None, is_causal=False, caches: list | None = None) -> torch.Tensor:
        """The last layer's output (B, T, d): what the pre-softmax projection reads."""
        return self.decoder(self.embed(tokens, positions), mask=mask, is_causal=is_causal, caches=caches)

    def teacher_forced(self, tokens: torch.Tensor, prefix_len: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states (B, T, d) for right-padded `s <sep> t` (B, T). Right padding only follows real
        tokens, so the causal mask alone keeps it out of sight; `prefix_len` (B,) = len(s) + 1 opens the
        prefix when prefix-LM attention is on."""
        check_length(tokens.size(1), self.embed)  # from shapes: no host sync in the training step
        positions = torch.arange(tokens.size(1), device=tokens.device)
        if self.prefix_lm:
            mask = visibility(tokens.size(1), prefix_len, device=tokens.device)
            return self.hidden(tokens, positions, mask)
        return self.hidden(tokens, positions, is_causal=True)

    def forward(self, tokens: torch.Tensor, prefix_len: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V) for every position, source positions included."""
        return self.generator(self.teacher_forced(tokens, prefix_len))

    def logits(self, batch) -> torch.Tensor:
        """Teacher-forced logits (B, T, V) for a collated `concat` batch."""
        return self(batch.tgt_in, batch.prefix_len)

    def labelled_logits(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """What training needs: logits (N, V) and labels (N,) at the N positions that carry a loss only.
        The source positions' logits (no loss unless `loss_on_source`) are never projected: with an 8k
        vocabulary the projection is a large share of the model's FLOPs."""
        states = self.teacher_forced(batch.tgt_in, batch.prefix_len).flatten(0, 1)
        return self.generator(states[batch.label_index]), batch.labels

    # The interface search.py drives, as EncoderDecoder offers it.
    @staticmethod
    def make_source(ids: list[list[int]], device=None) -> torch.Tensor:
        """Source pieces -> `s`, left-padded (no <eos>: <sep> follows as the first decoding step's input)."""
        width = max(len(s) for s in ids)
        out = torch.full((len(ids), width), PAD, dtype=torch.long)
        for i, s in enumerate(ids):
            if s:
                out[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
        return out.to(device)

    @staticmethod
    def source_ids(src: torch.Tensor) -> list[list[int]]:
        """The inverse of `make_source`: each row's pieces, without padding."""
        return [[t for t in row if t != PAD] for row in src.tolist()]

    def max_source_pieces(self) -> int:
        """Positions hold the source, <sep> and the output: room for an output as long as the source."""
        return (self.embed.max_positions - 1) // 2

    def max_target_pieces(self, src: torch.Tensor) -> torch.Tensor:
        """Per row, the most pieces the positions hold after the source and <sep>, before <eos>."""
        return self.embed.max_positions - 1 - self.source_lengths(src)

    @staticmethod
    def source_lengths(src: torch.Tensor) -> torch.Tensor:
        return (src != PAD).sum(1)

    def begin(self, src: torch.Tensor, use_cache: bool = True) -> DecoderOnlyState:
        return DecoderOnlyState(src, use_cache, len(self.decoder.layers))

    def step(self, state: DecoderOnlyState, prefix: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) for the position after `source prefix`, prefix (B, t) starting with <sep>. Without a
        cache, or on the first step, the whole sequence runs; after that only the newest token does."""
        # A finished row is fed its <eos>, then <pad>: those columns take no position and no attention, so
        # each row's positions end where its own cap does, whatever the padded width of the batch.
        real = torch.cat([state.real, (prefix != PAD) & (prefix != EOS)], 1)
        positions = (real.long().cumsum(1) - 1).clamp(min=0)  # a row's first real token is position 0
        if state.src.size(1) + prefix.size(1) > self.embed.max_positions:  # the padded width can over-count:
            check_length(int(positions[:, -1].max()) + 1, self.embed)  # then the positions used decide (a sync)
        if state.caches is None or "k" not in state.caches[0]:
            tokens = torch.cat([state.src, prefix], 1)
            prefix_len = None
            if self.prefix_lm:  # the whole source block and <sep>, padding included (hidden by `real`)
                prefix_len = torch.full((tokens.size(0),), state.src.size(1) + 1, device=tokens.device)
            mask = visibility(tokens.size(1), prefix_len, real, tokens.device)
            return self.run(tokens, positions, mask, caches=state.caches)[:, -1]
        return self.run(prefix[:, -1:], positions[:, -1:], real[:, None, None, :], caches=state.caches)[:, -1]
