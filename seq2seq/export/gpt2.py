"""The decoder-only twin as a Hugging Face GPT-2 directory, where GPT-2's architecture can hold it.

GPT-2 is a causal stack of pre-norm blocks (x + Attn(LN(x)), x + MLP(LN(x)), a final LayerNorm) with a
learned position table and unscaled embeddings. So:

- only pre-norm models export: the paper's post-norm (model.norm=post, our default) places each LayerNorm
  after the residual sum, which no GPT-2 weights can express;
- only causal attention exports: a prefix-LM model (model.prefix_lm=true) attends both ways over the
  source, and GPT-2 has no such mask;
- positions: GPT-2's learned table simply holds our sinusoids (either layout);
- embeddings × √d_model (§3.4): `wte` holds √d_model · E. With a tied output projection GPT-2 computes
  LN_f(x) · (√d_model E)ᵀ, so LN_f's gain and bias are divided by √d_model to give back LN_f(x) · Eᵀ;
- ReLU (`activation_function="relu"`); GPT-2's Conv1D weights are our Linear weights transposed, and its
  c_attn is our fused Q|K|V in the same order. GPT-2 has no dropout inside the feed-forward
  (model.activation_dropout): inference is unaffected.

The tokenizer files are MarianTokenizer's (a SentencePiece model plus its id map: GPT-2's byte-level BPE
cannot hold our pieces). The input to continue is `source pieces <sep>` (no </s>):
`tok(text, add_special_tokens=False).input_ids + [4]`.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from seq2seq.data.tokenizer import BOS, EOS, PAD, SEP
from seq2seq.export import ExportError, require
from seq2seq.export.marian import CHECK_TOLERANCE, save_hf


def check_exportable(cfg) -> None:
    if cfg.kind != "gpt":
        raise ExportError(f"GPT-2 holds decoder-only models; this one is model.kind={cfg.kind}")
    if cfg.norm != "pre":
        raise ExportError("GPT-2 is pre-norm and this model is post-norm (model.norm=post, the paper's): no GPT-2 "
                          "weights compute LayerNorm(x + Sublayer(x)); train with model.norm=pre to export it")
    if cfg.prefix_lm:
        raise ExportError("GPT-2 attends causally only; this model was trained with model.prefix_lm=true")


def gpt2_config(cfg, vocab_size: int):
    transformers = require("transformers")
    return transformers.GPT2Config(
        vocab_size=vocab_size, n_positions=cfg.max_positions, n_embd=cfg.d_model, n_layer=cfg.layers,
        n_head=cfg.heads, n_inner=cfg.d_ff, activation_function="relu", resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout, attn_pdrop=cfg.attention_dropout, layer_norm_epsilon=1e-5,
        tie_word_embeddings=bool(cfg.tie_embeddings), bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
    )


@torch.no_grad()
def to_gpt2(model, cfg):
    """A GPT2LMHeadModel (eval mode) computing what `model` computes."""
    check_exportable(cfg)
    transformers = require("transformers")
    vocab_size = model.generator.weight.size(0)
    hf = transformers.GPT2LMHeadModel(gpt2_config(cfg, vocab_size)).eval()
    hf.generation_config = transformers.GenerationConfig(
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, forced_eos_token_id=EOS,
        max_length=cfg.max_positions, num_beams=1, do_sample=False)
    scale = math.sqrt(cfg.d_model)
    t = hf.transformer
    t.wte.weight.copy_(model.embed.embedding.weight * scale)
    t.wpe.weight.copy_(model.embed.positional)
    final = model.decoder.final_norm
    shrink = scale if cfg.tie_embeddings else 1.0
    t.ln_f.weight.copy_(final.weight / shrink)
    t.ln_f.bias.copy_(final.bias / shrink)
    if not cfg.tie_embeddings:
        hf.lm_head.weight.copy_(model.generator.weight)
    for ours, block in zip(model.decoder.layers, t.h):
        for ln, residual in ((block.ln_1, ours.sublayers[0]), (block.ln_2, ours.sublayers[1])):
            ln.weight.copy_(residual.norm.weight)
            ln.bias.copy_(residual.norm.bias)
        for conv, linear in ((block.attn.c_attn, ours.self_attn.qkv_proj), (block.attn.c_proj, ours.self_attn.out_proj),
                             (block.mlp.c_fc, ours.feed_forward.w1), (block.mlp.c_proj, ours.feed_forward.w2)):
            conv.weight.copy_(linear.weight.t())
            conv.bias.copy_(linear.bias)
    check_same_function(model, hf)
    return hf


@torch.no_grad()
def check_same_function(model, hf) -> None:
    """Logits of `source <sep> target` from both must agree."""
    vocab = model.generator.weight.size(0)
    tokens = torch.randint(5, vocab, (2, 9), generator=torch.Generator().manual_seed(0))
    tokens[:, 4] = SEP
    was_training = model.training
    model.eval()
    ours = model(tokens)
    model.train(was_training)
    diff = (ours - hf(input_ids=tokens).logits).abs().max().item()
    if not diff <= CHECK_TOLERANCE:
        raise ExportError(f"the GPT-2 copy does not compute what the model does (max |Δlogit| {diff:.2g}); "
                          f"this transformers version ({require('transformers').__version__}) "
                          "may lay out GPT-2 differently")


def save_gpt2(model, cfg, tokenizer, out) -> Path:
    """The GPT-2 copy of `model`, with the (MarianTokenizer) tokenizer files, written to `out`."""
    return save_hf(to_gpt2(model, cfg), tokenizer, out, cfg.max_positions)
