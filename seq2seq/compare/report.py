"""compare/<name>/report.md from the runs' results.json and test hypotheses, nothing else.

Training figures and test scores are copied from results.json; confidence intervals and the significance
of each difference come from sacreBLEU's paired bootstrap resampling over the hypothesis files (Koehn
2004: the same resampled sentences for every system); BLEU by source length and the Elo tournament
(elo.py, per-sentence chrF) are computed from the same files. The corpus scores the bootstrap recomputes
must equal those in results.json, or the report refuses to mix them.
"""

from __future__ import annotations

import itertools
import json
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest

from seq2seq.compare import elo, plots
from seq2seq.compare.source_attention import SourceAttention, fades, fits, source_attention
from seq2seq.compare.verdict import groups, verdict, verdict_section
from seq2seq.data.corpora import sha256_file
from seq2seq.decode.config import SearchConfig
from seq2seq.errors import ReportError
from seq2seq.model.directory import load_model_dir
from seq2seq.translator import Translator

METRICS = ("bleu", "chrf")
ATTENTION_POSITIONS = (1, 5, 10, 20)  # target positions (from 1) the attention table shows


@dataclass
class Run:
    name: str  # e.g. gpt_tiny_s1
    system: str
    size: str
    seed: int
    directory: Path
    results: dict
    batch_tokens: int  # from the run's config.yaml

    @classmethod
    def load(cls, directory: Path, system: str, size: str, seed: int) -> Run:
        try:
            results = json.loads((directory / "results.json").read_text())
            batch_tokens = int(OmegaConf.load(directory / "config.yaml").trainer.batch_tokens)
        except (OSError, ValueError) as e:
            raise ReportError(f"{directory}: no usable results.json / config.yaml ({e})") from None
        return cls(f"{system}_{size}_s{seed}", system, size, seed, directory, results, batch_tokens)

    @property
    def params(self) -> int:
        return self.results["model"]["params"]

    def hypotheses(self, test_set: str) -> list[str]:
        path = self.directory / "test" / f"{test_set.replace('/', '.')}.hyp"
        try:
            return path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise ReportError(f"{path}: {e.strerror}") from None


def check_same_inputs(runs: list[Run]) -> dict[str, str]:
    """All runs trained on one data manifest, and the runs of one size with one tokenizer (the data directory
    is shared: a data step run in between would silently change them). Returns size -> tokenizer sha256."""
    manifests = {r.results["data"]["manifest_sha256"] for r in runs}
    if len(manifests) > 1:
        raise ReportError("the runs were trained on different data "
                          f"(manifests {', '.join(sorted(m[:12] for m in manifests))}); "
                          "train them again on one data step")
    tokenizers: dict[str, set[str]] = {}
    for r in runs:
        try:
            digest = sha256_file(r.directory / "spm.model")
        except OSError as e:
            raise ReportError(f"{r.directory / 'spm.model'}: {e.strerror}") from None
        tokenizers.setdefault(r.size, set()).add(digest)
    for size, digests in tokenizers.items():
        if len(digests) > 1:
            raise ReportError(f"the {size} runs used different tokenizers (spm.model differs); "
                              "train them again on one data step")
    return {size: next(iter(d)) for size, d in tokenizers.items()}


def paired_bootstrap(runs: list[Run], test_set: str, references: list[str], samples: int) -> dict[str, dict]:
    """sacreBLEU's paired bootstrap: per run {metric: (score, mean, ci half-width, p-value vs runs[0])}."""
    logging.getLogger("sacrebleu").setLevel(logging.WARNING)
    named = [(r.name, r.hypotheses(test_set)) for r in runs]
    for name, hyps in named:
        if len(hyps) != len(references):
            raise ReportError(f"{name}: {len(hyps)} hypotheses for {test_set} but {len(references)} references")
    _, scores = PairedTest(named, {"bleu": BLEU(), "chrf": CHRF()}, [references], test_type="bs", n_samples=samples)()
    columns = [scores[k] for k in scores if k != "System"]  # BLEU, then chrF2, as passed
    out = {}
    for i, run in enumerate(runs):
        out[run.name] = {}
        for metric, column in zip(METRICS, columns):
            res = column[i]
            stored = run.results["test"][test_set][metric]
            if round(res.score, 2) != stored:
                raise ReportError(f"{run.name}: {metric} of {test_set} recomputed from the hypotheses is "
                                  f"{res.score:.2f}, results.json says {stored}")
            out[run.name][metric] = (stored, res.mean, res.ci, res.p_value)
    return out


