"""`seq2seq compare`: the plan (equal budgets, like-for-like batches), the report built from real tiny runs
(its numbers equal results.json), and the report over sizes and seeds from hand-made run directories."""

from __future__ import annotations

import json
import logging
import math
import random
import re
import statistics
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from seq2seq.compare.plots import flops_seen
from seq2seq.compare.report import ReportError, Run, degeneration_line, write_report
from seq2seq.compare.run import UNLIMITED_STEPS, compare, plan
from seq2seq.compare.source_attention import LONG, SourceAttention, even_share, fades, position_profile
from seq2seq.compare.verdict import verdict
from seq2seq.config import compose
from seq2seq.data.batching import collate
from seq2seq.data.sets import encode_pairs, prepare_data
from seq2seq.errors import UserError
from seq2seq.evaluate import score
from seq2seq.model.build import build_model
from seq2seq.train.flops import FlopCounter
from tests.conftest import ROOT, toy_pairs

SETS = ["multi30k/test_2016_flickr", "multi30k/test_2017_flickr", "tatoeba/test"]


def compare_config(*overrides: str):
    return compose(*overrides, config_name="compare")


def report_rows(text: str, run: str) -> list[list[str]]:
    """Cells of every markdown table row that starts with `run`."""
    return [[c.strip() for c in line.strip("|").split("|")][1:]
            for line in text.splitlines() if line.startswith(f"| {run} |")]


@pytest.mark.parametrize("mode,key,value", [("tokens", "max_tokens", 2.4e7), ("steps", "max_steps", 3300),
                                            ("minutes", "max_minutes", 5), ("flops", "max_flops", 5.0e12)])
def test_each_budget_mode_sets_one_stop_condition_equally_for_all_systems(mode, key, value):
    systems = plan(compare_config(f"budget.mode={mode}", "sizes=[tiny]", "trainer.patience=3"))
    assert [s.name for s in systems] == ["transformer_tiny_s1", "gpt_tiny_s1"]
    for s in systems:
        stops = {k: s.cfg.trainer[k] for k in ("max_steps", "max_minutes", "max_tokens", "max_flops")}
        expected = {"max_steps": UNLIMITED_STEPS, "max_minutes": None, "max_tokens": None, "max_flops": None,
                    key: value}
        assert stops == expected and s.cfg.trainer.patience == 0
    a, b = (OmegaConf.to_container(s.cfg, resolve=True) for s in systems)
    assert a["model"]["kind"] == "transformer" and b["model"]["kind"] == "gpt"
    assert ({k: a[k] for k in ("data", "tokenizer", "trainer", "seed")}
            == {k: b[k] for k in ("data", "tokenizer", "trainer", "seed")})


def test_plan_refuses_what_cannot_be_compared_and_takes_variants():
    with pytest.raises(UserError, match="budget.tokens has no amount for size big"):
        plan(compare_config("sizes=[big]", "budget.mode=tokens"))
    with pytest.raises(UserError, match="no model config gpt_big"):
        plan(compare_config("sizes=[big]", "budget.mode=tokens", "+budget.tokens.big=1000"))
    with pytest.raises(UserError, match="budget.mode=joules"):
        plan(compare_config("budget.mode=joules"))
    with pytest.raises(UserError, match="baseline=marian"):
        plan(compare_config("baseline=marian"))
    systems = plan(compare_config("+systems.gpt_prefix={model: gpt, overrides: {prefix_lm: true}}", "seeds=[1,2]",
                                  "sizes=[tiny]"))
    assert [s.name for s in systems][-3:] == ["transformer_tiny_s2", "gpt_tiny_s2", "gpt_prefix_tiny_s2"]
    assert systems[-1].cfg.model.prefix_lm and not systems[-2].cfg.model.prefix_lm and systems[-1].cfg.seed == 2


