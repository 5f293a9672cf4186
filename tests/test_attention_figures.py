"""`seq2seq attention` and seq2seq.viz.figures: the maps the figures draw, the PNG files, a copy task.

A tiny encoder–decoder trained a few seconds (fixed seed) to copy random piece sequences must show the
diagonal in its last layer's cross-attention; the same model, saved with the toy tokenizer, copies real
sentences, which gives the CLI figures labelled with readable pieces.
"""

from __future__ import annotations

import random
import struct

import pytest
import torch

from seq2seq.cli import main
from seq2seq.config import compose
from seq2seq.data.batching import collate
from seq2seq.data.tokenizer import PAD, SEP
from seq2seq.model.attention import record_attention
from seq2seq.model.build import build_model
from seq2seq.model.directory import save_model_dir
from seq2seq.train.loss import label_smoothed_loss
from seq2seq.viz.figures import (
    attention_figure,
    find_target,
    grid,
    labels,
    png_size,
    spotlight_figure,
    spotlight_size,
)
from seq2seq.viz.maps import attention_maps

SENTENCE = "The small cat sees a red ball."
FIRST = 5  # the first id that is not a special piece


def random_sequences(rng: random.Random, n: int, vocab: int) -> list[list[int]]:
    return [[rng.randrange(FIRST, vocab) for _ in range(rng.randint(4, 12))] for _ in range(n)]


def png_header(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def copy_model(toy_tokenizer):
    """transformer_tiny at d_model 64, trained 600 steps to output its input (source = target)."""
    torch.manual_seed(0)
    cfg = compose("model=transformer_tiny", "model.d_model=64", "model.d_ff=128", "model.dropout=0.0").model
    model = build_model(cfg, len(toy_tokenizer))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98), eps=1e-9)
    rng = random.Random(0)
    for _ in range(600):
        seqs = random_sequences(rng, 32, len(toy_tokenizer))
        batch = collate(list(zip(seqs, seqs)), "pair")
        loss, _ = label_smoothed_loss(model.logits(batch), batch.tgt_out, 0.0)
        optimizer.zero_grad()
        (loss / batch.tgt_tokens).backward()
        optimizer.step()
    return model.eval(), cfg


@pytest.fixture(scope="module")
def copy_dir(copy_model, toy_tokenizer, tmp_path_factory):
    model, cfg = copy_model
    return save_model_dir(tmp_path_factory.mktemp("copy") / "model", model.state_dict(), cfg, len(toy_tokenizer),
                          toy_tokenizer.path)


@pytest.fixture(scope="module")
def gpt_dir(toy_tokenizer, tmp_path_factory):
    torch.manual_seed(0)
    cfg = compose("model=gpt_tiny", "model.max_positions=24").model  # short outputs: small figures
    model = build_model(cfg, len(toy_tokenizer))
    return save_model_dir(tmp_path_factory.mktemp("gpt") / "model", model.state_dict(), cfg, len(toy_tokenizer),
                          toy_tokenizer.path)


# -------------------------------------------------------------------------------- the maps drawn

@pytest.mark.parametrize("kind", ["transformer", "gpt"])
def test_drawn_maps_match_the_pieces_and_their_rows_sum_to_one(kind, toy_tokenizer):
    torch.manual_seed(0)
    model = build_model(compose(f"model={kind}_tiny").model, len(toy_tokenizer)).eval()
    source, target = toy_tokenizer.encode([SENTENCE, "Le petit chat voit un ballon rouge."])
    maps = attention_maps(model, [source], [target])[0]
    names = labels(maps, toy_tokenizer, kind)
    S, T = len(source) + 1, len(target) + 1
    assert (len(names.source), len(names.target), len(names.decoder_inputs)) == (S, T, T)
    assert names.decoder_inputs[1:] == names.target[:-1]  # the decoder reads what it produced, one step late
    cross, encoder, decoder = (m.mean(1) for m in (maps.cross, maps.encoder, maps.decoder))  # heads averaged
    assert cross.shape[1:] == (T, S) and encoder.shape[1:] == (S, S) and decoder.shape[1:] == (T, T)
    assert torch.allclose(encoder.sum(-1), torch.ones(()), atol=1e-5)
    if kind == "transformer":
        assert names.source[-1] == "</s>" and names.decoder_inputs[0] == "<s>"
        for w in (cross, decoder):
            assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-5)
    else:  # one matrix over `s <sep> t`: a target row splits its weight between source and target side
        assert names.source[-1] == names.decoder_inputs[0] == toy_tokenizer.id_to_piece([SEP])[0]
        assert torch.allclose(cross[..., :-1].sum(-1) + decoder.sum(-1), torch.ones(()), atol=1e-5)


