"""The encoder–decoder Transformer of Figure 1: encode(src) → memory; decode(prefix, memory) → logits."""

from __future__ import annotations

import torch
from torch import nn

from seq2seq.data.tokenizer import BOS, EOS, PAD
from seq2seq.model.attention import padding_mask
from seq2seq.model.layers import DecoderLayer, Embeddings, EncoderLayer, Stack, init_weights
from seq2seq.schema import TransformerConfig


def check_length(length: int, embeddings: Embeddings) -> None:
    if length > embeddings.max_positions:
        raise ValueError(f"sequence of {length} positions is longer than "
                         f"model.max_positions={embeddings.max_positions}")


class DecodingState:
    """What incremental decoding carries between steps: the encoder output and, when caching, the
    per-layer keys/values. Beam search calls `expand(k)` to give each sentence k hypothesis rows, which
    share the sentence's memory and cross-attention keys/values (`group` rows per memory row); `reorder`
    when hypotheses change places within their sentence (only the self-attention caches follow); and
    `select` to keep some rows, in whole groups (dropping finished sentences)."""

    def __init__(self, memory: torch.Tensor, memory_mask: torch.Tensor, use_cache: bool, n_layers: int):
        self.memory, self.memory_mask = memory, memory_mask
        self.caches = [{} for _ in range(n_layers)] if use_cache else None
        self.group = 1  # hypothesis rows per memory row

    def expand(self, k: int) -> None:
        """Every row becomes k consecutive rows."""
        rows = torch.arange(self.memory.size(0) * self.group, device=self.memory.device).repeat_interleave(k)
        self._index(rows, ("self",))
        self.group *= k

    def reorder(self, index: torch.Tensor) -> None:
        """Rows take their state from rows `index` of the same sentence: memory and cross-attention stay."""
        self._index(index, ("self",))

    def select(self, index: torch.Tensor) -> None:
        """Keep rows `index`, whole groups of `group` consecutive rows: everything follows."""
        sentences = index.view(-1, self.group)[:, 0] // self.group
        self.memory, self.memory_mask = self.memory[sentences], self.memory_mask[sentences]
        self._index(index, ("self",))
        self._index(sentences, ("cross",))

    def _index(self, index: torch.Tensor, parts: tuple[str, ...]) -> None:
        for cache in self.caches or []:
            for part in parts:
                sub = cache.get(part, {})
                for key in sub:
                    sub[key] = sub[key].index_select(0, index)


class EncoderDecoder(nn.Module):
    """§3.1. Source and target share one vocabulary (joint SentencePiece), so with `tie_embeddings` one
    matrix serves the source embedding, the target embedding and the pre-softmax projection (§3.4)."""

    kind = "transformer"
    decoder_start_id = BOS

    def __init__(self, cfg: TransformerConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        src_table = nn.Embedding(vocab_size, d, padding_idx=PAD)
        tgt_table = src_table if cfg.tie_embeddings else nn.Embedding(vocab_size, d, padding_idx=PAD)
        self.src_embed = Embeddings(src_table, cfg.max_positions, cfg.dropout, cfg.positional)
        self.tgt_embed = Embeddings(tgt_table, cfg.max_positions, cfg.dropout, cfg.positional)
        self.encoder = Stack(EncoderLayer, cfg.encoder_layers, cfg)
        self.decoder = Stack(DecoderLayer, cfg.decoder_layers, cfg)
        self.generator = nn.Linear(d, vocab_size, bias=False)  # pre-softmax projection
        init_weights(self, d)
        if cfg.tie_embeddings:
            self.generator.weight = src_table.weight

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src: (B, S) right-padded ids ending in <eos> -> (memory (B, S, d), memory mask (B, 1, 1, S))."""
        check_length(src.size(1), self.src_embed)
        mask = padding_mask(src, PAD)
        positions = torch.arange(src.size(1), device=src.device)
        return self.encoder(self.src_embed(src, positions), mask=mask), mask

    def decode(self, prefix, memory, memory_mask, caches: list | None = None, start: int = 0) -> torch.Tensor:
        """prefix: (B, T) target ids from <bos> (only the new ones when a cache holds positions < start)."""
        check_length(start + prefix.size(1), self.tgt_embed)
        positions = torch.arange(start, start + prefix.size(1), device=prefix.device)
        x = self.decoder(self.tgt_embed(prefix, positions), memory, memory_mask, caches=caches)
        return self.generator(x)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V) for every target position."""
        memory, mask = self.encode(src)
        return self.decode(tgt_in, memory, mask)

    def logits(self, batch) -> torch.Tensor:
        """Teacher-forced logits (B, T, V) for a collated `pair` batch."""
        return self(batch.src, batch.tgt_in)

    def labelled_logits(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """What training needs, as the decoder-only model gives it: logits and their labels (PAD = no loss).
        Every target position carries a label here."""
        return self.logits(batch), batch.labels

    # The interface search.py drives; the decoder-only model offers the same three calls.
    @staticmethod
    def make_source(ids: list[list[int]], device=None) -> torch.Tensor:
        """Source pieces -> the encoder's input: `s <eos>`, right-padded."""
        width = max(len(s) for s in ids) + 1
        out = torch.full((len(ids), width), PAD, dtype=torch.long)
        for i, s in enumerate(ids):
            out[i, : len(s) + 1] = torch.tensor(s + [EOS], dtype=torch.long)
        return out.to(device)

    @staticmethod
    def source_ids(src: torch.Tensor) -> list[list[int]]:
        """The inverse of `make_source`: each row's pieces, without <eos> and padding."""
        return [[t for t in row if t != PAD][:-1] for row in src.tolist()]

    def max_source_pieces(self) -> int:
        """The longest source the encoder's positions hold (<eos> included)."""
        return self.src_embed.max_positions - 1

    def max_target_pieces(self, src: torch.Tensor) -> int:
        """The most pieces the decoder's positions hold before <eos> (<bos> takes one)."""
        return self.tgt_embed.max_positions - 1

    @staticmethod
    def source_lengths(src: torch.Tensor) -> torch.Tensor:
        """Source pieces per row, <eos> and padding not counted."""
        return (src != PAD).sum(1) - 1

    def begin(self, src: torch.Tensor, use_cache: bool = True) -> DecodingState:
        memory, mask = self.encode(src)
        return DecodingState(memory, mask, use_cache, len(self.decoder.layers))

    def step(self, state: DecodingState, prefix: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) for the position after `prefix` (B, t); with a cache only the last token is run."""
        if state.caches is None:
            return self.decode(prefix, state.memory, state.memory_mask)[:, -1]
        return self.decode(prefix[:, -1:], state.memory, state.memory_mask, state.caches,
                           start=prefix.size(1) - 1)[:, -1]
