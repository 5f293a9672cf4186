"""The data step: clean, filter and split the raw corpora into `{out_dir}/{corpus}/{split}.{en,fr}`.

Tatoeba is split by sentence: pairs that share a sentence (English or French) form one connected
component, and whole components go to valid, test or train, so no held-out sentence is trained on.
Multi30k keeps its official splits. Filters apply to training splits only. With `augment.enabled`, each
training split gets swapped copies of its pairs that hold a name, number or place
(`<corpus>/train_augmented`, seq2seq/data/augment.py); `names_set` builds `tatoeba/names` from
tatoeba/test. `manifest.json`, written last, records sources, settings, lists, outputs and their
SHA256s; a rerun with the same inputs does nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from seq2seq.data import augment
from seq2seq.data.corpora import (LANGS, MULTI30K_SPLITS, Corpora, DataError, locate, read_multi30k, read_tatoeba,
                                  sha256_file)
from seq2seq.data.text import clean
from seq2seq.io import write_bytes

VERSION = 3  # bump when a change here or in augment.py alters the outputs
MANIFEST = "manifest.json"
FILTERS = ("empty", "min_words", "max_words", "max_ratio")

Pairs = list[tuple[str, str]]


def _drop_empty(pairs: Pairs, dropped: dict[str, int]) -> Pairs:
    kept = [(s, t) for s, t in pairs if s and t]
    dropped["empty"] += len(pairs) - len(kept)
    return kept


def _filter(pairs: Pairs, filters, dropped: dict[str, int]) -> Pairs:
    """Training-pair filters; each dropped pair is counted under the first filter it fails."""
    kept = []
    for s, t in pairs:
        n, m = len(s.split()), len(t.split())
        shorter, longer = min(n, m), max(n, m)
        if shorter < filters.min_words:
            dropped["min_words"] += 1
        elif longer > filters.max_words:
            dropped["max_words"] += 1
        elif longer > filters.ratio_min_words and longer > filters.max_ratio * shorter:
            dropped["max_ratio"] += 1
        else:
            kept.append((s, t))
    return kept


def components(pairs: Pairs) -> list[list[int]]:
    """Pair indices grouped into connected components (pairs sharing any sentence, on either side).

    Each component lists its indices in increasing order; components are ordered by their first index.
    """
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}  # sentence -> first pair holding it; one namespace for both sides
    for i, pair in enumerate(pairs):
        for sentence in pair:
            j = owner.setdefault(sentence, i)
            if j != i:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(pairs)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda c: c[0])


def split_tatoeba(pairs: Pairs, valid_sentences: int, test_sentences: int, seed: int) -> dict[str, Pairs]:
    """Split by connected component into {"train": pairs, "valid": pairs, "test": pairs}.

    Components are shuffled with `seed`; each goes to the first of valid, test whose budget of English
    sentences it fits, else to train. Held-out sets keep each English sentence once, with its first
    French translation in file order as the reference.
    """
    comps = components(pairs)
    random.Random(seed).shuffle(comps)
    budget = {"valid": valid_sentences, "test": test_sentences}
    chosen: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for comp in comps:
        size = len({pairs[i][0] for i in comp})
        name = next((k for k, left in budget.items() if size <= left), "train")
        if name != "train":
            budget[name] -= size
        chosen[name].extend(comp)
    if any(budget.values()):
        raise DataError(f"Tatoeba has too few sentences for data.split (valid={valid_sentences}, "
                        f"test={test_sentences}): {budget} still unfilled")
    out = {"train": [pairs[i] for i in sorted(chosen["train"])]}
    for name in ("valid", "test"):
        first: dict[str, str] = {}
        for i in sorted(chosen[name]):
            first.setdefault(*pairs[i])
        out[name] = list(first.items())
    return out


def _fingerprint(sources: dict[str, str], settings: dict) -> str:
    blob = json.dumps({"version": VERSION, "sources": sources, **settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _settings(data_cfg) -> dict:
    settings = {
        "corpora": list(data_cfg.corpora),
        "seed": data_cfg.seed,
        "split": OmegaConf.to_container(data_cfg.split, resolve=True),
        "filters": OmegaConf.to_container(data_cfg.filters, resolve=True),
    }
    aug, names = augment_settings(data_cfg)
    if aug["enabled"] or names["size"]:
        settings.update(augment=aug, names_set=names, lists=augment.load_lists().sha256)
    return settings


def augment_settings(data_cfg) -> tuple[dict, dict]:
    """data.augment and data.names_set as checked plain dicts; DataError (one line) for a bad value."""
    return _augment_cfg(data_cfg), _names_cfg(data_cfg)


def _augment_cfg(data_cfg) -> dict:
    """data.augment as a plain dict (disabled when absent, as in configs older than it); checked."""
    cfg = data_cfg.get("augment")
    out = {"enabled": False, "share": 0.0, "seed": 0, "kinds": list(augment.KINDS)}
    out.update(OmegaConf.to_container(cfg, resolve=True) if cfg is not None else {})
    unknown = sorted(set(out["kinds"]) - set(augment.KINDS))
    if unknown or not out["kinds"]:
        raise DataError(f"data.augment.kinds must list some of {list(augment.KINDS)}, not {out['kinds']}")
    share = out["share"]
    values = share.values() if isinstance(share, dict) else [share]
    if (isinstance(share, dict) and set(share) - set(out["kinds"])) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in values):
        raise DataError(f"data.augment.share must be a number >= 0 or a mapping of data.augment.kinds to "
                        f"such numbers, not {share!r}")
    return out


def _names_cfg(data_cfg) -> dict:
    cfg = data_cfg.get("names_set")
    out = {"size": 0, "seed": 0, **(OmegaConf.to_container(cfg, resolve=True) if cfg is not None else {})}
    if not isinstance(out["size"], int) or isinstance(out["size"], bool) or out["size"] < 0:
        raise DataError(f"data.names_set.size must be an integer >= 0, not {out['size']!r}")
    return out


def _up_to_date(out_dir: Path, fingerprint: str) -> dict | None:
    """The manifest when it matches `fingerprint` and every file it lists is intact, else None."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("fingerprint") != fingerprint:
            return None
        for split in manifest["splits"].values():
            for f in split["files"].values():
                if sha256_file(out_dir / f["path"]) != f["sha256"]:
                    return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _build(corpora: Corpora, data_cfg) -> tuple[dict[str, Pairs], dict[str, dict[str, int]]]:
    """All splits as {"corpus/split": pairs} and the per-corpus drop counts."""
    splits: dict[str, Pairs] = {}
    dropped: dict[str, dict[str, int]] = {}
    if corpora.tatoeba:
        counts = dropped["tatoeba"] = dict.fromkeys(FILTERS, 0)
        pairs = [(clean(s), clean(t)) for s, t in read_tatoeba(corpora.tatoeba.path)]
        parts = split_tatoeba(_drop_empty(pairs, counts), data_cfg.split.valid_sentences,
                              data_cfg.split.test_sentences, data_cfg.seed)
        splits["tatoeba/train"] = _filter(parts["train"], data_cfg.filters, counts)
        splits["tatoeba/valid"], splits["tatoeba/test"] = parts["valid"], parts["test"]
    if corpora.multi30k:
        counts = dropped["multi30k"] = dict.fromkeys(FILTERS, 0)
        for split in MULTI30K_SPLITS:
            en, fr = read_multi30k(*(corpora.multi30k_file(split, lang).path for lang in LANGS))
            pairs = [(clean(s), clean(t)) for s, t in zip(en, fr)]
            if split == "train":  # held-out sets keep every line, so that they stay aligned
                pairs = _filter(_drop_empty(pairs, counts), data_cfg.filters, counts)
            splits[f"multi30k/{split}"] = pairs
    return splits, dropped


