"""Copy-robust training data: names, numbers and places swapped on both sides of a pair.

An entity is something the translation must carry through, found on BOTH sides of a pair:
- a name: a capitalised word of lists/names.txt (or names_heldout.txt) found verbatim in the target;
- a place: an English place of lists/places*.tsv whose French form is in the target;
- a number: a digit number of the source (`1,250`, `3.5`, `7:45`) whose value is in the target in any
  French form (`1 250`, `1250`, `1,250`, `3,5`, `7 h 45`, `19h45`, `7:45`).

`augment_pairs` adds, for a share of the training pairs holding one, copies whose entities are swapped
for others (names from names.txt, places of the same grammatical kind, random numbers of the same
shape written as each side wrote the original). `names_test_set` builds the names-and-numbers test
set from held-out test pairs with names and places that training never shows. `entity_kept` is the
check behind the keep-rate of `seq2seq.evaluate.keep_rate`.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

LISTS_DIR = Path(__file__).resolve().parent / "lists"
LIST_FILES = ("names.txt", "names_heldout.txt", "places.tsv", "places_heldout.tsv")
KINDS = ("names", "numbers", "places")

_NAME = re.compile(r"(?<![\w-])[^\W\d_]\w*(?:-[^\W\d_]\w*)*")  # a word that may be a name (no apostrophe)
_EN_NUM = re.compile(r"(?<![\w.,:])(?:\d{1,2}:\d{2}|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?![\w]|[.,:]\d)")
_FR_NUM = re.compile(r"(?<![\w.,:])(?:\d{1,2} ?[hH] ?\d{2}|\d{1,2} ?[hH](?!\w)|\d{1,2}:\d{2}"
                     r"|\d{1,3}(?:[ .,]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?)(?![\w]|[.,:]\d)")
_FR_TIME = re.compile(r"(\d{1,2})( ?)([hH:])( ?)(\d{2})?")
_ELIDED = re.compile(r"(?<![\w'’])(d|qu|lorsqu|puisqu|jusqu)(['’])$", re.IGNORECASE)
_FULL = re.compile(r"(?<![\w'’])(de|que|lorsque|puisque|jusque) $", re.IGNORECASE)
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DAY_BEFORE = re.compile(rf"(?:{_MONTHS}) $")  # "October 20"
_DAY_AFTER = re.compile(rf"^ (?:of )?(?:{_MONTHS})\b")  # "20 October", "20 of October"
_VOWELS = set("AEIOUYÀÂÄÆÉÈÊËÎÏÔÖŒÙÛÜaeiouy")


@dataclass(frozen=True)
class Place:
    en: str
    fr: str
    kind: str


@dataclass(frozen=True)
class Lists:
    """The word lists: names and places to draw from, and the held-out ones of the names test set."""

    names: tuple[str, ...]
    heldout_names: tuple[str, ...]
    places: tuple[Place, ...]
    heldout_places: tuple[Place, ...]
    sha256: dict = field(default_factory=dict, compare=False)

    @cached_property
    def known_names(self) -> frozenset[str]:
        """What a capitalised word must be to count as a name."""
        return frozenset(self.names) | frozenset(self.heldout_names)

    @cached_property
    def all_places(self) -> dict[str, Place]:
        return {p.en: p for p in self.heldout_places + self.places}

    @cached_property
    def place_regex(self) -> re.Pattern:
        """Any English place of the lists, longest first ("New York" before "York")."""
        names = sorted(self.all_places, key=len, reverse=True)
        return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, names)) + r")(?![\w-])")


@dataclass
class Entity:
    """One entity of a pair: its text on each side and where it occurs (character spans)."""

    kind: str  # "names", "numbers" or "places"
    en: str
    fr: str
    en_spans: list[tuple[int, int]]
    fr_spans: list[tuple[int, int]]
    value: tuple = ()  # numbers: ("i", n) | ("d", int part, decimals) | ("t", hour, minute)
    offset: int = 0  # times: French hour minus English hour (0 or 12)
    day: bool = False  # numbers: a day of a month ("October 20", "20 October")
    place: Place | None = None


# ---------------------------------------------------------------------------------------------- lists

def _rows(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]


def _places(path: Path) -> tuple[Place, ...]:
    out = []
    for number, line in enumerate(_rows(path), 1):
        cells = line.split("\t")
        if len(cells) != 3:
            raise ValueError(f"{path}: row {number} needs english<TAB>french<TAB>kind")
        out.append(Place(*cells))
    return tuple(out)


@lru_cache(maxsize=4)
def load_lists(directory: str | Path = LISTS_DIR) -> Lists:
    """The lists of `directory` (default: the committed seq2seq/data/lists/), with their SHA256s."""
    d = Path(directory)
    return Lists(tuple(_rows(d / "names.txt")), tuple(_rows(d / "names_heldout.txt")),
                 _places(d / "places.tsv"), _places(d / "places_heldout.tsv"),
                 {name: hashlib.sha256((d / name).read_bytes()).hexdigest() for name in LIST_FILES})


# ---------------------------------------------------------------------------------------------- numbers

def number_values(token: str) -> set[tuple]:
    """Every value a digit token can mean: `1,250` -> 1250 or 1.250; `7 h 45` -> 7:45; `8 h` -> 8:00 or 8."""
    if m := _FR_TIME.fullmatch(token):
        hour, minute = int(m[1]), int(m[5] or 0)
        return {("t", hour, minute)} | ({("i", hour)} if m[5] is None and m[3] != ":" else set())
    parts = re.split(r"([ .,])", token)
    digits, seps = parts[0::2], parts[1::2]
    values = set()
    if not seps:
        values.add(("i", int(token)))
    if all(len(g) == 3 for g in digits[1:]) and len(set(seps)) == 1:
        values.add(("i", int("".join(digits))))  # grouped thousands, whatever the separator
    if len(seps) >= 1 and len(set(seps[:-1])) <= 1 and seps[-1] in ".,":
        head = digits[:-1]
        if len(head) == 1 or all(len(g) == 3 for g in head[1:]):
            values.add(("d", int("".join(head)), digits[-1]))  # decimal point or comma
    return values


def _en_value(token: str) -> tuple:
    if ":" in token:
        hour, minute = token.split(":")
        return ("t", int(hour), int(minute))
    whole, _, decimals = token.replace(",", "").partition(".")
    return ("d", int(whole), decimals) if decimals else ("i", int(whole))


def _time_match(value: tuple, candidates: set[tuple]) -> int | None:
    """The hour offset (0 or 12) under which an English time is among a French token's values."""
    for offset in (0, 12):
        if value[0] == "t" and ("t", value[1] + offset, value[2]) in candidates:
            return offset
    return 0 if value in candidates else None


