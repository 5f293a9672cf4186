"""Our encoder–decoder as a Hugging Face MarianMT directory, computing exactly the same function.

MarianMT is the paper's network (post-norm, ReLU, sinusoidal positions, embeddings × √d_model, one
shared matrix for both embeddings and the output projection). What differs, and how it is bridged:

- Positions (§3.5): Marian lays the sinusoids out as [sin | cos] halves; the paper interleaves them.
  The permutation cannot be applied to the position table alone (it is added to the embeddings before
  any linear layer), but it can be applied to the whole residual stream: relabel every d_model-sized
  dimension (embedding columns, every linear layer's input columns or output rows that touch the stream,
  LayerNorm gains and biases) by the same permutation. LayerNorm's mean and variance ignore the order,
  each linear layer sees its inputs permuted in step, and the tied output projection's dot products are
  unchanged, so the exported model is the same function, and an interleaved model exports exactly.
- Decoding start: Marian starts from the pad id; ours from <bos>: `decoder_start_token_id` = <bos>.
- Our fused projections (self-attention Q|K|V, cross-attention K|V) are split into q/k/v_proj.
- The length cap of search.py (a · |src| + b pieces, then <eos>) is Hugging Face's `max_new_tokens`
  = cap + 1 with `forced_eos_token_id` = <eos>; a pre-norm model (model.norm=pre) has no Marian
  equivalent and is refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from seq2seq.data.tokenizer import BOS, EOS, PAD
from seq2seq.export import ExportError, require

CHECK_TOLERANCE = 1e-3  # |logit difference| allowed in the check run after every export


def residual_order(cfg) -> torch.Tensor:
    """Index i of the exported residual stream holds our dimension order[i] (identity for `halves`)."""
    d = cfg.d_model
    if cfg.positional == "halves":
        return torch.arange(d)
    return torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)])  # [sin dims | cos dims]


def check_exportable(cfg) -> None:
    if cfg.kind != "transformer":
        raise ExportError(f"MarianMT holds encoder–decoder models; this one is model.kind={cfg.kind}")
    if cfg.norm != "post":
        raise ExportError("MarianMT has no pre-norm: this model was trained with model.norm=pre, and only "
                          "post-norm models (model.norm=post, the paper's) export to MarianMT")
    if cfg.d_model % 2:
        raise ExportError(f"sinusoidal positions need an even d_model (got {cfg.d_model})")


def marian_config(cfg, vocab_size: int):
    transformers = require("transformers")
    tied = bool(cfg.tie_embeddings)
    return transformers.MarianConfig(
        vocab_size=vocab_size, decoder_vocab_size=vocab_size, max_position_embeddings=cfg.max_positions,
        d_model=cfg.d_model, encoder_layers=cfg.encoder_layers, decoder_layers=cfg.decoder_layers,
        encoder_attention_heads=cfg.heads, decoder_attention_heads=cfg.heads,
        encoder_ffn_dim=cfg.d_ff, decoder_ffn_dim=cfg.d_ff, activation_function="relu",
        dropout=cfg.dropout, attention_dropout=cfg.attention_dropout, activation_dropout=cfg.activation_dropout,
        scale_embedding=True, share_encoder_decoder_embeddings=tied, tie_word_embeddings=tied,
        pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=BOS, forced_eos_token_id=EOS,
    )


def generation_config(cfg):
    """Greedy up to the model's positions, as `generate()` defaults; pass max_new_tokens for our length cap."""
    transformers = require("transformers")
    return transformers.GenerationConfig(
        decoder_start_token_id=BOS, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
        forced_eos_token_id=EOS, max_length=cfg.max_positions, num_beams=1, do_sample=False,
    )


class _Copier:
    """Copies our parameters into Hugging Face modules, permuting the residual-stream dimensions."""

    def __init__(self, order: torch.Tensor):
        self.r = order

    def linear(self, dst, weight, bias, reads: bool = False, writes: bool = False):
        """`reads`: the input is the residual stream (permute columns); `writes`: the output is (rows)."""
        if reads:
            weight = weight[:, self.r]
        if writes:
            weight, bias = weight[self.r], bias[self.r]
        dst.weight.copy_(weight)
        dst.bias.copy_(bias)

    def norm(self, dst, residual):
        dst.weight.copy_(residual.norm.weight[self.r])
        dst.bias.copy_(residual.norm.bias[self.r])

    def attention(self, dst, mha):
        if mha.cross:
            q = (mha.q_proj.weight, mha.q_proj.bias)
            k, v = zip(mha.kv_proj.weight.chunk(2), mha.kv_proj.bias.chunk(2))
        else:
            q, k, v = zip(mha.qkv_proj.weight.chunk(3), mha.qkv_proj.bias.chunk(3))
        for proj, (w, b) in zip((dst.q_proj, dst.k_proj, dst.v_proj), (q, k, v)):
            self.linear(proj, w, b, reads=True)
        self.linear(dst.out_proj, mha.out_proj.weight, mha.out_proj.bias, writes=True)

    def feed_forward(self, fc1, fc2, ff):
        self.linear(fc1, ff.w1.weight, ff.w1.bias, reads=True)
        self.linear(fc2, ff.w2.weight, ff.w2.bias, writes=True)

    def embedding(self, dst, weight):
        dst.weight.copy_(weight[:, self.r])