def length_buckets(bounds: list[int]) -> list[tuple[int, int | None]]:
    edges = [0, *bounds]
    return [(lo + 1, hi) for lo, hi in zip(edges, edges[1:])] + [(edges[-1] + 1, None)]


def bleu_by_length(runs: list[Run], test_sets: dict, bounds: list[int]) -> list[dict]:
    """Corpus BLEU per source-length bucket (words), all test sets pooled."""
    sources = [s for src, _ in test_sets.values() for s in src]
    references = [r for _, ref in test_sets.values() for r in ref]
    hyps = {run.name: [h for name in test_sets for h in run.hypotheses(name)] for run in runs}
    lengths = [len(s.split()) for s in sources]
    rows = []
    for lo, hi in length_buckets(bounds):
        idx = [i for i, n in enumerate(lengths) if n >= lo and (hi is None or n <= hi)]
        if not idx:
            continue
        refs = [[references[i] for i in idx]]
        bleu = {name: BLEU().corpus_score([h[i] for i in idx], refs).score for name, h in hyps.items()}
        rows.append({"bucket": f"{lo}–{hi}" if hi else f"{lo}+", "n": len(idx), "bleu": bleu})
    return rows


def tournament(runs: list[Run], test_sets: dict, samples: int = 200):
    """Every test sentence a game between every pair of runs, decided by sentence chrF: (ratings, games,
    95% bootstrap intervals of the ratings)."""
    chrf = CHRF()
    scores = {}
    for run in runs:
        scores[run.name] = [chrf.sentence_score(h, [r]).score
                            for name, (_, refs) in test_sets.items() for h, r in zip(run.hypotheses(name), refs)]
    games = elo.sentence_games(scores)
    return elo.elo_ratings(games, [r.name for r in runs]), games, elo.rating_intervals(scores, samples)


# ---------------------------------------------------------------------------------------------- markdown

def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def p_cell(p: float | None) -> str:
    return "baseline" if p is None else f"{p:.4f}{' *' if p < 0.05 else ''}"


def training_section(runs: list[Run]) -> str:
    rows = []
    for r in runs:
        t = r.results["train"]
        rows.append([r.name, f"{r.params:,}", f"{t['flops'] / max(t['tokens'], 1):,.0f}", f"{r.batch_tokens:,}",
                     f"{t['steps']:,}", f"{t['tokens']:,}", f"{t['flops']:.3e}", f"{t['seconds']:,.1f}",
                     f"{t['tokens_per_s']:,.0f}", t["stopped_by"]])
    header = ["run", "params", "train FLOPs/token", "batch tokens", "steps", "train tokens", "train FLOPs",
              "train s", "train tokens/s", "stopped by"]
    return "## Training\n\n" + table(header, rows) + (
        "\n\nFLOPs as seq2seq/train/flops.py counts them: 6 × parameters touched per token × tokens, plus attention "
        "scores and values for the actual lengths, forward and backward. `train s` counts training steps only.")


def test_section(runs: list[Run], test_sets: dict, samples: int, baseline: str) -> str:
    parts = []
    for name, (_, refs) in test_sets.items():
        rows = []
        for members in groups(runs).values():
            members = sorted(members, key=lambda r: r.system != baseline)  # the baseline first
            boot = paired_bootstrap(members, name, refs, samples)
            for r in members:
                entry = r.results["test"][name]
                b, c = boot[r.name]["bleu"], boot[r.name]["chrf"]
                rows.append([r.name, f"{b[0]:.2f}", f"{b[1]:.2f} ± {b[2]:.2f}", p_cell(b[3]),
                             f"{c[0]:.2f}", f"{c[1]:.2f} ± {c[2]:.2f}", p_cell(c[3]),
                             f"{entry['n'] / max(entry['seconds'], 1e-9):,.1f}"])
        header = ["run", "BLEU", "BLEU 95% CI", f"p (BLEU) vs {baseline}", "chrF", "chrF 95% CI",
                  f"p (chrF) vs {baseline}", "decode sent/s"]
        parts.append(f"### {name} ({len(refs):,} sentences)\n\n" + table(header, rows))
    first_test = runs[0].results["test"][next(iter(test_sets))]
    signature = first_test["signature"]
    return ("## Test scores\n\n"
            f"Beam search as the trainer ran it at the end (beam {first_test.get('beam', '?')}). "
            f"CI: mean ± half-width of the 95% interval over {samples} paired bootstrap resamples; p: the paired "
            f"bootstrap p-value of the difference from {baseline} of the same size and seed (* below 0.05).\n"
            f"BLEU: `{signature['bleu']}`  \nchrF: `{signature['chrf']}`\n\n" + "\n\n".join(parts))