def _numbers(src: str, tgt: str) -> list[Entity]:
    found, used = [], set()
    fr_tokens = [(m.span(), m[0], number_values(m[0])) for m in _FR_NUM.finditer(tgt)]
    for m in _EN_NUM.finditer(src):
        value = _en_value(m[0])
        for span, token, candidates in fr_tokens:
            offset = _time_match(value, candidates)
            if span not in used and offset is not None:
                used.add(span)
                day = bool(_DAY_BEFORE.search(src[:m.start()]) or _DAY_AFTER.match(src[m.end():]))
                found.append(Entity("numbers", m[0], token, [m.span()], [span], value, offset, day=day))
                break
    return found


def _group(n: int, sep: str) -> str:
    return f"{n:,}".replace(",", sep)


def render_en(value: tuple, like: str) -> str:
    """`value` written as the English token `like` was (thousands commas or not)."""
    if value[0] == "t":
        return f"{value[1]}:{value[2]:02d}"
    whole = _group(value[1], ",") if "," in like else str(value[1])
    return f"{whole}.{value[2]}" if value[0] == "d" else whole


def render_fr(value: tuple, like: str, offset: int = 0) -> str:
    """`value` written in the French style of the token `like`: `7 h 45`/`7h45`/`7:45`, `1 250`/`1250`, `3,5`."""
    if value[0] == "t":
        m = _FR_TIME.fullmatch(like)
        minutes = "" if m[5] is None and m[3] != ":" else f"{value[2]:02d}"
        return f"{value[1] + offset}{m[2]}{m[3]}{m[4] if minutes else ''}{minutes}"
    grouped = re.fullmatch(r"\d{1,3}([ .,])\d{3}.*", like)
    decimal = re.search(r"[.,](\d+)$", like)
    sep = grouped[1] if grouped and not (decimal and len(decimal[1]) != 3 and grouped[1] in ".,") else ""
    whole = _group(value[1], sep) if sep else str(value[1])
    if value[0] == "d":
        return f"{whole}{like[-len(value[2]) - 1] if decimal else ','}{value[2]}"
    return whole