@torch.no_grad()
def to_marian(model, cfg):
    """A MarianMTModel (eval mode) holding `model`'s weights."""
    check_exportable(cfg)
    transformers = require("transformers")
    vocab_size = model.generator.weight.size(0)
    hf = transformers.MarianMTModel(marian_config(cfg, vocab_size)).eval()
    hf.generation_config = generation_config(cfg)
    c = _Copier(residual_order(cfg))
    c.embedding(hf.model.encoder.embed_tokens, model.src_embed.embedding.weight)
    c.embedding(hf.model.decoder.embed_tokens, model.tgt_embed.embedding.weight)
    c.embedding(hf.lm_head, model.generator.weight)
    hf.final_logits_bias.zero_()
    for ours, theirs in zip(model.encoder.layers, hf.model.encoder.layers):
        c.attention(theirs.self_attn, ours.self_attn)
        c.norm(theirs.self_attn_layer_norm, ours.sublayers[0])
        c.feed_forward(theirs.fc1, theirs.fc2, ours.feed_forward)
        c.norm(theirs.final_layer_norm, ours.sublayers[1])
    for ours, theirs in zip(model.decoder.layers, hf.model.decoder.layers):
        c.attention(theirs.self_attn, ours.self_attn)
        c.norm(theirs.self_attn_layer_norm, ours.sublayers[0])
        c.attention(theirs.encoder_attn, ours.cross_attn)
        c.norm(theirs.encoder_attn_layer_norm, ours.sublayers[1])
        c.feed_forward(theirs.fc1, theirs.fc2, ours.feed_forward)
        c.norm(theirs.final_layer_norm, ours.sublayers[2])
    check_same_function(model, hf)
    return hf


@torch.no_grad()
def check_same_function(model, hf) -> None:
    """Teacher-forced logits of both on a fixed little batch (one row padded) must agree."""
    vocab = model.generator.weight.size(0)
    g = torch.Generator().manual_seed(0)
    src = torch.randint(5, vocab, (2, 7), generator=g)
    src[:, -1], src[1, 4:] = EOS, PAD
    src[1, 3] = EOS
    tgt = torch.randint(5, vocab, (2, 6), generator=g)
    tgt[:, 0] = BOS
    was_training = model.training
    model.eval()
    ours = model(src, tgt)
    model.train(was_training)
    theirs = hf(input_ids=src, attention_mask=(src != PAD).long(), decoder_input_ids=tgt).logits
    diff = (ours - theirs).abs().max().item()
    if not diff <= CHECK_TOLERANCE:
        raise ExportError(f"the MarianMT copy does not compute what the model does (max |Δlogit| {diff:.2g}); "
                          f"this transformers version ({require('transformers').__version__}) "
                          "may lay out Marian differently")


def save_tokenizer(tokenizer, out: Path, max_positions: int) -> None:
    """source.spm = target.spm = our joint model; vocab.json maps every piece to its SentencePiece id."""
    transformers = require("transformers")
    for name in ("source.spm", "target.spm"):
        shutil.copyfile(tokenizer.path, out / name)
    vocab = {tokenizer.sp.id_to_piece(i): i for i in range(len(tokenizer))}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1), encoding="utf-8")
    hf_tok = transformers.MarianTokenizer(str(out / "source.spm"), str(out / "target.spm"), str(out / "vocab.json"),
                                          source_lang="en", target_lang="fr", model_max_length=max_positions)
    hf_tok.save_pretrained(str(out))


def save_hf(hf, tokenizer, out, max_positions: int) -> Path:
    """Write a Hugging Face model (config.json, generation_config.json, weights) and the tokenizer files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(str(out))
    save_tokenizer(tokenizer, out, max_positions)
    return out


def save_marian(model, cfg, tokenizer, out) -> Path:
    """The MarianMT copy of `model`, written to `out`."""
    return save_hf(to_marian(model, cfg), tokenizer, out, cfg.max_positions)
