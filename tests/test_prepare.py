"""The data step on small corpora written here, plus one run on the real corpora when they are present."""

import gzip
import hashlib
import json
import random
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from seq2seq.data import prepare as prep
from seq2seq.data.corpora import MULTI30K_SPLITS, DataError
from seq2seq.data.prepare import components, manifest_sha256, prepare, read_split, split_tatoeba
from seq2seq.data.text import clean

ROOT = Path(__file__).resolve().parents[1]
REAL_RAW = ROOT.parent / "shared" / "data"
LONG = " ".join(["mot"] * 81)  # over filters.max_words = 80
RATIO = ("one two three four five six seven", "un")  # 7 words vs 1, longer side > 5: max_ratio
EMPTY = ("\u200b", "rien")  # empty once cleaned


def quiet(_):
    pass


def write_gz(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{line}\n" for line in lines)


def tatoeba_pairs(n: int = 120) -> list[tuple[str, str]]:
    """English sentences with 1–3 French translations; some share one; a few pairs for the filters."""
    rng = random.Random(0)
    pairs = []
    for i in range(n):
        for k in range(rng.choice([1, 1, 1, 2, 3])):
            pairs.append((f"English\u00a0sentence  {i} .", f"Phrase {i} traduite {k}\u202f!"))
    pairs += [(f"English sentence {i + 1} .", f"Phrase {i} traduite 0 !") for i in range(0, n, 10)]
    pairs += [("I have been to France .", "Je suis allé en France .")] * 2  # an exact duplicate
    pairs += [("Hi .", "Salut !"), ("Hello .", "Salut !")]  # two English sentences, one French
    rng.shuffle(pairs)
    return pairs + [EMPTY, RATIO, (LONG, LONG)]


def make_raw(root: Path) -> Path:
    raw = root / "raw"
    write_gz(raw / "tatoeba" / "fra-eng.tsv.gz", [f"{en}\t{fr}" for en, fr in tatoeba_pairs()])
    for split in MULTI30K_SPLITS:
        en = [f"A man rides a horse {split} {i} ." for i in range(6)]
        fr = [f"Un homme monte à cheval {split} {i} ." for i in range(6)]
        if split == "train":
            en[:4], fr[:4] = ["", RATIO[0], LONG, "Two  dogs"], ["Vide", RATIO[1], LONG, "Deux\tchiens"]
        else:
            en[0] = "\t"  # an empty line in a held-out set stays, to keep the lines aligned
        write_gz(raw / "multi30k" / f"{split}.en.gz", en)
        write_gz(raw / "multi30k" / f"{split}.fr.gz", fr)
    return raw


def data_cfg(root: Path, out: str = "out", **overrides):
    cfg = OmegaConf.load(ROOT / "conf" / "data" / "default.yaml")
    cfg.raw_dir = str(root / "raw")
    cfg.out_dir = str(root / out)
    cfg.download = False
    cfg.split.valid_sentences, cfg.split.test_sentences = 20, 30
    cfg.augment.enabled, cfg.names_set.size = False, 0  # the split alone; augmentation: tests/test_augment.py
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    return cfg


@pytest.fixture
def raw(tmp_path):
    return make_raw(tmp_path)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def test_outputs_and_manifest(tmp_path, raw):
    logs = []
    manifest = prepare(data_cfg(tmp_path), log=logs.append)
    out = tmp_path / "out"
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert set(manifest["splits"]) == {"tatoeba/train", "tatoeba/valid", "tatoeba/test", "multi30k/train",
                                       "multi30k/val", "multi30k/test_2016_flickr", "multi30k/test_2017_flickr"}
    for split in manifest["splits"].values():
        for f in split["files"].values():
            assert hashlib.sha256((out / f["path"]).read_bytes()).hexdigest() == f["sha256"]
            assert len(lines(out / f["path"])) == split["pairs"]
    assert set(manifest["sources"]) == {"tatoeba/fra-eng.tsv.gz"} | {
        f"multi30k/{s}.{lang}.gz" for s in MULTI30K_SPLITS for lang in ("en", "fr")}
    assert manifest["seed"] == 1234 and manifest["filters"]["max_words"] == 80
    assert manifest_sha256(out) == hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert any("tatoeba/train" in line for line in logs) and any("max_ratio" in line for line in logs)

    # Multi30k: train filtered; held-out sets cleaned only, every line kept.
    assert manifest["dropped"]["multi30k"] == {"empty": 1, "min_words": 0, "max_words": 1, "max_ratio": 1}
    en, fr = read_split(out, "multi30k/train", "en", "fr")
    assert en[0] == "Two dogs" and fr[0] == "Deux chiens" and len(en) == 3
    en, fr = read_split(out, "multi30k/val", "fr", "en")
    assert len(en) == 6 and fr[0] == "" and en[0] == "Un homme monte à cheval val 0 ."

    # Tatoeba: the empty pair is dropped before the split; filters apply to train only.
    dropped = manifest["dropped"]["tatoeba"]
    assert dropped["empty"] == 1
    train_en, _ = read_split(out, "tatoeba/train", "en", "fr")
    held = lines(out / "tatoeba/valid.en") + lines(out / "tatoeba/test.en")
    assert LONG not in train_en and RATIO[0] not in train_en
    assert (LONG in held) == (dropped["max_words"] == 0) and (RATIO[0] in held) == (dropped["max_ratio"] == 0)


def test_held_out_sets_by_sentence(tmp_path, raw):
    prepare(data_cfg(tmp_path), log=quiet)
    out = tmp_path / "out"
    pairs = [(clean(en), clean(fr)) for en, fr in tatoeba_pairs() if clean(en)]
    first_translation = {}
    for en, fr in pairs:
        first_translation.setdefault(en, fr)
    train_en, train_fr = read_split(out, "tatoeba/train", "en", "fr")
    seen = set(train_en) | set(train_fr)
    for name, size in (("valid", 20), ("test", 30)):
        en, fr = read_split(out, f"tatoeba/{name}", "en", "fr")
        assert len(en) == len(set(en)) == size
        assert fr == [first_translation[e] for e in en]
        assert not (set(en) | set(fr)) & seen
        seen |= set(en) | set(fr)
        held_fr = {f for e, f in pairs if e in set(en)}  # every translation of a held-out sentence
        assert not held_fr & set(train_fr)


def test_components_never_straddle_splits():
    pairs = [(clean(en), clean(fr)) for en, fr in tatoeba_pairs()[:-3]]
    comps = components(pairs)
    assert sorted(i for c in comps for i in c) == list(range(len(pairs)))
    by_sentence = {}
    for k, comp in enumerate(comps):
        for i in comp:
            for sentence in pairs[i]:
                assert by_sentence.setdefault(sentence, k) == k
    assert len(comps) < len({en for en, _ in pairs})  # shared translations did merge some

    for seed in range(5):
        parts = split_tatoeba(pairs, 20, 30, seed)
        where = {}
        for name, split in parts.items():
            for pair in split:
                for sentence in pair:
                    where.setdefault(sentence, set()).add(name)
        for comp in comps:
            names = set().union(*(where.get(s, set()) for i in comp for s in pairs[i]))
            assert len(names) == 1, names
        assert sum(len(p) for p in parts.values()) <= len(pairs)


def test_deterministic_under_seed(tmp_path, raw):
    a = prepare(data_cfg(tmp_path, "a"), log=quiet)
    b = prepare(data_cfg(tmp_path, "b"), log=quiet)
    c = prepare(data_cfg(tmp_path, "c", seed=99), log=quiet)
    assert a["splits"] == b["splits"] and a["fingerprint"] == b["fingerprint"]
    assert c["fingerprint"] != a["fingerprint"]
    assert c["splits"]["tatoeba/test"] != a["splits"]["tatoeba/test"]
    assert c["splits"]["multi30k/train"] == a["splits"]["multi30k/train"]


def test_idempotent(tmp_path, raw):
    cfg = data_cfg(tmp_path)
    first = prepare(cfg, log=quiet)
    out = tmp_path / "out"
    files = sorted(out.rglob("*"))
    mtimes = [p.stat().st_mtime_ns for p in files]
    time.sleep(0.01)
    logs = []
    assert prepare(cfg, log=logs.append) == first
    assert logs == [f"data is up to date ({out / 'manifest.json'})"]
    assert sorted(out.rglob("*")) == files and [p.stat().st_mtime_ns for p in files] == mtimes

    logs.clear()
    prepare(cfg, force=True, log=logs.append)
    assert "up to date" not in "\n".join(logs)

    (out / "tatoeba" / "test.fr").write_text("tampered\n")  # a damaged output is redone
    with pytest.raises(DataError, match="changed since"):
        read_split(out, "tatoeba/test", "en", "fr")
    logs.clear()
    assert prepare(cfg, log=logs.append) == first and "up to date" not in "\n".join(logs)

    cfg.filters.max_words = 50  # so is a change of settings
    assert prepare(cfg, log=quiet)["fingerprint"] != first["fingerprint"]


def test_killed_run_leaves_no_manifest(tmp_path, raw, monkeypatch):
    cfg = data_cfg(tmp_path)
    prepare(cfg, log=quiet)
    calls = []
    real_write = prep.write_bytes

    def dying_write(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_write(path, data)

    monkeypatch.setattr(prep, "write_bytes", dying_write)
    with pytest.raises(KeyboardInterrupt):
        prepare(cfg, force=True, log=quiet)
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not list((tmp_path / "out").rglob(".*.tmp"))
    with pytest.raises(DataError, match="make data"):
        read_split(tmp_path / "out", "tatoeba/train", "en", "fr")


def test_only_listed_corpora(tmp_path, raw):
    manifest = prepare(data_cfg(tmp_path, corpora=["multi30k"]), log=quiet)
    assert set(manifest["splits"]) == {f"multi30k/{s}" for s in MULTI30K_SPLITS}
    assert set(manifest["dropped"]) == {"multi30k"}
    assert not (tmp_path / "out" / "tatoeba").exists()
    with pytest.raises(DataError, match=r"tatoeba/test.*make data"):
        read_split(tmp_path / "out", "tatoeba/test", "en", "fr")


def test_errors(tmp_path, raw):
    with pytest.raises(DataError, match=r"manifest\.json: run `make data`"):
        read_split(tmp_path / "nowhere", "tatoeba/test", "en", "fr")
    with pytest.raises(DataError, match="make data"):
        manifest_sha256(tmp_path / "nowhere")
    with pytest.raises(DataError, match="too few sentences"):
        prepare(data_cfg(tmp_path, **{"split.test_sentences": 10_000}), log=quiet)
    with pytest.raises(DataError, match="src_lang"):
        prepare(data_cfg(tmp_path, src_lang="de"), log=quiet)
    bad = raw / "multi30k" / "val.fr.gz"
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"multi30k/val\.fr\.gz"):
        prepare(data_cfg(tmp_path), log=quiet)


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_RAW / "SHA256SUMS").is_file(), reason="no ../shared/data")
def test_real_corpora(tmp_path):
    cfg = OmegaConf.load(ROOT / "conf" / "data" / "default.yaml")
    cfg.raw_dir, cfg.out_dir, cfg.download = str(REAL_RAW), str(tmp_path / "out"), False
    manifest = prepare(cfg, log=quiet)
    pairs = {name: split["pairs"] for name, split in manifest["splits"].items()}
    assert 150_000 < pairs["tatoeba/train"] < 163_847
    assert pairs["multi30k/train"] > 28_500
    assert (pairs["multi30k/val"], pairs["multi30k/test_2016_flickr"], pairs["multi30k/test_2017_flickr"]) == (
        1014, 1000, 1000)
    train_en, train_fr = read_split(cfg.out_dir, "tatoeba/train", "en", "fr")
    train = set(train_en) | set(train_fr)
    for name, size in (("valid", 1000), ("test", 2000)):
        en, fr = read_split(cfg.out_dir, f"tatoeba/{name}", "en", "fr")
        assert len(en) == len(set(en)) == size
        assert not (set(en) | set(fr)) & train