def seeds_section(runs: list[Run], test_sets: dict) -> str:
    by_system: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        by_system.setdefault((run.system, run.size), []).append(run)
    rows = []
    for (system, size), members in by_system.items():
        row = [f"{system}_{size}", len(members), f"{members[0].params:,}"]
        for name in test_sets:
            for metric in METRICS:
                values = [r.results["test"][name][metric] for r in members]
                row.append(f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}")
        rows.append(row)
    header = ["system", "seeds", "params"] + [f"{name} {m.replace('bleu', 'BLEU').replace('chrf', 'chrF')}"
                                             for name in test_sets for m in METRICS]
    return "## Over seeds\n\nMean ± standard deviation over seeds.\n\n" + table(header, rows)


def length_section(rows: list[dict], runs: list[Run]) -> str:
    body = [[row["bucket"], f"{row['n']:,}"] + [f"{row['bleu'][r.name]:.2f}" for r in runs] for row in rows]
    return ("## BLEU by source length\n\nAll test sets pooled; buckets by source length in words.\n\n"
            + table(["source words", "sentences"] + [r.name for r in runs], body) + "\n\n![BLEU by length](length.png)")


def tournament_section(ratings: dict[str, float], games: list[tuple[str, str, float]],
                       intervals: dict[str, tuple[float, float]]) -> str:
    names, wins = elo.win_matrix(games, list(ratings))
    ranked = sorted(ratings, key=ratings.get, reverse=True)
    played = (wins + wins.T).sum(1)
    rows = [[i + 1, n, f"{ratings[n]:.1f}", f"{intervals[n][0]:.1f} to {intervals[n][1]:.1f}",
             f"{wins[names.index(n)].sum():,.1f}", f"{played[names.index(n)]:,.0f}"] for i, n in enumerate(ranked)]
    pairs = []
    for a, b in itertools.combinations(ranked, 2):
        results = [g[2] if g[0] == a else 1.0 - g[2] for g in games if {g[0], g[1]} == {a, b}]
        won, tied, lost = results.count(1.0), results.count(0.5), results.count(0.0)
        pairs.append([a, b, won, tied, lost, f"{(won + tied / 2) / len(results):.3f}",
                      f"{elo.expected_score(ratings[a], ratings[b]):.3f}"])
    return ("## Tournament\n\nEvery test sentence is a game between every pair of runs: higher sentence chrF wins, "
            "equal chrF ties (half a point each). Ratings: Bradley–Terry maximum likelihood on the Elo scale "
            "(expected score 1 / (1 + 10^((R_B − R_A)/400)), mean 1000), independent of the order of games; "
            "95% intervals from refitting on the test sentences resampled with replacement.\n\n"
            + table(["rank", "run", "Elo", "Elo 95% interval", "points", "games"], rows) + "\n\n"
            + table(["A", "B", "A wins", "ties", "B wins", "A's score", "expected from ratings"], pairs))


