"""Rebuild seq2seq/data/lists/names.txt and names_heldout.txt from Faker's first names.

Not needed to run the project: the committed lists are the source of truth. Needs `pip install faker`
and a prepared data/ (to keep out names that are also ordinary words of the corpora):

    python scripts/build_name_lists.py [--data data] [--size 3000] [--heldout 150]
"""

from __future__ import annotations

import argparse
import random
import re
import unicodedata
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LISTS = ROOT / "seq2seq" / "data" / "lists"
# capitalised on both sides of the corpus and among Faker's first names, but not people there
NOT_NAMES = {"Apollo", "Bali", "Carmel", "Francisco", "Hudson", "Kobe", "Luna", "Madison", "Man", "Mars", "Merlin",
             "Pearl", "Phoenix", "Sakura", "Valentine", "Van"}
NAME = re.compile(r"[A-ZÀ-Þ][a-zß-ÿā-ž]+(?:-[A-ZÀ-Þ][a-zß-ÿā-ž]+)?")


def latin(name: str) -> bool:
    return all(c == "-" or unicodedata.name(c, "").startswith("LATIN") for c in name)


def faker_first_names() -> tuple[str, dict[str, set[str]]]:
    import faker  # noqa: PLC0415 - lazy: faker is not a project dependency
    from faker import Faker  # noqa: PLC0415 - lazy: faker is not a project dependency
    from faker.config import AVAILABLE_LOCALES  # noqa: PLC0415 - lazy: faker is not a project dependency

    by_locale = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for locale in sorted(AVAILABLE_LOCALES):
            try:
                names = Faker(locale).provider("faker.providers.person").first_names
            except (AttributeError, ValueError):
                continue
            ok = {n for n in names if len(n) >= 3 and NAME.fullmatch(n) and latin(n)}
            if len(ok) > 20:
                by_locale[locale] = ok
    return faker.VERSION, by_locale


def corpus_words(data: Path) -> tuple[set[str], set[str], dict[str, int], set[str]]:
    """(every word, every lowercase word, capitalised words verbatim on both sides of tatoeba/train,
    every character of the training text)."""
    words: set[str] = set()
    chars: set[str] = set()
    for path in sorted(data.glob("*/*.en")) + sorted(data.glob("*/*.fr")):
        text = path.read_text(encoding="utf-8")
        words |= set(re.findall(r"\w+", text))
        if path.stem == "train":
            chars |= set(text)
    both: dict[str, int] = {}
    en = (data / "tatoeba/train.en").read_text(encoding="utf-8").splitlines()
    fr = (data / "tatoeba/train.fr").read_text(encoding="utf-8").splitlines()
    for e, f in zip(en, fr):
        fw = set(re.findall(r"\w+", f))
        for w in set(re.findall(r"\b[A-Z]\w+", e)) & fw:
            both[w] = both.get(w, 0) + 1
    return words, {w for w in words if w.islower()}, both, chars


def places() -> set[str]:
    out = set()
    for name in ("places.tsv", "places_heldout.tsv"):
        for line in (LISTS / name).read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#"):
                out |= set(line.split("\t")[:2])
    return out


def round_robin(by_locale: dict[str, set[str]], pool: set[str], n: int, rng: random.Random) -> list[str]:
    """`n` names of `pool`, one locale after another, so that no large locale (Icelandic) dominates."""
    chosen: list[str] = []
    left = {loc: sorted(names & pool) for loc, names in sorted(by_locale.items())}
    while len(chosen) < n and any(left.values()):
        for loc in [loc for loc, names in left.items() if names]:
            name = left[loc].pop(rng.randrange(len(left[loc])))
            if name not in chosen and len(chosen) < n:
                chosen.append(name)
    return chosen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=ROOT / "data")
    p.add_argument("--size", type=int, default=3000)
    p.add_argument("--heldout", type=int, default=150)
    args = p.parse_args()
    version, by_locale = faker_first_names()
    words, lower, both, chars = corpus_words(args.data)
    lowered = {w.lower() for w in lower}
    everything = {n for names in by_locale.values() for n in names} - places() - NOT_NAMES
    pool = {n for n in everything if n.lower() not in lowered and set(n) <= chars}
    rng = random.Random(17)
    corpus_names = sorted(n for n in everything if n in both)  # Tom, Mary, John, Bill...
    seen = {w.lower() for w in words}  # as the data step checks: any part, any case
    fresh = {n for n in pool if len(n) >= 4 and not any(w in seen for w in re.findall(r"\w+", n.lower()))}
    heldout = round_robin(by_locale, fresh, args.heldout, rng)
    rest = pool - set(corpus_names) - set(heldout)
    names = sorted(set(corpus_names) | set(round_robin(by_locale, rest, args.size - len(corpus_names), rng)))
    source = (f"# Source: first names of the person providers of Faker {version} (pypi.org/project/Faker), taken\n"
              f"# locale by locale; Latin script, 3+ letters, only characters the training text has, not a\n"
              f"# place of places.tsv, none an ordinary lowercase word of the corpora (except the names found\n"
              f"# on both sides of it); generated by scripts/build_name_lists.py (seed 17).\n")
    (LISTS / "names.txt").write_text(
        "# Person names for copy-robust augmentation: names found in the training data are swapped for\n"
        "# names drawn from this list, and a capitalised word is taken for a name only if it is listed here.\n"
        + source + "".join(n + "\n" for n in names), encoding="utf-8")
    (LISTS / "names_heldout.txt").write_text(
        "# Held-out person names for the names-and-numbers test set: in no split of the corpora and not in\n"
        "# names.txt (the data step checks both again and drops any that fails).\n"
        + source + "".join(n + "\n" for n in sorted(heldout)), encoding="utf-8")
    print(f"{len(names)} names ({len(corpus_names)} from the corpus), {len(heldout)} held out")


if __name__ == "__main__":
    main()
