"""Copy-robust augmentation, the names-and-numbers test set, and the keep-rate, on samples written here."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import pytest

from seq2seq.config import ConfigError, compose, validate
from seq2seq.data import augment
from seq2seq.data.augment import entity_kept, find_entities, load_lists, number_values, substitute
from seq2seq.data.corpora import DataError
from seq2seq.data.prepare import prepare, read_split
from seq2seq.evaluate import format_table, keep_rate
from tests.test_prepare import MULTI30K_SPLITS, data_cfg, quiet, write_gz

LISTS = load_lists()
NAMED = [  # pairs holding names, numbers and places on both sides
    ("Tom told Mary that he lives in Boston.", "Tom a dit à Mary qu'il vit à Boston."),
    ("We paid 1,250 euros in London.", "Nous avons payé 1 250 euros à Londres."),
    ("The train leaves at 7:45.", "Le train part à 7 h 45."),
    ("Meet me at 2:30.", "Rendez-vous à 14 h 30."),
    ("It's 3.5 km from Tom's house.", "C'est à 3,5 km de la maison de Tom."),
    ("I went to Germany in 1998.", "Je suis allé en Allemagne en 1998."),
    ("This watch cost 70,000 yen.", "Cette montre a coûté 70000 yens."),
    ("John gets up at 6:30.", "John se lève à 6h30."),
    ("It is the mother of Mary.", "C'est la mère de Mary."),
]
PLAIN = [("The cat sleeps.", "Le chat dort."), ("Will you come?", "Viendras-tu ?"),
         ("I have two dogs.", "J'ai deux chiens."), ("It's 3:30.", "Il est trois heures et demie.")]


def raw_with_names(root: Path) -> set[str]:
    """A small raw corpus in the shared layout whose sentences hold names, numbers and places; its sentences."""
    raw = root / "raw"
    rng = random.Random(0)
    names = ["Tom", "Mary", "John", "Alice"]
    cities = [("London", "Londres"), ("Boston", "Boston"), ("Brussels", "Bruxelles")]
    lines = []
    for i in range(400):
        name, (en_city, fr_city), n = rng.choice(names), rng.choice(cities), rng.randint(2, 99)
        lines.append(f"{name} saw {n} birds in {en_city} (k{i}).\t{name} a vu {n} oiseaux à {fr_city} (k{i}).")
        lines.append(f"The cat k{i} sleeps.\tLe chat k{i} dort.")
    write_gz(raw / "tatoeba" / "fra-eng.tsv.gz", lines)
    for split in MULTI30K_SPLITS:
        write_gz(raw / "multi30k" / f"{split}.en.gz", [f"A dog runs {split} {i}." for i in range(6)])
        write_gz(raw / "multi30k" / f"{split}.fr.gz", [f"Un chien court {split} {i}." for i in range(6)])
    return {s for line in lines for s in line.split("\t")}


def named_cfg(root: Path, out: str = "out", **overrides):
    return data_cfg(root, out, **{"augment.enabled": True, "augment.share": 1.0, "names_set.size": 20,
                                  "split.valid_sentences": 40, "split.test_sentences": 80, **overrides})


def test_finds_entities_on_both_sides_only():
    kinds = {(e.kind, e.en, e.fr) for e in find_entities(*NAMED[0], LISTS)}
    assert kinds == {("names", "Tom", "Tom"), ("names", "Mary", "Mary"), ("places", "Boston", "Boston")}
    assert {(e.en, e.fr) for e in find_entities(*NAMED[1], LISTS)} == {("1,250", "1 250"), ("London", "Londres")}
    assert [(e.en, e.fr, e.offset) for e in find_entities(*NAMED[3], LISTS)] == [("2:30", "14 h 30", 12)]
    assert [(e.en, e.fr) for e in find_entities(*NAMED[4], LISTS)] == [("Tom", "Tom"), ("3.5", "3,5")]
    for src, tgt in PLAIN:  # "Will" is no name; "3:30" is spelled out in French
        assert find_entities(src, tgt, LISTS) == []
    assert find_entities("Mary is here.", "Marie est ici.", LISTS) == []  # not verbatim in the target


def test_every_swap_holds_the_new_entity_on_both_sides():
    rng = random.Random(3)
    by_kind = {k: [p for p in LISTS.places if p.kind == k] for k in {p.kind for p in LISTS.places}}
    for src, tgt in NAMED * 20:
        entities = find_entities(src, tgt, LISTS)
        new_src, new_tgt, swaps = substitute(src, tgt, entities, rng, LISTS.names, by_kind)
        assert (new_src, new_tgt) != (src, tgt)
        for kind, en, fr in swaps:
            assert re.search(rf"(?<![\w-]){re.escape(en)}(?![\w-])", new_src), (new_src, en)
            assert re.search(rf"(?<![\w-]){re.escape(fr)}(?![\w-])", new_tgt), (new_tgt, fr)
            if kind == "names":
                assert en == fr and en in LISTS.names
            if kind == "places":
                old = next(e.place for e in entities if e.kind == "places")
                assert LISTS.all_places[en].kind == old.kind and LISTS.all_places[en].fr == fr
        assert len(swaps) == len(entities)
        assert all(not re.search(rf"\b{re.escape(e.en)}\b", new_src) for e in entities if e.kind != "numbers")
    one = find_entities("I have 1 cat in Paris.", "J'ai 1 chat à Paris.", LISTS)
    new_src, _, swaps = substitute("I have 1 cat in Paris.", "J'ai 1 chat à Paris.", one, rng, LISTS.names, by_kind)
    assert len(one) == 2 and [k for k, _, _ in swaps] == ["places"] and "have 1 cat" in new_src  # 1 stays (grammar)


def test_a_drawn_number_is_never_the_number_it_replaces():
    """A whole hour ("9h", 12 to draw from) or a short decimal would often come back unchanged: no swap."""
    for value, minutes in [(("t", 9, 0), False), (("t", 21, 0), False), (("t", 7, 45), True), (("d", 3, "5"), True)]:
        for seed in range(300):
            assert augment.draw_number(value, random.Random(seed), minutes) != value


def test_numbers_keep_their_shape_and_french_style():
    rng = random.Random(5)
    for src, tgt, pattern_en, pattern_fr in [
        (*NAMED[1], r"\d,\d{3} euros", r"\d \d{3} euros"),  # thousands: comma / space
        (*NAMED[6], r" \d\d,\d{3} yen", r" \d{5} yens"),  # French wrote it ungrouped: so does the copy
        (*NAMED[2], r"at \d{1,2}:\d\d\.", r"à \d{1,2} h \d\d\."),
        (*NAMED[3], r"at \d{1,2}:\d\d\.", r"à (1[3-9]|2[0-3]) h \d\d\."),  # 12 hours later in French
        (*NAMED[7], r"at \d{1,2}:\d\d\.", r"à \d{1,2}h\d\d\."),
        (*NAMED[4], r" \d\.\d km", r" \d,\d km"),
        (*NAMED[5], r"in (19|20)\d\d\.", r"en (19|20)\d\d\."),  # a year stays a year
        ("We married on October 20, 2013.", "Nous nous sommes mariés le 20 octobre 2013.",
         r"October ([2-9]|1\d|2[0-8]), (19|20)\d\d", r"le ([2-9]|1\d|2[0-8]) octobre (19|20)\d\d"),  # a day stays a day
    ]:
        for _ in range(10):
            entities = find_entities(src, tgt, LISTS, kinds=("numbers",))
            new_src, new_tgt, swaps = substitute(src, tgt, entities, rng, LISTS.names, {})
            assert re.search(pattern_en, new_src) and re.search(pattern_fr, new_tgt), (new_src, new_tgt)
            assert number_values(swaps[0][2]) & {augment._en_value(swaps[0][1])} or ":" in swaps[0][1]


def test_french_elision_follows_the_new_name():
    rng = random.Random(0)
    entities = find_entities(*NAMED[8], LISTS)
    seen = set()
    for _ in range(200):
        _, tgt, swaps = substitute(*NAMED[8], entities, rng, ("Alice", "Bruno"), {})
        seen.add(tgt)
    assert seen == {"C'est la mère d'Alice.", "C'est la mère de Bruno."}


def test_augment_pairs_is_deterministic_and_counts():
    pairs = NAMED + PLAIN
    a = augment.augment_pairs(pairs, LISTS, 2.0, random.Random(1))
    b = augment.augment_pairs(pairs, LISTS, 2.0, random.Random(1))
    c = augment.augment_pairs(pairs, LISTS, 2.0, random.Random(2))
    assert a == b and a[0] != c[0]
    copies, stats = a
    assert stats["eligible"] == len(NAMED) and stats["added"] == len(copies) == 2 * len(NAMED)
    assert augment.augment_pairs(pairs, LISTS, 0.0, random.Random(1))[1]["added"] == 0
    half = augment.augment_pairs(NAMED * 50, LISTS, 0.5, random.Random(1))[1]
    assert 0.35 * 450 < half["added"] < 0.65 * 450
    by_kind = augment.augment_pairs(NAMED, LISTS, {"numbers": 3}, random.Random(1))[1]  # names, places: none
    assert by_kind["added"] == 3 * sum(any(e.kind == "numbers" for e in find_entities(*p, LISTS)) for p in NAMED)


def test_data_step_augments_training_splits_only(tmp_path):
    sentences = raw_with_names(tmp_path)
    manifest = prepare(named_cfg(tmp_path), log=quiet)
    out = tmp_path / "out"
    assert {"tatoeba/train_augmented", "multi30k/train_augmented", "tatoeba/names"} <= set(manifest["splits"])
    assert [n for n in manifest["splits"] if n.endswith("_augmented")] == ["tatoeba/train_augmented",
                                                                         "multi30k/train_augmented"]
    record = manifest["augment"]
    assert record["enabled"] and record["share"] == 1.0 and record["seed"] == 1234
    assert record["lists"] == {k: hashlib.sha256((augment.LISTS_DIR / k).read_bytes()).hexdigest()
                               for k in ("names.txt", "places.tsv")}
    added = record["splits"]["tatoeba/train_augmented"]["added"]
    assert added == manifest["splits"]["tatoeba/train_augmented"]["pairs"] > 100
    assert manifest["splits"]["multi30k/train_augmented"]["pairs"] == 4  # "A dog runs train 2." to 5 (0 and 1 stay)
    train = set(zip(*read_split(out, "tatoeba/train", "en", "fr")))
    copies = list(zip(*read_split(out, "tatoeba/train_augmented", "en", "fr")))
    assert not set(copies) & train and all(s not in sentences for pair in copies for s in pair)
    for name in ("tatoeba/valid", "tatoeba/test", "multi30k/val", "multi30k/test_2016_flickr"):
        en, fr = read_split(out, name, "en", "fr")  # held-out sets: the raw sentences, untouched
        assert set(en) | set(fr) <= sentences | {f"{w} {name.split('/')[1]} {i}." for i in range(6) for w in
                                                 ("A dog runs", "Un chien court")}

    again = prepare(named_cfg(tmp_path, "again"), log=quiet)  # deterministic: the same bytes
    assert again["splits"] == manifest["splits"]
    other = prepare(named_cfg(tmp_path, "other", **{"augment.seed": 7}), log=quiet)
    assert other["splits"]["tatoeba/train_augmented"] != manifest["splits"]["tatoeba/train_augmented"]
    assert other["splits"]["tatoeba/train"] == manifest["splits"]["tatoeba/train"]


def test_switch_off_gives_todays_training_data(tmp_path):
    raw_with_names(tmp_path)
    on = prepare(named_cfg(tmp_path, "on"), log=quiet)
    off = prepare(named_cfg(tmp_path, "off", **{"augment.enabled": False, "names_set.size": 0}), log=quiet)
    assert set(off["splits"]) == {"tatoeba/train", "tatoeba/valid", "tatoeba/test"} | {
        f"multi30k/{s}" for s in MULTI30K_SPLITS}
    assert "augment" not in off and "names_set" not in off and off["fingerprint"] != on["fingerprint"]
    for name, split in off["splits"].items():  # byte-identical to the outputs with the switch on
        assert split == on["splits"][name]
    only_names = prepare(named_cfg(tmp_path, "names", **{"augment.enabled": False}), log=quiet)
    assert only_names["splits"]["tatoeba/names"] == on["splits"]["tatoeba/names"]  # one set for both arms
    assert only_names["augment"]["enabled"] is False


def test_names_set_never_uses_training_or_augmentation_names(tmp_path):
    raw_with_names(tmp_path)
    manifest = prepare(named_cfg(tmp_path), log=quiet)
    out = tmp_path / "out"
    en, fr = read_split(out, "tatoeba/names", "en", "fr")
    assert len(en) == manifest["names_set"]["pairs"] == 20 and manifest["names_set"]["eligible"] > 20
    train_words = set()
    for name in ("tatoeba/train", "tatoeba/train_augmented", "multi30k/train"):
        for side in read_split(out, name, "en", "fr"):
            train_words |= {w.lower() for s in side for w in re.findall(r"\w+", s)}
    test_en = set(read_split(out, "tatoeba/test", "en", "fr")[0])
    for src, tgt in zip(en, fr):
        person = src.split(" saw ")[0]
        assert person in LISTS.heldout_names and person not in LISTS.names and person.lower() not in train_words
        assert person in tgt and src not in test_en
        city = re.search(r" in (\w+)", src)[1]
        assert city.lower() not in train_words and city in {p.en for p in LISTS.heldout_places}
    prepare(named_cfg(tmp_path, "b"), log=quiet)
    assert read_split(tmp_path / "b", "tatoeba/names", "en", "fr") == (en, fr)  # deterministic


def test_bad_settings_fail_in_one_line(tmp_path):
    raw_with_names(tmp_path)
    for key, value, message in [("augment.share", -1, "data.augment.share"), ("augment.kinds", ["dates"], "kinds"),
                                ("augment.share", {"dates": 1}, "data.augment.share"),
                                ("names_set.size", -3, "data.names_set.size")]:
        with pytest.raises(DataError, match=message) as e:
            prepare(named_cfg(tmp_path, **{key: value}), log=quiet)
        assert "\n" not in str(e.value)


def test_keep_rate_on_hand_written_cases():
    src = ["We paid 1,250 euros in London.", "Amanda is at 7:45.", "It costs 3.5 euros.",
           "Tom has 2 cats in Brussels.", "The cat sleeps."]
    ref = ["Nous avons payé 1 250 euros à Londres.", "Amanda est à 7 h 45.", "Ça coûte 3,5 euros.",
           "Tom a 2 chats à Bruxelles.", "Le chat dort."]
    for hyps, kept in [
        (ref, 4),
        (["Nous avons payé 1250 euros à Londres.", "Amanda est à 19h45.", "Ça coûte 3.5 euros.",
          "Tom a 2 chats à Bruxelles.", ""], 4),  # ungrouped, 24-hour time, decimal point
        (["Nous avons payé 1\u00a0250 euros à Londres.", "Amanda est à 7:45.", "Ça coûte 3,5 euros.",
          "Tom a 2 chats à Bruxelles.", "x"], 4),  # NBSP counts as a space
        (["Nous avons payé 1,250 euros à Londres.", "Amanda est à 7 h 45.", "Ça coûte 3,5 euros.",
          "Tom a 2 chats à Bruxelles.", "x"], 4),  # the English grouping left as is
        (["Nous avons payé 1 250 euros à London.", "Amina est à 7 h 45.", "Ça coûte 35 euros.",
          "Tom a des chats à Bruxelles.", "x"], 0),  # place not in French, name changed, number changed or dropped
        (["Nous avons payé des euros à Londres.", "Amanda est à 7 h 45.", "Ça coûte 3,5 euros.",
          "Tom a 2 chats à Bus.", "x"], 2),
    ]:
        result = keep_rate(src, ref, hyps)
        assert result == {"rate": round(kept / 4, 4), "kept": kept, "n": 4}, hyps
    assert keep_rate(["The cat sleeps."], ["Le chat dort."], ["x"]) is None
    entity = find_entities("It is 12,500.", "C'est 12 500.", LISTS)[0]
    assert entity_kept(entity, "C'est 12\u202f500.") and not entity_kept(entity, "C'est 125 00.")
    table = format_table({"tatoeba/names": {"bleu": 1.0, "chrf": 2.0, "n": 4, "signature": {"bleu": "b", "chrf": "c"},
                                            "keep": keep_rate(src, ref, ref)}})
    assert "100.0% of 4" in table and "kept" in table


def test_bad_settings_fail_before_anything_runs():
    validate(compose())
    with pytest.raises(ConfigError, match=r"^data\.augment\.share must be a number >= 0 or a mapping .*, not -0\.5$"):
        validate(compose("data.augment.share=-0.5"))
    with pytest.raises(ConfigError, match=r"data\.names_set\.size must be an integer"):
        validate(compose("data.names_set.size=1.5"))
