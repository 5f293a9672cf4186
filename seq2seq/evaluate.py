"""Scores with sacreBLEU (BLEU and chrF, cased, detokenized, 13a), always with their signatures.

`translate_and_score(translator, sources, references)` translates and scores one set; the result is the entry
that results.json keeps per test set: {bleu, chrf, signature: {bleu, chrf}, n, beam, seconds}, plus
bleu_ci95 / chrf_ci95 with bootstrap resampling.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF

from seq2seq.decode.config import SearchConfig


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


def write_lines(path: str | Path, lines: list[str]) -> None:
    from seq2seq.train.checkpoint import atomic_write

    atomic_write(path, lambda f: f.write("".join(line + "\n" for line in lines).encode()))



def translate_and_score(translator, sources: list[str], references: list[str], search: SearchConfig | None = None,
                        bootstrap: int = 0, **options) -> tuple[list[str], dict]:
    """Translate `sources` (default: beam search as in §6.1) and score them: (hypotheses, results entry).
    `options`: batch_size, batch_tokens, progress for `Translator.translate_full`."""
    search = search or SearchConfig()
    start = time.perf_counter()
    hypotheses = [t.text for t in translator.translate_full(sources, search, **options)]
    seconds = time.perf_counter() - start
    entry = score(hypotheses, references, bootstrap)
    return hypotheses, {**entry, "beam": search.beam, "precision": translator.precision,
                        "seconds": round(seconds, 1)}


def format_table(results: dict[str, dict]) -> str:
    """A table of {set name: results entry}, then the signatures: a score is never shown without one."""
    def cell(entry, key):
        ci = f" ± {entry[key + '_ci95']:.2f}" if key + "_ci95" in entry else ""
        return f"{entry[key]:.2f}{ci}"

    rows = [(name, cell(e, "bleu"), cell(e, "chrf"), str(e["n"])) for name, e in results.items()]
    widths = [max(len(r[i]) for r in rows + [("test set", "BLEU", "chrF", "n")]) for i in range(4)]
    lines = [f"{'test set':<{widths[0]}}  {'BLEU':>{widths[1]}}  {'chrF':>{widths[2]}}  {'n':>{widths[3]}}"]
    lines += [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d:>{widths[3]}}" for a, b, c, d in rows]
    signature = next(iter(results.values()))["signature"]
    lines += [f"BLEU: {signature['bleu']}", f"chrF: {signature['chrf']}"]
    if any("bleu_ci95" in e for e in results.values()):
        lines.append("±: half-width of the 95% confidence interval (sacreBLEU bootstrap resampling)")
    return "\n".join(lines)


def update_results(path: str | Path, test: dict[str, dict]) -> dict:
    """Merge test-set entries into results.json (other sets and sections are kept); written atomically."""
    from seq2seq.train.checkpoint import atomic_write

    path = Path(path)
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.setdefault("test", {}).update(test)
    atomic_write(path, lambda f: f.write(json.dumps(results, indent=2).encode()))
    return results
