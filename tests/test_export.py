"""Export: the Hugging Face MarianMT / GPT-2 and CTranslate2 copies compute what our models do."""

from __future__ import annotations

import pytest
import torch

from seq2seq.cli import main
from seq2seq.config import compose
from seq2seq.data.batching import collate
from seq2seq.data.tokenizer import EOS, PAD, SEP
from seq2seq.decode.search import BANNED, greedy, max_lengths
from seq2seq.export import ExportError, marian
from seq2seq.export.gpt2 import to_gpt2
from seq2seq.export.marian import residual_order, to_marian
from seq2seq.model.build import build_model
from seq2seq.model.directory import save_model_dir
from tests.conftest import toy_pairs

transformers = pytest.importorskip("transformers")


def briefly_trained(cfg, tokenizer, steps: int = 120):
    """A tiny model that has learnt enough of the toy language to end its outputs with </s>."""
    torch.manual_seed(0)
    model = build_model(cfg, len(tokenizer))
    pairs = [tuple(tokenizer.encode(list(p))) for p in toy_pairs(32 * steps, seed=3)]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for i in range(steps):
        batch = collate(pairs[32 * i: 32 * (i + 1)], "pair")
        loss = torch.nn.functional.cross_entropy(model(batch.src, batch.tgt_in).transpose(1, 2), batch.tgt_out,
                                                 ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def model_dir(toy_tokenizer, tmp_path_factory):
    """A model directory holding a briefly trained tiny model with the paper's interleaved positions."""
    cfg = compose("model=transformer_tiny", "model.positional=interleaved").model
    model = briefly_trained(cfg, toy_tokenizer)
    return save_model_dir(tmp_path_factory.mktemp("model"), model.state_dict(), cfg, len(toy_tokenizer),
                          toy_tokenizer.path), model


SENTENCES = ["The red cat sees a dog.", "A small woman likes the big house.", "Man runs.",
             "The dog eats a red ball and the cat sleeps."]


def test_marian_export_loads_in_transformers_and_decodes_as_we_do(model_dir, toy_tokenizer, tmp_path, capsys):
    directory, model = model_dir
    out = tmp_path / "hf"
    main(["export", "--model", str(directory), "--format", "hf", "--out", str(out)])
    assert "exported" in capsys.readouterr().out
    for name in ("config.json", "generation_config.json", "model.safetensors", "source.spm", "target.spm",
                 "vocab.json", "tokenizer_config.json"):
        assert (out / name).is_file(), name
    hf = transformers.MarianMTModel.from_pretrained(out).eval()
    hf_tok = transformers.MarianTokenizer.from_pretrained(out)
    ids = toy_tokenizer.encode(SENTENCES)
    assert [hf_tok(s).input_ids for s in SENTENCES] == [s + [EOS] for s in ids]

    src = model.make_source(ids)
    tgt_in = collate([(s, s) for s in ids], "pair").tgt_in  # any target prefix will do for teacher forcing
    with torch.no_grad():
        ours = model(src, tgt_in)
        theirs = hf(input_ids=src, attention_mask=(src != PAD).long(), decoder_input_ids=tgt_in).logits
    real = tgt_in != PAD
    assert (ours - theirs)[real].abs().max().item() < 1e-4

    hyps = greedy(model, src)
    limits = max_lengths(model, src, 1.0, 50)
    assert all(len(h.tokens) < limit for h, limit in zip(hyps, limits))  # every output ended with </s>
    for s, h, limit in zip(ids, hyps, limits):
        generated = hf.generate(input_ids=torch.tensor([s + [EOS]]), max_new_tokens=int(limit) + 1)[0].tolist()
        assert generated == [model.decoder_start_id] + h.tokens + [EOS]
        assert hf_tok.decode(generated, skip_special_tokens=True) == toy_tokenizer.decode([h.tokens])[0]


def test_the_residual_permutation_is_what_makes_interleaved_positions_exact(model_dir, monkeypatch):
    _, model = model_dir
    monkeypatch.setattr(marian, "residual_order", lambda cfg: torch.arange(cfg.d_model))  # no permutation
    with pytest.raises(ExportError, match="does not compute what the model does"):
        marian.to_marian(model, model.cfg)


def test_halves_positions_export_without_permutation(toy_tokenizer):
    cfg = compose("model=transformer_tiny", "model.positional=halves", "model.tie_embeddings=false").model
    assert torch.equal(residual_order(cfg), torch.arange(cfg.d_model))
    torch.manual_seed(1)
    model = build_model(cfg, len(toy_tokenizer)).eval()
    hf = to_marian(model, cfg)
    src = model.make_source(toy_tokenizer.encode(SENTENCES[:2]))
    tgt_in = src[:, :-1].clone()
    tgt_in[:, 0] = model.decoder_start_id
    with torch.no_grad():
        diff = model(src, tgt_in) - hf(input_ids=src, attention_mask=(src != PAD).long(),
                                       decoder_input_ids=tgt_in).logits
    assert diff[tgt_in != PAD].abs().max().item() < 1e-4


def test_pre_norm_models_are_refused_with_the_option_named(toy_tokenizer, tmp_path, capsys):
    cfg = compose("model=transformer_tiny", "model.norm=pre").model
    model = build_model(cfg, len(toy_tokenizer))
    directory = save_model_dir(tmp_path / "m", model.state_dict(), cfg, len(toy_tokenizer), toy_tokenizer.path)
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--model", str(directory), "--out", str(tmp_path / "hf")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "pre-norm" in err and "model.norm=post" in err
    assert not (tmp_path / "hf").exists()


def test_ctranslate2_conversion_decodes_as_we_do(model_dir, toy_tokenizer, tmp_path):
    ctranslate2 = pytest.importorskip("ctranslate2")
    directory, model = model_dir
    out = tmp_path / "ct2"
    main(["export", "--model", str(directory), "--format", "ct2", "--out", str(out)])
    assert (out / "model.bin").is_file() and (out / "spm.model").is_file()
    ids = toy_tokenizer.encode(SENTENCES)
    src = model.make_source(ids)
    hyps = greedy(model, src)
    translator = ctranslate2.Translator(str(out), device="cpu", compute_type="float32")
    results = translator.translate_batch([toy_tokenizer.id_to_piece(s) + ["</s>"] for s in ids], beam_size=1,
                                         max_decoding_length=int(max_lengths(model, src, 1.0, 50).max()))
    assert [[toy_tokenizer.sp.piece_to_id(p) for p in r.hypotheses[0]] for r in results] == [h.tokens for h in hyps]


@pytest.mark.parametrize("tie", [True, False])
def test_pre_norm_causal_gpt_exports_to_gpt2(toy_tokenizer, tmp_path, tie):
    cfg = compose("model=gpt_tiny", "model.norm=pre", f"model.tie_embeddings={tie}").model
    torch.manual_seed(2)
    model = build_model(cfg, len(toy_tokenizer)).eval()
    directory = save_model_dir(tmp_path / "m", model.state_dict(), cfg, len(toy_tokenizer), toy_tokenizer.path)
    main(["export", "--model", str(directory), "--out", str(tmp_path / "hf")])
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    ids = toy_tokenizer.encode(SENTENCES)
    tokens = collate([(s, s) for s in ids], "concat").tgt_in  # `s <sep> s`, right-padded
    with torch.no_grad():
        diff = model(tokens) - hf(input_ids=tokens).logits
    assert diff[tokens != PAD].abs().max().item() < 1e-4
    src = model.make_source(ids)
    for s, h, limit in zip(ids, greedy(model, src), max_lengths(model, src, 1.0, 50)):
        generated = hf.generate(input_ids=torch.tensor([s + [SEP]]), max_new_tokens=int(limit) + 1,
                                suppress_tokens=list(BANNED))[0, len(s) + 1:]  # our search never emits them
        assert generated.tolist() == h.tokens + [EOS]


@pytest.mark.parametrize("override, message", [("model.norm=post", "post-norm"), ("model.prefix_lm=true", "prefix_lm")])
def test_gpt_models_gpt2_cannot_hold_are_refused(toy_tokenizer, override, message):
    cfg = compose("model=gpt_tiny", "model.norm=pre", override).model
    with pytest.raises(ExportError, match=message):
        to_gpt2(build_model(cfg, len(toy_tokenizer)), cfg)