def draw_number(value: tuple, rng: random.Random, has_minutes: bool = True, offset: int = 0,
                day: bool = False) -> tuple | None:
    """Another number of the same shape (digit count, decimals, a time, a year, a day of a month), or None
    for 0 and 1 (grammar: "1 cat", "le 1er")."""
    kind = value[0]
    if day and kind == "i" and 2 <= value[1] <= 31:
        return ("i", rng.choice([d for d in range(2, 29) if d != value[1]]))
    if kind == "t":
        top = 11 if offset else (12 if value[1] <= 12 else 23)
        bottom = 1 if value[1] <= 12 else 13
        hour, minute = rng.randint(bottom, top), rng.randrange(60) if has_minutes else 0
        if (hour, minute) == value[1:]:  # the same time would be no swap ("9h" has 12 to draw from): the next hour
            hour = bottom + (hour + 1 - bottom) % (top - bottom + 1)
        return ("t", hour, minute)
    if kind == "i" and value[1] < 2:
        return None
    digits = len(str(value[1]))
    if kind == "i" and 1000 <= value[1] <= 2099:  # a year stays a year of its century range
        whole = rng.randint(1900, 2099) if value[1] >= 1900 else rng.randint(1000, 1899)
    else:
        whole = rng.randint(max(2 if kind == "i" else 0, 10 ** (digits - 1) if digits > 1 else 0), 10 ** digits - 1)
    if kind == "d":
        decimals = "".join(str(rng.randrange(10)) for _ in value[2])
        if (whole, decimals) == value[1:]:  # the same number would be no swap: change its last decimal
            decimals = decimals[:-1] + str((int(decimals[-1]) + 1) % 10)
        return ("d", whole, decimals)
    return ("i", whole if whole != value[1] else (whole % (10 ** digits - 2)) + 2)


# ---------------------------------------------------------------------------------------------- finding

def _word_spans(text: str, word: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text)]


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in taken)


def find_entities(src: str, tgt: str, lists: Lists, kinds=KINDS) -> list[Entity]:
    """The names, places and numbers of `src` that `tgt` carries too (places first, then names)."""
    found: list[Entity] = []
    taken_en: list[tuple[int, int]] = []
    taken_fr: list[tuple[int, int]] = []
    if "places" in kinds:
        places = lists.all_places
        for en in dict.fromkeys(m[0] for m in lists.place_regex.finditer(src)):
            place = places[en]
            fr_spans = _word_spans(tgt, place.fr)
            if fr_spans:
                found.append(Entity("places", en, place.fr, _word_spans(src, en), fr_spans, place=place))
    if "names" in kinds:
        for m in _NAME.finditer(src):
            word = m[0]
            if word in lists.known_names and all(e.en != word for e in found):
                fr_spans = _word_spans(tgt, word)
                if fr_spans:
                    found.append(Entity("names", word, word, _word_spans(src, word), fr_spans))
    for e in found:
        e.en_spans = [s for s in e.en_spans if not _overlaps(s, taken_en)]
        e.fr_spans = [s for s in e.fr_spans if not _overlaps(s, taken_fr)]
        taken_en += e.en_spans
        taken_fr += e.fr_spans
    found = [e for e in found if e.en_spans and e.fr_spans]
    if "numbers" in kinds:
        found += [e for e in _numbers(src, tgt) if not _overlaps(e.en_spans[0], taken_en)]
    return found


def entity_kept(entity: Entity, hypothesis: str) -> bool:
    """Whether a translation carries `entity`: the name exactly, a place in French, a number in any form."""
    hypothesis = hypothesis.replace("\u00a0", " ").replace("\u202f", " ")
    if entity.kind != "numbers":
        return bool(_word_spans(hypothesis, entity.fr))
    for m in _FR_NUM.finditer(hypothesis):
        if _time_match(entity.value, number_values(m[0])) is not None:
            return True
    return False


# ---------------------------------------------------------------------------------------------- swapping

def _fix_elision(before: str, word: str) -> str:
    """French elision before a swapped word: `de Tom` -> `d'Anna`, `qu'Anna` -> `que Tom`."""
    vowel = word[:1] in _VOWELS
    if vowel and (m := _FULL.search(before)):
        return before[:m.start()] + m[1][:-1] + "'"
    if not vowel and (m := _ELIDED.search(before)):
        return before[:m.start()] + m[1] + "e "
    return before


def _replace(text: str, edits: list[tuple[int, int, str]], french: bool) -> str:
    for start, end, new in sorted(edits, reverse=True):  # right to left, so earlier spans stay valid
        before = _fix_elision(text[:start], new) if french else text[:start]
        text = before + new + text[end:]
    return text


def _swap(entity: Entity, rng: random.Random, names: tuple[str, ...], places: dict[str, list[Place]],
          used: set[str]) -> tuple[str, str] | None:
    """New (English, French) text for `entity`, or None when it cannot be swapped."""
    if entity.kind == "names":
        pool = [n for n in (rng.choice(names) for _ in range(20)) if n not in used] if names else []
        return (pool[0], pool[0]) if pool else None
    if entity.kind == "places":
        pool = [p for p in places.get(entity.place.kind, ()) if p.en not in used]
        if not pool:
            return None
        place = rng.choice(pool)
        return place.en, place.fr
    time = _FR_TIME.fullmatch(entity.fr)
    if (entity.value[0] == "t") != bool(time):
        return None  # "10" against "10 h": left as it is
    minutes = not time or time[5] is not None or time[3] == ":"
    new = draw_number(entity.value, rng, minutes, entity.offset, entity.day)
    if new is None:
        return None
    return render_en(new, entity.en), render_fr(new, entity.fr, entity.offset)


