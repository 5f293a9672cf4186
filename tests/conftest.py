"""Shared fixtures: the real Hydra config composed from conf/, tiny models, a small parallel corpus."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest
import torch

from seq2seq.config import compose
from seq2seq.data.batching import collate, layout_of
from seq2seq.data.tokenizer import train_tokenizer
from seq2seq.evaluate import score
from seq2seq.model.build import build_model
from seq2seq.train.loss import label_smoothed_loss

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

torch.set_num_threads(1)


@pytest.fixture
def tiny_cfg():
    return compose("experiment=tiny")


WORDS_EN = "the a cat dog man woman sees likes eats red big small house ball runs sleeps".split()
FR = {"the": "le", "a": "un", "cat": "chat", "dog": "chien", "man": "homme", "woman": "femme", "sees": "voit",
      "likes": "aime", "eats": "mange", "red": "rouge", "big": "grand", "small": "petit", "house": "maison",
      "ball": "ballon", "runs": "court", "sleeps": "dort"}


def toy_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Word-for-word 'translations': enough structure for a tiny model to learn in seconds."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS_EN) for _ in range(rng.randint(2, 7))]
        out.append((" ".join(words).capitalize() + ".", " ".join(FR[w] for w in words).capitalize() + "."))
    return out


@pytest.fixture(scope="session")
def toy_tokenizer(tmp_path_factory):
    pairs = toy_pairs(2000)
    path = tmp_path_factory.mktemp("spm") / "toy.model"
    return train_tokenizer([s for p in pairs for s in p], path, vocab_size=400)


def write_toy_raw_corpus(raw: Path, n_tatoeba: int = 600, n_multi30k: int = 300) -> Path:
    """A tiny corpus in the layout of ../shared/data (no SHA256SUMS, so nothing to verify)."""
    (raw / "tatoeba").mkdir(parents=True, exist_ok=True)
    (raw / "multi30k").mkdir(parents=True, exist_ok=True)
    with gzip.open(raw / "tatoeba" / "fra-eng.tsv.gz", "wt", encoding="utf-8") as f:
        f.writelines(f"{en}\t{fr}\n" for en, fr in toy_pairs(n_tatoeba, seed=1))
    sizes = {"train": n_multi30k, "val": 40, "test_2016_flickr": 30, "test_2017_flickr": 30}
    for i, (split, n) in enumerate(sizes.items()):
        pairs = toy_pairs(n, seed=10 + i)
        for lang, k in (("en", 0), ("fr", 1)):
            with gzip.open(raw / "multi30k" / f"{split}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.writelines(p[k] + "\n" for p in pairs)
    return raw


@pytest.fixture
def toy_data_overrides(tmp_path):
    """Hydra overrides that point the data step at a freshly written toy corpus under tmp_path."""
    raw = write_toy_raw_corpus(tmp_path / "raw")
    return [f"data.raw_dir={raw}", f"data.out_dir={tmp_path / 'data'}", "data.download=false",
            "data.split.valid_sentences=20", "data.split.test_sentences=20"]


def memorisation_bleu(model_name: str, tokenizer, decode, steps: int = 300) -> float:
    """Train `model_name` (widened to d_model 64, no dropout) on 32 toy pairs as one batch for `steps`
    steps, then decode them with `decode(model, src) -> list of token lists`: the BLEU it reaches."""
    torch.manual_seed(0)
    pairs = toy_pairs(32, seed=7)
    ids = list(zip(tokenizer.encode([p[0] for p in pairs]), tokenizer.encode([p[1] for p in pairs])))
    cfg = compose(f"model={model_name}", "model.d_model=64", "model.d_ff=128", "model.dropout=0.0").model
    model = build_model(cfg, len(tokenizer))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98), eps=1e-9)
    batch = collate(ids, layout_of(cfg.kind))
    for _ in range(steps):
        loss, _ = label_smoothed_loss(model.logits(batch), batch.tgt_out, 0.0)
        optimizer.zero_grad()
        (loss / batch.tgt_tokens).backward()
        optimizer.step()
    model.eval()
    out = tokenizer.decode(decode(model, model.make_source([s for s, _ in ids])))
    return score(out, [p[1] for p in pairs])["bleu"]
