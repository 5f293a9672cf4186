"""The verdict `seq2seq compare` prints and puts at the top of report.md, generated from the runs only.

For every test set and every run of a size and seed, the difference from the baseline with its 95% paired
bootstrap interval and p-value; with several seeds, the mean ± sd over seeds; then which of the
literature's predictions held (docs/COMPARISON.md gives them with their sources):

  * T5 (Raffel et al. 2020, Table 2): encoder–decoder > prefix-LM > causal decoder-only, and the
    encoder–decoder ahead of a decoder-only model of equal FLOPs (2P/M 39.82 vs prefix-LM P/M 37.98);
  * Zhang et al. 2022: prefix-LM attention closes most of the gap to the encoder–decoder.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

from seq2seq.errors import ReportError

if TYPE_CHECKING:  # report.py imports this module: the run type for annotations only
    from seq2seq.compare.report import Run


def groups(runs: list[Run]) -> dict[tuple[str, int], list[Run]]:
    """Runs of one size and seed: the units paired significance tests compare."""
    out: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        out.setdefault((run.size, run.seed), []).append(run)
    return out


def difference_interval(a: list[str], b: list[str], references: list[str], samples: int, seed: int = 12345,
                        metrics: tuple[str, ...] = ("bleu", "chrf")) -> dict[str, tuple[float, float, float, float]]:
    """Per metric, score(a) − score(b), the 95% paired bootstrap interval of that difference and its p-value:
    both systems' per-sentence sufficient statistics summed over the same resampled sentences (Koehn 2004);
    p as sacreBLEU computes it, the share of centred resampled differences at least as large as the observed
    one, (k + 1) / (n + 1)."""
    if not len(a) == len(b) == len(references):
        raise ReportError(f"{len(a)} and {len(b)} hypotheses for {len(references)} references: they must pair up")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(references), size=(samples, len(references)))
    out = {}
    for metric, scorer in (("bleu", BLEU()), ("chrf", CHRF())):
        if metric not in metrics:
            continue
        stats = [np.asarray(scorer._extract_corpus_statistics(h, [references]), dtype=np.int64) for h in (a, b)]
        score = [scorer._compute_score_from_stats(list(st.sum(0))).score for st in stats]
        diffs = [scorer._compute_score_from_stats(list(stats[0][d].sum(0))).score
                 - scorer._compute_score_from_stats(list(stats[1][d].sum(0))).score for d in draws]
        observed, diffs = score[0] - score[1], np.asarray(diffs)
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        p = (np.sum(np.abs(diffs - diffs.mean()) >= abs(observed)) + 1) / (samples + 1)
        out[metric] = (observed, float(lo), float(hi), float(p))
    return out


def variant(spec) -> str | None:
    """Which of the study's four designs a `systems` entry is."""
    if spec is None:
        return None
    if spec.get("model") == "transformer":
        return "encoder–decoder"
    if spec.get("match_flops"):
        return "FLOPs-matched"
    return "prefix-LM" if (spec.get("overrides") or {}).get("prefix_lm") else "causal"


def difference_lines(runs: list[Run], test_sets: dict, samples: int, baseline: str) -> list[str]:
    """One line per test set, size, seed and system: who is ahead of whom, by how much, how sure."""
    lines = []
    for name, (_, refs) in test_sets.items():
        for (size, seed), members in groups(runs).items():
            base = next((r for r in members if r.system == baseline), None)
            for other in (r for r in members if r is not base and base is not None):
                d, lo, hi, p = difference_interval(base.hypotheses(name), other.hypotheses(name), refs, samples,
                                                   metrics=("bleu",))["bleu"]
                ahead, behind = (base, other) if d >= 0 else (other, base)
                lo, hi = (lo, hi) if d >= 0 else (-hi, -lo)
                significance = ", significant" if p < 0.05 else ", not significant"
                lines.append(f"{name} ({size}, seed {seed}): {ahead.system} ahead of {behind.system} by {abs(d):.2f} "
                             f"BLEU (95% CI {lo:.2f} to {hi:.2f}, p = {p:.4f}{significance})")
    return lines


def seed_means(runs: list[Run], test_sets: dict) -> dict[tuple[str, str], dict[str, list[float]]]:
    """(system, size) -> test set -> BLEU of each seed."""
    out: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in runs:
        for name in test_sets:
            out.setdefault((r.system, r.size), {}).setdefault(name, []).append(r.results["test"][name]["bleu"])
    return out


def seed_lines(means: dict, test_sets: dict) -> list[str]:
    lines = []
    for name in test_sets:
        cells = [f"{system}_{size} {statistics.mean(v[name]):.2f} ± {statistics.stdev(v[name]):.2f}"
                 for (system, size), v in means.items() if len(v[name]) > 1]
        if cells:
            lines.append(f"{name}, mean ± sd over seeds: " + ", ".join(cells))
    return lines


def prediction_lines(means: dict, test_sets: dict, systems) -> list[str]:
    """Which predictions held, per size, counted over the test sets (mean BLEU over seeds)."""
    lines = []
    for size in dict.fromkeys(size for _, size in means):
        by_variant = {}
        for (system, s), v in means.items():
            kind = variant(systems.get(system)) if systems is not None else None
            if s == size and kind and kind not in by_variant:
                by_variant[kind] = {name: statistics.mean(v[name]) for name in test_sets}

        def ordered(a: str, b: str, by_variant: dict = by_variant) -> int:
            return sum(by_variant[a][n] > by_variant[b][n] for n in test_sets)

        n = len(test_sets)
        checks = [("encoder–decoder", "causal", "T5 and Zhang et al. 2022: the encoder–decoder beats the "
                   "parameter-matched causal decoder-only model"),
                  ("prefix-LM", "causal", "T5 and Zhang et al. 2022: prefix-LM attention beats causal attention"),
                  ("encoder–decoder", "prefix-LM", "T5: the encoder–decoder beats the prefix-LM decoder-only model"),
                  ("encoder–decoder", "FLOPs-matched",
                   "T5: at equal FLOPs (2P/M against P/M) the encoder–decoder leads")]
        for a, b, claim in checks:
            if a in by_variant and b in by_variant:
                k = ordered(a, b)
                held = "held" if k == n else "did not hold" if k == 0 else "held in part"
                lines.append(f"{size}: {claim}: {held} ({k} of {n} test sets)")
        if {"encoder–decoder", "prefix-LM", "causal"} <= by_variant.keys():
            shares = [(by_variant["prefix-LM"][t] - by_variant["causal"][t])
                      / (by_variant["encoder–decoder"][t] - by_variant["causal"][t])
                      for t in test_sets if by_variant["encoder–decoder"][t] > by_variant["causal"][t]]  # a gap
            if shares:
                share = statistics.mean(shares)
                lines.append(f"{size}: Zhang et al. 2022: prefix-LM closes most of the gap: "
                             f"{'held' if share > 0.5 else 'did not hold'} (it closes {100 * share:.0f}% on average)")
    return lines


def verdict(runs: list[Run], test_sets: dict, samples: int, baseline: str, systems=None) -> list[str]:
    """Every line of the verdict, in order: differences, seeds, predictions."""
    means = seed_means(runs, test_sets)
    return (difference_lines(runs, test_sets, samples, baseline) + seed_lines(means, test_sets)
            + prediction_lines(means, test_sets, systems))


def verdict_section(lines: list[str]) -> str:
    return ("## Verdict\n\nGenerated from the numbers below: BLEU differences from the baseline with the 95% paired "
            "bootstrap interval of the difference and its p-value; predictions from docs/COMPARISON.md.\n\n"
            + "\n".join(f"- {line}" for line in lines))