TINY_RUN = ["sizes=[tiny]", "budget.mode=tokens", "trainer.precision=fp32", "budget.tokens.tiny=6000",
            "trainer.batch_tokens=512", "trainer.valid_every=5", "trainer.save_every=5",
            "trainer.valid_max_sentences=10", "trainer.test_max_sentences=12", "trainer.final_beam=2",
            "trainer.warmup=10", "trainer.threads=1", "report.bootstrap=100"]


@pytest.mark.slow
def test_report_from_two_tiny_runs_repeats_their_results_json(tmp_path, toy_data_overrides, caplog):
    cfg = compare_config(*toy_data_overrides, *TINY_RUN)
    out = tmp_path / "compare"
    report = compare(cfg, out)
    text = report.read_text()
    runs = {name: json.loads((out / "runs" / name / "results.json").read_text())
            for name in ("transformer_tiny_s1", "gpt_tiny_s1")}
    configs = {name: OmegaConf.load(out / "runs" / name / "config.yaml") for name in runs}
    for name, res in runs.items():
        t = res["train"]
        assert (t["stopped_by"] == "max_tokens=6000"
                and 6000 <= t["tokens"] < 6000 + 2 * configs[name].trainer.batch_tokens)
        training, *tests = report_rows(text, name)[:4]  # the training table, then one table per test set
        assert training == [f"{res['model']['params']:,}", f"{t['flops'] / t['tokens']:,.0f}",
                            f"{configs[name].trainer.batch_tokens:,}", f"{t['steps']:,}", f"{t['tokens']:,}",
                            f"{t['flops']:.3e}", f"{t['seconds']:,.1f}", f"{t['tokens_per_s']:,.0f}", t["stopped_by"]]
        assert len(tests) == len(SETS)
        points = [h["flops"] for h in t["history"]]  # where the learning curves put each validation
        assert points and points == sorted(points) and 0 < points[-1] <= t["flops"]
        for row, test_set in zip(tests, SETS):
            entry = res["test"][test_set]
            assert (row[0], row[3]) == (f"{entry['bleu']:.2f}", f"{entry['chrf']:.2f}")
            assert row[6] == f"{entry['n'] / max(entry['seconds'], 1e-9):,.1f}"
    # Same data, tokenizer, seed and schedule; only the batch budget differs, scaled to hold as many pairs.
    a, b = configs["transformer_tiny_s1"], configs["gpt_tiny_s1"]
    assert a.data == b.data and a.seed == b.seed and a.tokenizer == b.tokenizer
    assert ({k: v for k, v in a.trainer.items() if k != "batch_tokens"}
            == {k: v for k, v in b.trainer.items() if k != "batch_tokens"})
    assert 1.3 * a.trainer.batch_tokens < b.trainer.batch_tokens < 2.2 * a.trainer.batch_tokens
    spm = [(out / "runs" / name / "spm.model").read_bytes() for name in runs]
    assert spm[0] == spm[1]
    for png in ("curves.png", "length.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Tournament" in text and "transformer_tiny_s1 | gpt_tiny_s1 |" in text
    assert "## Attention to the source by target position" in text and (out / "source_attention.png").is_file()

    # Again: the finished runs are reused and the report comes out the same; other settings are refused.
    with caplog.at_level(logging.INFO, logger="seq2seq.compare"):
        assert compare(cfg, out).read_text() == text
    assert caplog.text.count("reusing the finished run") == 2
    with pytest.raises(UserError, match=r"other settings \(trainer.max_tokens differs\)"):
        compare(compare_config(*toy_data_overrides, *TINY_RUN, "budget.tokens.tiny=7000"), out)
    timed = compare(compare_config(*toy_data_overrides, *TINY_RUN, "report.decode_speed=5"), out).read_text()
    assert "## Decode speed" in timed
    assert len(report_rows(timed, "gpt_tiny_s1")) == len(report_rows(text, "gpt_tiny_s1")) + 1  # its speed row


# -------------------------------------------------------------------------------- hand-made runs

def fake_run(directory, test_sets, quality: float, params: int, seed: int) -> None:
    """A run directory as the trainer leaves it: hypotheses that drop a share of the reference words."""
    rng = random.Random(seed * 1000 + params)
    test = {}
    for name, (_, refs) in test_sets.items():
        hyps = [" ".join(w for w in r.split() if rng.random() < quality) for r in refs]
        (directory / "test").mkdir(parents=True, exist_ok=True)
        (directory / "test" / f"{name.replace('/', '.')}.hyp").write_text("".join(h + "\n" for h in hyps))
        test[name] = {**score(hyps, refs), "beam": 4, "seconds": 2.0}
    history = [{"step": s, "seconds": s / 10, "tokens": s * 100, "bleu": quality * s, "nll": 5 - quality * s / 100}
               for s in (100, 200)]
    results = {"model": {"name": directory.name, "params": params},
               "data": {"manifest_sha256": "ab" * 32, "train_pairs": 1000},
               "train": {"steps": 200, "seconds": 20.0, "tokens": 20000, "tokens_per_s": 1000.0, "flops": 4.2e9,
                         "stopped_by": "max_tokens=20000", "history": history},
               "test": test, "env": {"device": "cpu", "torch": "2", "git_sha": "0" * 40}}
    (directory / "results.json").write_text(json.dumps(results))
    (directory / "config.yaml").write_text("trainer:\n  batch_tokens: 4000\n")
    (directory / "spm.model").write_bytes(b"tokenizer of size " + str(params).encode())


def test_validation_points_sit_at_the_training_flops_counted_so_far(tmp_path):
    (tmp_path / "gpt_tiny_s1").mkdir()
    fake_run(tmp_path / "gpt_tiny_s1", {}, 0.7, 50_000, 1)
    run = Run.load(tmp_path / "gpt_tiny_s1", "gpt", "tiny", 1)
    assert flops_seen(run, {"step": 100, "tokens": 10_000, "flops": 1.5e9}) == 1.5e9  # as the trainer counted
    assert flops_seen(run, {"step": 100, "tokens": 10_000}) == pytest.approx(2.1e9)  # no count: tokens at the average


def test_report_over_sizes_and_seeds(tmp_path):
    pairs = toy_pairs(60, seed=3)
    test_sets = {name: ([p[0] for p in pairs[i::3]], [p[1] for p in pairs[i::3]]) for i, name in enumerate(SETS)}
    runs = []
    for size, params in (("tiny", 50_000), ("small", 7_000_000)):
        for seed in (1, 2):
            for system, quality in (("transformer", 0.9), ("gpt", 0.7)):
                directory = tmp_path / "runs" / f"{system}_{size}_s{seed}"
                fake_run(directory, test_sets, quality + (0.05 if size == "small" else 0.0), params, seed)
                runs.append(Run.load(directory, system, size, seed))
    cfg = OmegaConf.create({"name": "t", "baseline": "transformer",
                            "budget": {"mode": "tokens", "tokens": {"tiny": 2e4, "small": 2e4}},
                            "report": {"bootstrap": 100, "length_buckets": [3, 5]}})
    text = write_report(tmp_path, runs, test_sets, cfg).read_text()
    for system in ("transformer", "gpt"):
        for size in ("tiny", "small"):
            (row,) = report_rows(text, f"{system}_{size}")
            members = [r for r in runs if (r.system, r.size) == (system, size)]
            values = [r.results["test"][SETS[0]]["bleu"] for r in members]
            assert row[:3] == ["2", f"{members[0].params:,}",
                               f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"]
    assert (tmp_path / "params.png").is_file()
    gpt_rows = [r for r in report_rows(text, "gpt_tiny_s1") if len(r) == 7]
    # p-values against the baseline
    assert len(gpt_rows) == 3 and all(re.fullmatch(r"0\.\d{4}( \*)?", row[2]) for row in gpt_rows)
    assert "| 1–3 |" in text and "| 6+ |" in text
    ranking = [line.split("|")[2:4] for line in text.splitlines() if re.match(r"\| \d+ \| ", line)]  # rank | run | Elo
    elo = {name.strip(): float(rating) for name, rating in ranking}
    assert len(elo) == 8 and statistics.mean(elo.values()) == pytest.approx(1000, abs=0.1)
    assert (min(v for k, v in elo.items() if k.startswith("transformer"))
            > max(v for k, v in elo.items() if k.startswith("gpt")))

    # A results.json that does not match its hypotheses, or twins with different tokenizers, are refused.
    results = runs[0].results
    results["test"][SETS[0]]["bleu"] += 1.0
    with pytest.raises(ReportError, match="results.json says"):
        write_report(tmp_path, runs, test_sets, cfg)
    (runs[1].directory / "spm.model").write_bytes(b"retrained")
    with pytest.raises(ReportError, match="tiny runs used different tokenizers"):
        write_report(tmp_path, runs, test_sets, cfg)


# -------------------------------------------------------------------------------- the verdict

def test_default_compares_the_small_twins_on_equal_flops_with_one_recipe():
    systems = plan(compare_config())
    assert [s.name for s in systems] == ["transformer_small_s1", "gpt_small_s1"]
    for s in systems:
        assert s.cfg.trainer.max_flops == 2.0e14 and s.cfg.trainer.max_tokens is None
        assert s.cfg.model.dropout == 0.0 and s.cfg.trainer.precision == "bf16"
        assert s.cfg.trainer.save_every * s.cfg.trainer.average_last <= 250  # averaging spans the end of a run


def test_study_adds_prefix_lm_and_a_flops_matched_decoder_only_model(toy_data_overrides):
    cfg = compare_config("systems=study", "sizes=[tiny]", *toy_data_overrides)
    systems = {s.label: s.cfg.model for s in plan(cfg)}
    assert list(systems) == ["transformer", "gpt", "gpt_prefix", "gpt_flops"]
    assert systems["gpt_prefix"].prefix_lm and systems["gpt_flops"].prefix_lm and not systems["gpt"].prefix_lm
    src, tgt, tokenizer = prepare_data(cfg)
    pairs = encode_pairs(tokenizer, src, tgt, 128)

    def per_pair(model_cfg):
        layout = "pair" if model_cfg.kind == "transformer" else "concat"
        return FlopCounter(build_model(model_cfg, len(tokenizer)))(collate(pairs, layout)) / len(pairs)

    target, layers = per_pair(systems["transformer"]), systems["gpt_flops"].layers
    assert layers < systems["gpt"].layers
    gap = abs(per_pair(systems["gpt_flops"]) - target)
    for other in (layers - 1, layers + 1):
        if other >= 1:
            assert gap <= abs(per_pair(OmegaConf.merge(systems["gpt_flops"], {"layers": other})) - target)


def test_verdict_says_who_is_ahead_with_intervals_and_which_predictions_held(tmp_path):
    pairs = toy_pairs(90, seed=3)
    test_sets = {name: ([p[0] for p in pairs[i::3]], [p[1] for p in pairs[i::3]]) for i, name in enumerate(SETS)}
    quality = {"transformer": 0.95, "gpt_prefix": 0.85, "gpt": 0.6}
    runs = []
    for seed in (1, 2):
        for system, q in quality.items():
            directory = tmp_path / "runs" / f"{system}_small_s{seed}"
            fake_run(directory, test_sets, q, 7_000_000, seed)
            runs.append(Run.load(directory, system, "small", seed))
    systems = OmegaConf.create({"transformer": {"model": "transformer"}, "gpt": {"model": "gpt"},
                                "gpt_prefix": {"model": "gpt", "overrides": {"prefix_lm": True}}})
    lines = verdict(runs, test_sets, 200, "transformer", systems)
    first = next(line for line in lines if line.startswith(f"{SETS[0]} (small, seed 1): transformer ahead of gpt by"))
    d, lo, hi = (float(x) for x in re.search(r"by ([\d.]+) BLEU \(95% CI (-?[\d.]+) to (-?[\d.]+)", first).groups())
    assert lo <= d <= hi and lo > 0 and "significant" in first
    assert sum("mean ± sd over seeds" in line for line in lines) == len(SETS)
    assert ("small: T5 and Zhang et al. 2022: the encoder–decoder beats the parameter-matched causal decoder-only "
            "model: held (3 of 3 test sets)") in lines
    assert any(line.startswith("small: Zhang et al. 2022: prefix-LM closes most of the gap: held") for line in lines)
    cfg = OmegaConf.create({"name": "t", "baseline": "transformer", "systems": systems,
                            "budget": {"mode": "flops", "flops": {"small": 2e14}},
                            "report": {"bootstrap": 100, "length_buckets": [3, 5]}})
    assert "## Verdict" in write_report(tmp_path, runs, test_sets, cfg).read_text()


def test_attention_to_the_source_by_position_entropy_and_share():
    uniform = torch.full((2, 3, 4, 5), 1 / 5)  # cross-attention: every row sums to 1 over 5 source pieces
    entropy, share = position_profile(uniform)
    assert torch.allclose(entropy, torch.full((4,), math.log(5))) and torch.allclose(share, torch.ones(4))
    fading = torch.zeros(1, 1, 3, 2)  # a decoder-only row: what is not on the source went to the target
    fading[0, 0, :, 0] = torch.tensor([0.9, 0.5, 0.1])
    entropy, share = position_profile(fading)
    assert torch.allclose(share, torch.tensor([0.9, 0.5, 0.1])) and torch.allclose(entropy, torch.zeros(3))
    profile = SourceAttention()
    profile.add(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.4]), torch.ones(2))
    profile.add(torch.tensor([3.0]), torch.tensor([0.7]), torch.ones(1))
    assert profile.means() == (pytest.approx([2.0, 2.0]), pytest.approx([0.6, 0.4]))
    assert profile.means(min_count=2) == (pytest.approx([2.0]), pytest.approx([0.6]))
    assert fades([[0.8] * 5 + [0.6] * 10 + [0.4] * 5, [0.9] * 3]) == pytest.approx(0.4)  # long sentences only
    assert fades([[0.8] * 19]) is None