def decode_speed(model, tokenizer, sources: list[str]) -> dict[str, float]:
    """Sentences/s of greedy and beam-4 search over `sources` (batches of 64, as evaluated), and the mean
    seconds from a lone sentence to its first target piece (encoder, or source prefix, plus one step)."""
    translator = Translator(model, tokenizer)
    out = {}
    for label, search in (("greedy", SearchConfig(temperature=0.0)), ("beam 4", SearchConfig(beam=4))):
        start = time.perf_counter()
        translator.translate_full(sources, search)
        out[label] = len(sources) / (time.perf_counter() - start)
    ids = [s for s in tokenizer.encode(sources[:50]) if s]
    start = time.perf_counter()
    with torch.no_grad():
        for s in ids:
            src = model.make_source([s])
            model.step(model.begin(src), torch.full((1, 1), model.decoder_start_id, dtype=torch.long))
    out["first piece ms"] = 1000 * (time.perf_counter() - start) / max(len(ids), 1)
    return out


def speed_section(runs: list[Run], test_sets: dict, sentences: int) -> str | None:
    """Decode speed of every run that kept its model/, on the first `sentences` of each test set."""
    rows = []
    sources = [s for src, _ in test_sets.values() for s in src[:sentences]]
    for run in runs:
        if (run.directory / "model" / "model.pt").is_file():
            model, tokenizer, _ = load_model_dir(run.directory / "model")
            speed = decode_speed(model, tokenizer, sources)
            rows.append([run.name, f"{speed['greedy']:,.1f}", f"{speed['beam 4']:,.1f}",
                         f"{speed['first piece ms']:.1f}"])
    if not rows:
        return None
    return ("## Decode speed\n\nOne process, one after the other, on the first "
            f"{sentences} sentences of each test set ({len(sources):,} in all), fp32, "
            f"{torch.get_num_threads()} threads; time to the first piece: a lone sentence's encoder pass (the "
            "decoder-only model: its pass over the source) and first step, averaged over 50 sentences. Elfeki et "
            "al. (2025) find encoder–decoders faster to the first token below ~1B parameters.\n\n"
            + table(["run", "greedy sent/s", "beam 4 sent/s", "first piece (ms)"], rows))


def degeneration_line(profile: SourceAttention) -> str | None:
    """Whether the source's share of attention falls from target positions 1–5 to 16–20, and by how much
    beyond the fall that evenly spread attention would show over the same sentences; None when no sentence
    is that long."""
    drop, built_in = fades(profile.long_shares), fades(profile.long_even)
    if drop is None:
        return None
    beyond = drop - built_in
    reading = ("more than the built-in fall: attention leaves the source (Fu et al.'s degeneration)" if beyond > 0.02
               else "no more than the built-in fall: no degeneration beyond it" if beyond >= -0.02
               else "less than the built-in fall: the model holds on to the source")
    return (f"the source's share of attention {'falls' if drop > 0.02 else 'does not fall'} from positions "
            f"1–5 to 16–20 of the same {len(profile.long_shares)} sentences ({'down' if drop >= 0 else 'up'} by "
            f"{abs(drop):.2f}); attention spread evenly over the positions each can see would fall by "
            f"{built_in:.2f} (the built-in fall), so it falls {beyond:+.2f} beyond that: {reading}")