def test_padding_gets_zero_weight_in_both_model_kinds(toy_tokenizer):
    torch.manual_seed(0)
    rng = random.Random(1)
    sources = random_sequences(rng, 3, len(toy_tokenizer))
    sources[0] = sources[0][:2]  # a short row: the others are padded
    enc_dec = build_model(compose("model=transformer_tiny").model, len(toy_tokenizer)).eval()
    batch = collate(list(zip(sources, sources)), "pair")
    with torch.no_grad(), record_attention(enc_dec):
        enc_dec.logits(batch)
        keys = batch.src != PAD  # (B, S)
        for layer in enc_dec.encoder.layers:
            assert (layer.self_attn.weights.masked_select(~keys[:, None, None, :]) == 0).all()
        for layer in enc_dec.decoder.layers:
            assert (layer.cross_attn.weights.masked_select(~keys[:, None, None, :]) == 0).all()
        assert (~keys).any()
    # The decoder-only model decodes from a left-padded source: real positions must not see that padding.
    gpt = build_model(compose("model=gpt_tiny").model, len(toy_tokenizer)).eval()
    src = gpt.make_source(sources)
    prefix = torch.full((len(sources), 1), SEP)
    with torch.no_grad(), record_attention(gpt):
        gpt.step(gpt.begin(src, use_cache=False), prefix)
        real = torch.cat([src != PAD, torch.ones_like(prefix, dtype=torch.bool)], 1)
        hidden = real[:, None, :, None] & ~real[:, None, None, :]  # (real query, padding key) pairs
        for layer in gpt.decoder.layers:
            assert (layer.self_attn.weights.masked_select(hidden) == 0).all()
        assert hidden.any()


def test_a_model_trained_to_copy_looks_at_the_diagonal(copy_model, toy_tokenizer):
    model, _ = copy_model
    rng = random.Random(123)  # sequences the model never saw
    sequences = random_sequences(rng, 30, len(toy_tokenizer))
    on_diagonal = pieces = 0
    for maps in attention_maps(model, sequences, sequences):
        cross = maps.cross[-1].mean(0)[:-1]  # last decoder layer, heads averaged; rows of the pieces, not <eos>
        on_diagonal += int((cross.argmax(1) == torch.arange(cross.size(0))).sum())
        pieces += cross.size(0)
    assert on_diagonal / pieces >= 0.9, f"{on_diagonal}/{pieces} target pieces attend most to their own position"


# -------------------------------------------------------------------------------- figures