def _augment(splits: dict[str, Pairs], data_cfg) -> dict | None:
    """Add `<corpus>/train_augmented` beside every training split; their counts for the manifest."""
    cfg = _augment_cfg(data_cfg)
    if not cfg["enabled"]:
        return None
    lists = augment.load_lists()
    record = {**cfg, "lists": {k: v for k, v in lists.sha256.items() if "heldout" not in k}, "splits": {}}
    for name in [n for n in splits if n.endswith("/train")]:
        rng = random.Random(f"augment:{cfg['seed']}:{name}")
        copies, stats = augment.augment_pairs(splits[name], lists, cfg["share"], rng, tuple(cfg["kinds"]))
        splits[f"{name}_augmented"] = copies
        record["splits"][f"{name}_augmented"] = stats
    return record


def _names_set(splits: dict[str, Pairs], data_cfg) -> dict | None:
    """Add `tatoeba/names` (the names-and-numbers test set) when tatoeba/test is there."""
    cfg = _names_cfg(data_cfg)
    if not cfg["size"] or "tatoeba/test" not in splits:
        return None
    lists = augment.load_lists()
    train = [s for name, pairs in splits.items() if name.endswith("/train") for pair in pairs for s in pair]
    try:
        pairs, info = augment.names_test_set(splits["tatoeba/test"], train, lists, cfg["size"], cfg["seed"])
    except ValueError as e:
        raise DataError(f"data.names_set: {e}") from None
    splits["tatoeba/names"] = pairs
    return {**cfg, "lists": lists.sha256, **info}