def attention_section(runs: list[Run], test_sets: dict, sentences: int, path: Path) -> str | None:
    """Attention to the source by target position (source_attention.py), teacher-forced on the first
    `sentences` references of each test set; None when no run kept its model/ directory."""
    profiles, rows, lines = {}, [], []
    for run in runs:
        if not (run.directory / "model" / "model.pt").is_file():
            continue
        model, tokenizer, _ = load_model_dir(run.directory / "model")
        sources = [s for src, _ in test_sets.values() for s in src[:sentences]]
        references = [r for _, ref in test_sets.values() for r in ref[:sentences]]
        pairs = [p for p in zip(tokenizer.encode(sources), tokenizer.encode(references)) if fits(model, *p)]
        profile = source_attention(model, pairs)
        entropy, share = profile.means(min_count=max(1, len(sources) // 20))
        profiles[run.name] = (entropy, share)
        rows.append([run.name] + [f"{entropy[t - 1]:.2f} / {share[t - 1]:.2f}" if t <= len(entropy) else "—"
                                  for t in ATTENTION_POSITIONS])
        if model.kind == "gpt" and (line := degeneration_line(profile)):
            lines.append(f"{run.name}: {line}")
    if not profiles:
        return None
    plots.source_attention(profiles, path)
    header = ["run"] + [f"position {t}: entropy / share" for t in ATTENTION_POSITIONS]
    return ("## Attention to the source by target position\n\nEvery system teacher-forced on the first "
            f"{sentences} references of each test set. Entropy (nats) of a target position's attention over "
            "the source pieces (the decoder-only model's restricted to the source block and renormalised), "
            "and the share of its attention on the source (1 for cross-attention; for the decoder-only model "
            "the rest goes to the target it has produced), averaged over layers, heads and sentences. Fu et al. "
            "(2023) report that decoder-only models attend less and less to the source as they generate. Part "
            "of such a fall is built in, since a later target position sees more target pieces; the control is "
            "the share under attention spread evenly over the positions a query can see, S / (S + t) for S "
            "source pieces (with <sep>) at target position t.\n\n"
            + table(header, rows) + ("\n\n" + "\n".join(f"- {line}" for line in lines) if lines else "")
            + f"\n\n![attention to the source]({path.name})")


def write_report(out_dir: Path, runs: list[Run], test_sets: dict[str, tuple[list[str], list[str]]], cfg,
                 command: str | None = None, verdict_lines: list[str] | None = None) -> Path:
    """Write report.md and its plots into `out_dir`; `test_sets` maps set name -> (sources, references);
    `command` is the command line that made the comparison, quoted at the top; `verdict_lines` the verdict
    (verdict.py), computed here when not given."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizers = check_same_inputs(runs)
    first = runs[0].results
    budget = cfg.budget
    amounts = ", ".join(f"{size}: {budget[budget.mode][size]:.4g}" for size in dict.fromkeys(r.size for r in runs))
    header = (f"# Encoder–decoder vs decoder-only: {cfg.name}\n\n"
              + (f"Command: `{command}`\n\n" if command else "")
              + f"Runs: {', '.join(r.name for r in runs)} (in `runs/`). Equal budget: **{budget.mode}** ({amounts}); "
              f"the other settings are identical, the decoder-only batch scaled to hold as many sentence pairs.\n"
              f"Data manifest `{first['data']['manifest_sha256'][:16]}`, "
              f"{first['data']['train_pairs']:,} training pairs; "
              f"tokenizer (spm.model sha256) {', '.join(f'{size} `{d[:16]}`' for size, d in tokenizers.items())}; "
              f"{first['env']['device']}, torch {first['env']['torch']}, git {str(first['env'].get('git_sha'))[:12]}.")
    if verdict_lines is None:
        verdict_lines = verdict(runs, test_sets, cfg.report.bootstrap, cfg.baseline, cfg.get("systems"))
    sections = [header, verdict_section(verdict_lines), training_section(runs),
                test_section(runs, test_sets, cfg.report.bootstrap, cfg.baseline)]
    if len(set(r.seed for r in runs)) > 1:
        sections.append(seeds_section(runs, test_sets))
    plots.learning_curves(runs, out_dir / "curves.png")
    sections.append("## Learning curves\n\nValidation loss (all validation sentences) and greedy BLEU (the first "
                    "`trainer.valid_max_sentences` of each set), averaged over the validation sets, against optimizer "
                    "steps, training FLOPs (the budget held equal) and seconds of training steps (these depend on "
                    "the machine and on what else ran beside it).\n\n"
                    "![learning curves](curves.png)")
    if len(set(r.size for r in runs)) > 1:
        plots.bleu_against_params(runs, list(test_sets), out_dir / "params.png")
        sections.append("## BLEU against parameters\n\n![BLEU against parameters](params.png)")
    if (n := cfg.report.get("decode_speed", 0)) and (section := speed_section(runs, test_sets, n)):
        sections.append(section)
    sentences = cfg.report.get("source_attention", 0)
    if sentences and (section := attention_section(runs, test_sets, sentences, out_dir / "source_attention.png")):
        sections.append(section)
    rows = bleu_by_length(runs, test_sets, list(cfg.report.length_buckets))
    plots.bleu_by_length(rows, [r.name for r in runs], out_dir / "length.png")
    sections.append(length_section(rows, runs))
    sections.append(tournament_section(*tournament(runs, test_sets)))
    sections.append("Every number above comes from `runs/*/results.json` and `runs/*/test/*.hyp` "
                    "(with the test references of the data step).")
    path = out_dir / "report.md"
    path.write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    return path