def test_figures_are_pngs_of_the_planned_size_growing_with_the_sentence(tmp_path):
    short, long = ["▁Le", "▁chat", "</s>"], [f"▁mot{i}" for i in range(30)] + ["</s>"]
    sizes = []
    for pieces in (short, long):
        weights = torch.rand(len(pieces), len(pieces)).softmax(-1)
        path = attention_figure(weights, pieces, pieces, "a title", tmp_path / f"m{len(pieces)}.png", "key", "query")
        layout = grid(pieces, pieces, "a title")
        assert png_header(path) == png_size(layout.size)
        assert layout.panel == pytest.approx((len(pieces) * layout.cell,) * 2)  # square cells, one per piece
        sizes.append(png_header(path))
    assert sizes[1][0] > sizes[0][0] and sizes[1][1] > sizes[0][1]
    heads = attention_figure(torch.rand(8, 3, 5).softmax(-1), short, long[:5], "heads", tmp_path / "h.png", "k", "q",
                             [f"head {h}" for h in range(8)])
    layout = grid(short, long[:5], "heads", panels=8)
    assert png_header(heads) == png_size(layout.size) and (layout.nrows, layout.ncols) == (2, 4)
    bars = spotlight_figure(torch.rand(5).softmax(-1), long[:5], "bars", tmp_path / "b.png")
    assert png_header(bars) == png_size(spotlight_size(long[:5], "bars"))
    with pytest.raises(ValueError, match="labels"):
        attention_figure(torch.rand(2, 3), short, short, "t", tmp_path / "bad.png", "k", "q")


def test_find_target_matches_a_piece_then_a_whole_word():
    pieces = ["▁Le", "▁chat", "▁en", "sole", "illé", "▁Chat", "."]
    assert find_target(pieces, "chat") == [1]
    assert find_target(pieces, "▁chat") == [1]
    assert find_target(pieces, "sole") == [3]
    assert find_target(pieces, "ensoleillé") == [2, 3, 4]
    assert find_target(pieces, "LE") == [0]  # any case when no exact match
    assert find_target(pieces, "chien") is None


def test_attention_command_writes_every_figure_and_prints_the_paths(copy_dir, tmp_path, capsys):
    out = tmp_path / "figs"
    main(["attention", "--model", str(copy_dir), "--out", str(out), "--show-tokens", "--target-token", "cat", SENTENCE])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("source (") and "▁cat" in captured.out
    paths = [line for line in lines if line.endswith(".png")]
    assert [p.rsplit("/", 1)[1] for p in paths] == ["cross_layer0.png", "cross_layer1.png", "cross_heads_layer1.png",
                                                    "encoder_layer1.png", "decoder_layer1.png",
                                                    "spotlight_cat_layer1.png"]
    for p in paths:
        assert png_header(out / p.rsplit("/", 1)[1])
    assert "-> The small cat sees a red ball" in captured.err  # the model copies
    # The figures grow with the sentence: the long one's cross-attention is larger both ways.
    main(["attention", "--model", str(copy_dir), "--out", str(tmp_path / "long"), "--beam", "1",
          "The small cat sees a red ball and the big dog eats the small red house."])
    short_size, long_size = png_header(out / "cross_layer0.png"), png_header(tmp_path / "long" / "cross_layer0.png")
    assert long_size[0] > short_size[0] and long_size[1] > short_size[1]


def test_attention_command_draws_the_decoder_only_model_too(gpt_dir, tmp_path, capsys):
    main(["attention", "--model", str(gpt_dir), "--out", str(tmp_path), "--beam", "1", "--layer", "2", "A man eats."])
    paths = capsys.readouterr().out.split()
    assert len(paths) == 5 + 3  # five layers of target → source maps, the head grid, two self-attention maps
    assert all(png_header(tmp_path / p.rsplit("/", 1)[1]) for p in paths)
    assert (tmp_path / "cross_heads_layer2.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["--target-token", "chien"], "--target-token: 'chien' is not among the target pieces"),
    (["--layer", "2"], "--layer 2: the encoder has 2 layers"),
    (["--beam", "0"], "--beam must be at least 1"),
])
def test_attention_command_errors_are_one_line(copy_dir, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["attention", "--model", str(copy_dir), "--out", str(tmp_path), *args, SENTENCE])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {message}")
    assert not list(tmp_path.glob("*.png"))


def test_attention_command_refuses_an_empty_sentence(copy_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["attention", "--model", str(copy_dir), "--out", str(tmp_path), "   "])
    assert "the sentence is empty" in capsys.readouterr().err