def _by_kind(places) -> dict[str, list[Place]]:
    out: dict[str, list[Place]] = {}
    for p in places:
        out.setdefault(p.kind, []).append(p)
    return out


def substitute(src: str, tgt: str, entities: list[Entity], rng: random.Random, names: tuple[str, ...],
               places: dict[str, list[Place]]) -> tuple[str, str, list[tuple[str, str, str]]] | None:
    """The pair with every swappable entity swapped on both sides, and the swaps (kind, English, French)."""
    en_edits, fr_edits, swaps = [], [], []
    used = {e.en for e in entities}
    for e in entities:
        new = _swap(e, rng, names, places, used)
        if new is None:
            continue
        used.add(new[0])
        en_edits += [(s, t, new[0]) for s, t in e.en_spans]
        fr_edits += [(s, t, new[1]) for s, t in e.fr_spans]
        swaps.append((e.kind, *new))
    if not swaps:
        return None
    return _replace(src, en_edits, False), _replace(tgt, fr_edits, True), swaps


def augment_pairs(pairs: list[tuple[str, str]], lists: Lists, share: float | dict[str, float], rng: random.Random,
                  kinds=KINDS) -> tuple[list[tuple[str, str]], dict]:
    """Swapped copies of the pairs holding an entity: int(share) copies each, and one more with
    probability frac(share). `share` may be given by kind ({"numbers": 4, ...}; a kind left out gets
    none); a pair gets the largest share of the kinds it holds. Returns (the copies in the order of
    `pairs`, counts)."""
    shares = share if isinstance(share, dict) else dict.fromkeys(kinds, share)
    names, places = lists.names, _by_kind(lists.places)
    out, stats = [], {"eligible": 0, "added": 0, **dict.fromkeys(kinds, 0)}
    for src, tgt in pairs:
        entities = find_entities(src, tgt, lists, kinds)
        if not entities:
            continue
        stats["eligible"] += 1
        pair_share = max(float(shares.get(e.kind, 0.0)) for e in entities)
        whole = int(pair_share)
        for _ in range(whole + (rng.random() < pair_share - whole)):
            new = substitute(src, tgt, entities, rng, names, places)
            if new is not None:
                out.append(new[:2])
                stats["added"] += 1
                for kind in {k for k, _, _ in new[2]}:
                    stats[kind] += 1
    return out, stats


def unseen(lists: Lists, train_texts) -> tuple[tuple[str, ...], tuple[Place, ...], list[str]]:
    """Held-out names and places that no training sentence holds (any case) and no augmentation list has;
    and the held-out entries dropped for failing that."""
    seen: set[str] = set()
    for text in train_texts:
        seen.update(re.findall(r"\w+", text.lower()))
    drawn = set(lists.names) | {w for p in lists.places for w in (p.en, p.fr)}

    def fresh(word: str) -> bool:
        return word not in drawn and not any(w in seen for w in re.findall(r"\w+", word.lower()))

    names = tuple(n for n in lists.heldout_names if fresh(n))
    places = tuple(p for p in lists.heldout_places if fresh(p.en) and fresh(p.fr))
    dropped = sorted(set(lists.heldout_names) - set(names)) + sorted({p.en for p in lists.heldout_places} -
                                                                      {p.en for p in places})
    return names, places, dropped


def names_test_set(test_pairs: list[tuple[str, str]], train_texts, lists: Lists, size: int,
                   seed: int) -> tuple[list[tuple[str, str]], dict]:
    """Up to `size` test pairs holding a swappable entity, with names and places swapped for held-out
    ones that training never shows and numbers for other numbers; deterministic under `seed`."""
    names, places, dropped = unseen(lists, train_texts)
    if len(names) < 10:
        raise ValueError(f"only {len(names)} held-out names are unseen in the training data (names_heldout.txt)")
    rng = random.Random(f"names-set:{seed}")
    by_kind = _by_kind(places)
    chosen = []
    for src, tgt in test_pairs:
        entities = find_entities(src, tgt, lists)
        kept_names = {m[0] for m in _NAME.finditer(src)} & lists.known_names - {e.en for e in entities}
        if not kept_names and substitute(src, tgt, entities, random.Random(0), names, by_kind) is not None:
            chosen.append((src, tgt, entities))  # (a listed name it cannot swap, e.g. Mary/Marie, stays out)
    eligible = len(chosen)
    if eligible > size:
        chosen = [chosen[i] for i in sorted(rng.sample(range(eligible), size))]
    out = [substitute(src, tgt, entities, rng, names, by_kind)[:2] for src, tgt, entities in chosen]
    info = {"pairs": len(out), "eligible": eligible, "names": len(names), "places": len(places),
            "dropped_seen_in_train": dropped}
    return out, info
