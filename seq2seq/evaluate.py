"""Scores with sacreBLEU (BLEU and chrF, cased, detokenized, 13a), always with their signatures.

`translate_and_score(translator, sources, references)` translates and scores one set; the result is the entry
that results.json keeps per test set: {bleu, chrf, signature: {bleu, chrf}, n, beam, seconds}, plus
bleu_ci95 / chrf_ci95 with bootstrap resampling, and `keep` (`keep_rate`) on a set whose sentences hold
names, numbers or places.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF

from seq2seq.data.augment import entity_kept, find_entities, load_lists
from seq2seq.decode.config import SearchConfig
from seq2seq.io import write_text


class _FloatScores:
    """sacreBLEU 2.x bootstrap: a resample scoring exactly 0 yields a Python float among numpy float32s,
    and `statistics.mean` refuses the mix (TypeError). Every resample's score is made a Python float."""

    def _compute_score_from_stats(self, stats):
        result = super()._compute_score_from_stats(stats)
        result.score = float(result.score)
        return result


class _BLEU(_FloatScores, BLEU):
    pass


class _CHRF(_FloatScores, CHRF):
    pass


def score(hypotheses: list[str], references: list[str], bootstrap: int = 0) -> dict:
    """Corpus BLEU and chrF. With `bootstrap` > 0, 95% confidence intervals from that many resamples."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    result = {"n": len(references), "signature": {}}
    for name, metric in (("bleu", _BLEU()), ("chrf", _CHRF())):
        s = metric.corpus_score(hypotheses, [references], n_bootstrap=bootstrap or 1)
        if bootstrap:  # sacreBLEU's bootstrap: half-width of the 95% interval of the resampled scores
            result[f"{name}_ci95"] = round(s._ci, 2)
        result[name] = round(s.score, 2)
        result["signature"][name] = str(metric.get_signature())
    return result


def keep_rate(sources: list[str], references: list[str], hypotheses: list[str], lists=None) -> dict | None:
    """The share of sentences whose translation keeps every name, number and place of the source.

    Entities are those of `seq2seq.data.augment.find_entities`: in the source AND the reference (so a
    number the reference spells out is not asked for). Kept means: a name exactly, a place in its French
    form, a number with the same value in any form (`1 250`, `1250`, `1,250`, NBSP as a space, decimal
    comma or point, `7 h 45`/`19h45`/`7:45`). Returns {"rate", "kept", "n"} over the sentences that hold
    an entity, or None when none does.
    """
    lists = lists or load_lists()
    kept = n = 0
    for src, ref, hyp in zip(sources, references, hypotheses, strict=True):
        entities = find_entities(src, ref, lists)
        if entities:
            n += 1
            kept += all(entity_kept(e, hyp) for e in entities)
    return {"rate": round(kept / n, 4), "kept": kept, "n": n} if n else None


WORD = re.compile(r"\w+(?:['’-]\w+)*")  # a word: letters and digits, with inner apostrophes and hyphens


def first_missed_word(hypothesis: str, reference: str) -> str | None:
    """The first word of the reference, in its order, that the hypothesis lacks as a word (case-sensitive), or
    None: the deterministic choice of a terminology constraint when measuring lexically constrained search."""
    have = set(WORD.findall(hypothesis))
    return next((w for w in WORD.findall(reference) if w not in have), None)


def constraint_coverage(translator, sources: list[str], references: list[str],
                        search: SearchConfig | None = None) -> dict:
    """How lexically constrained search fares on the sentences whose plain translation misses a word of the
    reference, each given the first such word as its one constraint: the share whose output then holds it
    (as text, and as a whole word), and the BLEU of those sentences before and after."""
    search = search or SearchConfig()
    plain = [t.text for t in translator.translate_full(sources, search)]
    missed = {i: w for i, (h, r) in enumerate(zip(plain, references)) if (w := first_missed_word(h, r))}
    rows, words = list(missed), list(missed.values())
    constrained = [t.text for t in translator.translate_full([sources[i] for i in rows], search,
                                                             constraints=[[w] for w in words])]
    subset = [references[i] for i in rows]
    return {"sentences": len(sources), "missing_a_word": len(rows), "beam": search.beam,
            "appears": sum(w in h for w, h in zip(words, constrained)),
            "appears_as_word": sum(w in WORD.findall(h) for w, h in zip(words, constrained)),
            "bleu_before": score([plain[i] for i in rows], subset)["bleu"],
            "bleu_after": score(constrained, subset)["bleu"],
            "examples": [{"source": sources[i], "constraint": w, "before": plain[i], "after": h}
                         for i, w, h in list(zip(rows, words, constrained))[:5]]}


def translate_and_score(translator, sources: list[str], references: list[str], search: SearchConfig | None = None,
                        bootstrap: int = 0, keep: bool = True, **options) -> tuple[list[str], dict]:
    """Translate `sources` (default: beam search as in §6.1) and score them: (hypotheses, results entry).
    `keep`: add the keep-rate (English sources, French references) where the set has names or numbers.
    `options`: batch_size, batch_tokens, progress for `Translator.translate_full`."""
    search = search or SearchConfig()
    start = time.perf_counter()
    hypotheses = [t.text for t in translator.translate_full(sources, search, **options)]
    seconds = time.perf_counter() - start
    entry = {**score(hypotheses, references, bootstrap), "beam": search.beam, "precision": translator.precision,
             "seconds": round(seconds, 1)}
    if keep and (kept := keep_rate(sources, references, hypotheses)):
        entry["keep"] = kept
    return hypotheses, entry


def format_table(results: dict[str, dict]) -> str:
    """A table of {set name: results entry}, then the signatures: a score is never shown without one."""
    def cell(entry, key):
        ci = f" ± {entry[key + '_ci95']:.2f}" if key + "_ci95" in entry else ""
        return f"{entry[key]:.2f}{ci}"

    head = ("test set", "BLEU", "chrF", "n")
    rows = [(name, cell(e, "bleu"), cell(e, "chrf"), str(e["n"])) for name, e in results.items()]
    if any("keep" in e for e in results.values()):  # names, numbers and places kept (keep_rate)
        head += ("kept",)
        rows = [r + (keep_cell(e.get("keep")),) for r, e in zip(rows, results.values())]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    lines = ["  ".join(f"{c:{'<' if i == 0 else '>'}{widths[i]}}" for i, c in enumerate(r)) for r in [head] + rows]
    signature = next(iter(results.values()))["signature"]
    lines += [f"BLEU: {signature['bleu']}", f"chrF: {signature['chrf']}"]
    if any("bleu_ci95" in e for e in results.values()):
        lines.append("±: half-width of the 95% confidence interval (sacreBLEU bootstrap resampling)")
    if len(head) > 4:
        lines.append("kept: sentences whose translation keeps every name, number and place of the source "
                     "(of those that hold one)")
    return "\n".join(lines)


def keep_cell(keep: dict | None) -> str:
    return f"{100 * keep['rate']:.1f}% of {keep['n']}" if keep else "—"


def update_results(path: str | Path, test: dict[str, dict]) -> dict:
    """Merge test-set entries into results.json (other sets and sections are kept); written atomically."""
    path = Path(path)
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.setdefault("test", {}).update(test)
    write_text(path, json.dumps(results, indent=2))
    return results
