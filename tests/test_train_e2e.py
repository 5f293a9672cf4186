"""Real training runs of a tiny model through the real Hydra config (a few seconds each)."""

from __future__ import annotations

import json

import pytest
import torch

from seq2seq.config import compose
from seq2seq.decode.search import greedy
from seq2seq.train import checkpoint
from seq2seq.train.trainer import train
from seq2seq.translator import Translator
from tests.conftest import memorisation_bleu

pytestmark = pytest.mark.slow  # trains tiny models end to end

SCHEMA = {
    "model": {"name", "params"},
    "data": {"manifest_sha256"},
    "train": {"steps", "seconds", "tokens", "tokens_per_s"},
    "env": {"git_sha", "torch", "sacrebleu", "sentencepiece", "device"},
}


def test_tiny_model_memorises_32_pairs(toy_tokenizer):
    decode = lambda model, src: [h.tokens for h in greedy(model, src, max_len_b=30)]  # noqa: E731
    assert memorisation_bleu("transformer_tiny", toy_tokenizer, decode) > 90


def test_train_end_to_end_writes_results_model_and_resumes(tmp_path, toy_data_overrides):
    cfg = compose("experiment=tiny", *toy_data_overrides, "trainer.max_steps=12")
    run = tmp_path / "run"
    results = train(cfg, run)
    for key, fields in SCHEMA.items():
        assert fields <= results[key].keys()
    assert set(results["test"]) == {"multi30k/test_2016_flickr", "multi30k/test_2017_flickr", "tatoeba/test"}
    for s in results["test"].values():
        assert {"bleu", "chrf", "signature", "n"} <= s.keys() and "nrefs:1" in s["signature"]["bleu"]
    assert json.loads((run / "results.json").read_text()) == results
    assert results["train"]["steps"] == 12 and results["model"]["name"] == "transformer_tiny"
    assert (run / "train.log").is_file() and (run / "config.yaml").is_file()
    translator = Translator.load(run / "model")
    assert len(translator.translate(["The cat sees a dog.", ""], beam=2)) == 2

    # Running again with a larger budget resumes from step 12 instead of starting over.
    cfg = compose("experiment=tiny", *toy_data_overrides, "trainer.max_steps=16")
    again = train(cfg, run)
    assert again["train"]["steps"] == 16 and again["train"]["tokens"] > results["train"]["tokens"]
    assert "resumed from step 12" in (run / "train.log").read_text()


@pytest.mark.parametrize("bpe_dropout", [[], ["trainer.bpe_dropout=0.1", "trainer.batch_tokens=4096"]],
                         ids=["plain", "bpe_dropout"])  # with dropout: ~7 batches an epoch, so 15 steps span three
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, toy_data_overrides, bpe_dropout):
    common = ["experiment=tiny", *toy_data_overrides, "trainer.save_every=7", "trainer.valid_every=1000",
              "trainer.average_last=0", "trainer.test_max_sentences=2", *bpe_dropout]
    train(compose(*common, "trainer.max_steps=15"), tmp_path / "straight")
    train(compose(*common, "trainer.max_steps=7"), tmp_path / "split")  # stops at a checkpoint ...
    train(compose(*common, "trainer.max_steps=15"), tmp_path / "split")  # ... and resumes from it
    a = checkpoint.load(checkpoint.step_path(tmp_path / "straight" / "checkpoints", 15))
    b = checkpoint.load(checkpoint.step_path(tmp_path / "split" / "checkpoints", 15))
    for key in a["model"]:
        assert torch.allclose(a["model"][key], b["model"][key], atol=1e-6), key
    assert a["progress"]["tokens"] == b["progress"]["tokens"]
    assert not bpe_dropout or a["progress"]["epoch"] >= 2


def test_averaging_at_the_end_uses_the_last_checkpoints(tmp_path, toy_data_overrides):
    cfg = compose("experiment=tiny", *toy_data_overrides, "trainer.max_steps=6", "trainer.save_every=2",
                         "trainer.keep_last=3", "trainer.average_last=2", "trainer.test_max_sentences=2")
    results = train(cfg, tmp_path / "run")
    assert "step_00000004.pt, step_00000006.pt" in results["model"]["weights"]
    expected = checkpoint.average([checkpoint.step_path(tmp_path / "run" / "checkpoints", s) for s in (4, 6)])
    saved = checkpoint.load(tmp_path / "run" / "model" / "model.pt")["model"]
    assert all(torch.allclose(saved[k], expected[k]) for k in expected)
    words = (tmp_path / "run" / "model" / "source_words.txt").read_text().split()  # for --copy-unseen
    assert words == sorted(words) and {"cat", "sleeps"} <= set(words) and "chat" not in words