def _summary(manifest: dict) -> str:
    rows = [f"{'split':<28}{'pairs':>9}"]
    rows += [f"{name:<28}{split['pairs']:>9,}" for name, split in manifest["splits"].items()]
    for corpus, counts in manifest["dropped"].items():
        rows.append(f"dropped ({corpus}): " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    for name, stats in manifest.get("augment", {}).get("splits", {}).items():
        rows.append(f"{name}: {stats['added']:,} copies of {stats['eligible']:,} pairs holding an entity (" +
                    ", ".join(f"{k} {stats[k]:,}" for k in augment.KINDS if k in stats) + ")")
    if "pairs" in manifest.get("names_set", {}):
        info = manifest["names_set"]
        rows.append(f"tatoeba/names: {info['pairs']} of {info['eligible']} test pairs, {info['names']} held-out "
                    f"names, {info['places']} held-out places")
    return "\n".join(rows)


def prepare(data_cfg, force: bool = False, log: Callable[[str], None] = print) -> dict:
    """Write the cleaned splits and manifest.json under `data_cfg.out_dir`; returns the manifest."""
    if sorted((data_cfg.src_lang, data_cfg.tgt_lang)) != sorted(LANGS):
        raise DataError(f"data.src_lang/tgt_lang must be en and fr (either way), not "
                        f"{data_cfg.src_lang}/{data_cfg.tgt_lang}")
    out_dir = Path(data_cfg.out_dir)
    corpora = locate(data_cfg, log=log)
    sources = {name: s.sha256 for name, s in corpora.sources.items()}
    settings = _settings(data_cfg)
    fingerprint = _fingerprint(sources, settings)
    if not force and (manifest := _up_to_date(out_dir, fingerprint)):
        log(f"data is up to date ({out_dir / MANIFEST})")
        return manifest

    splits, dropped = _build(corpora, data_cfg)
    extra = {"augment": _augment(splits, data_cfg), "names_set": _names_set(splits, data_cfg)}
    (out_dir / MANIFEST).unlink(missing_ok=True)  # no manifest may describe half-written splits
    manifest = {
        "version": VERSION,
        "fingerprint": fingerprint,
        **settings,
        "sources": {name: {"path": str(s.path), "sha256": s.sha256} for name, s in corpora.sources.items()},
        "splits": {},
        "dropped": dropped,
        **{k: v for k, v in extra.items() if v is not None},
    }
    for name, pairs in splits.items():
        files = {}
        for k, lang in enumerate(LANGS):
            rel = f"{name}.{lang}"
            data = "".join(f"{pair[k]}\n" for pair in pairs).encode("utf-8")
            write_bytes(out_dir / rel, data)
            files[lang] = {"path": rel, "sha256": hashlib.sha256(data).hexdigest()}
        manifest["splits"][name] = {"pairs": len(pairs), "files": files}
    write_bytes(out_dir / MANIFEST, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
    log(_summary(manifest))
    log(f"wrote {out_dir / MANIFEST}")
    return manifest


def _load_manifest(out_dir: Path) -> dict:
    try:
        return json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"no {out_dir / MANIFEST}: run `make data` first") from None
    except ValueError:
        raise DataError(f"{out_dir / MANIFEST} is corrupt: run `make data` again") from None


def read_split(out_dir: str | os.PathLike, name: str, src_lang: str, tgt_lang: str) -> tuple[list[str], list[str]]:
    """(sources, targets) of a prepared split such as "tatoeba/test", checked against the manifest."""
    out_dir = Path(out_dir)
    split = _load_manifest(out_dir)["splits"].get(name)
    if split is None:
        raise DataError(f"split {name!r} is not in {out_dir / MANIFEST}: run `make data` "
                        f"(with data.corpora listing its corpus)")
    lines = {}
    for lang in (src_lang, tgt_lang):
        if lang not in split["files"]:
            raise DataError(f"split {name!r} has no {lang!r} side (it has {sorted(split['files'])})")
        entry = split["files"][lang]
        path = out_dir / entry["path"]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{path} is missing: run `make data`") from None
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise DataError(f"{path} changed since the data step wrote it: run `make data`")
        lines[lang] = data.decode("utf-8").split("\n")[:-1]
    return lines[src_lang], lines[tgt_lang]


def manifest_sha256(out_dir: str | os.PathLike) -> str:
    """SHA256 of manifest.json: identifies the exact data a tokenizer or model was built from."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"no {path}: run `make data` first")
    return sha256_file(path)