def test_the_built_in_fall_of_the_source_share_is_what_evenly_spread_attention_gives():
    assert torch.allclose(even_share(4, 3, "gpt"), torch.tensor([1.0, 4 / 5, 4 / 6]))  # <sep> sees only the source
    assert torch.equal(even_share(4, 3, "transformer"), torch.ones(3))
    source = 3
    even = even_share(source, LONG, "gpt")
    cross = torch.zeros(1, 1, LONG, source)
    cross[0, 0, :, 0] = even  # a decoder-only model that attends evenly: all of its fall is built in
    profile = SourceAttention()
    profile.add(*position_profile(cross), even)
    line = degeneration_line(profile)
    assert f"would fall by {fades([even.tolist()]):.2f}" in line and "falls +0.00 beyond that: no more than" in line
    faster = SourceAttention()
    faster.add(torch.zeros(LONG), even * torch.linspace(1.0, 0.5, LONG), even)
    assert "more than the built-in fall: attention leaves the source" in degeneration_line(faster)
    assert degeneration_line(SourceAttention()) is None


@pytest.mark.slow
def test_the_h200_script_runs_its_whole_path_on_a_cpu(tmp_path, toy_data_overrides):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "h200_compare.py"), "--smoke", "--out", str(out),
                           "--dir", str(tmp_path / "h200"), *toy_data_overrides, "trainer.threads=1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "h200_compare.json").read_text())
    assert summary["mode"] == "smoke" and sorted(summary["runs"]) == ["gpt_prefix_tiny_s1", "gpt_tiny_s1",
                                                                     "transformer_tiny_s1"]
    runs = summary["runs"].values()
    assert all(r["train"]["stopped_by"].startswith("max_flops") and r["train"]["mfu"] > 0 for r in runs)
    assert "## Verdict" in (out / "report.md").read_text() and (out / "curves.png").is_file()
