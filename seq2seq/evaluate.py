"""Scores with sacreBLEU (BLEU and chrF, cased, detokenized, 13a), always with their signatures."""

from __future__ import annotations

from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF


def score(hypotheses: list[str], references: list[str], bootstrap: int = 0) -> dict:
    """Corpus BLEU and chrF. With `bootstrap` > 0, 95% confidence intervals from that many resamples."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    result = {"n": len(references), "signature": {}}
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
        s = metric.corpus_score(hypotheses, [references], n_bootstrap=bootstrap or 1)
        if bootstrap:  # sacreBLEU's bootstrap: half-width of the 95% interval of the resampled scores
            result[f"{name}_ci95"] = round(s._ci, 2)
        result[name] = round(s.score, 2)
        result["signature"][name] = str(metric.get_signature())
    return result


def write_lines(path: str | Path, lines: list[str]) -> None:
    from seq2seq.train.checkpoint import atomic_write

    atomic_write(path, lambda f: f.write("".join(line + "\n" for line in lines).encode()))
