"""The benchmark's code paths (training, decoding, translate) on a toy corpus and tiny models; no timing assertions."""

from __future__ import annotations

import importlib.util
import os
import time

import pytest
import torch

from seq2seq.bench import main
from seq2seq.bench.measure import PeakRSS, Worker, in_turns
from seq2seq.config import compose
from seq2seq.data.sets import prepare_data

pytestmark = pytest.mark.slow  # runs every benchmark section in worker processes

pytest.importorskip("transformers")


def test_every_section_runs_and_writes_a_dated_markdown_table(toy_data_overrides, tmp_path, monkeypatch):
    cfg = compose("experiment=tiny", *toy_data_overrides)
    tokenizer = prepare_data(cfg)[2]
    monkeypatch.chdir(tmp_path)  # no outputs/ here: decoding uses random-init weights
    out = tmp_path / "BENCH.md"
    results = main(["--data", cfg.data.out_dir, "--tokenizer", str(tokenizer.path),
                    "--models", "transformer_tiny,gpt_tiny", "--batches", "2", "--warmup", "1",
                    "--batch-tokens", "256", "--sentences", "6", "--repeat", "1",
                    "--decode-config", "transformer_tiny", "--translate-lines", "40", "--threads", "1",
                    "--in-process", "--skip", "serve", "--out", str(out)])

    rows = results["training"]
    assert {(r["model"], r["implementation"]) for r in rows} == {
        (m, i) for m in ("transformer_tiny", "gpt_tiny") for i in ("ours", "hf", "torch")}
    assert all(r["tokens"] > 0 and r["tokens_per_s"] > 0 and r["peak_rss_mib"] > 0 for r in rows)
    ours = {r["model"]: r["params"] for r in rows if r["implementation"] == "ours"}
    hf = {r["model"]: r["params"] for r in rows if r["implementation"] == "hf"}
    assert hf["transformer_tiny"] == ours["transformer_tiny"]  # MarianMT of the identical config: same parameters

    decoding = results["decoding"]
    engines = {(r["engine"], r["search"]) for r in decoding["rows"]}
    assert {("ours", "greedy"), ("ours", "beam 4"), ("ours, no cache", "greedy"),
            ("Hugging Face generate()", "beam 4")} <= engines
    assert decoding["agreement"]["Hugging Face generate()"] == decoding["sentences"] == 6  # the same weights
    assert {("ours bf16", "beam 4"), ("ours int8", "greedy")} <= engines and "ours int8" in decoding["agreement"]
    if _has("ctranslate2"):
        assert decoding["agreement"]["CTranslate2 float32"] == 6

    assert results["translate"]["lines"] == 40 and results["translate"]["samples"]
    text = out.read_text()
    assert text.startswith("# Benchmarks") and f"## {results['date']}" in text
    for heading in ("### Training throughput", "### Decoding", "### `seq2seq translate`", "### Targets"):
        assert heading in text
    assert "| transformer_tiny | Hugging Face MarianMTModel |" in text


def _has(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def test_workers_run_in_processes_of_their_own_and_report_time_and_memory():
    with Worker(Echo, isolate=True, tag="a") as remote, Worker(Echo, isolate=False, tag="b") as local:
        (tag, pid), seconds, rss = remote.call("whoami", 1)
        assert tag == "a1" and pid != os.getpid() and seconds >= 0 and rss > 0
        assert local.call("whoami", 2)[0] == ("b2", os.getpid())
    assert [in_turns(["x", "y", "z"], i)[0] for i in range(4)] == ["x", "y", "z", "x"]


class Echo:
    def __init__(self, tag: str):
        self.tag = tag

    def whoami(self, n: int):
        return f"{self.tag}{n}", os.getpid()


def test_peak_rss_sees_memory_freed_before_the_block_ends():
    with PeakRSS(interval=0.001) as before:
        pass
    with PeakRSS(interval=0.001) as peak:
        block = torch.ones(50 * 1024 * 1024)  # 200 MiB, every page written
        time.sleep(0.05)  # the sampler runs while this thread waits (as it does inside torch kernels)
        del block
    assert peak.mib - before.mib > 150


def test_ctranslate2_on_mkl_is_a_row_only_when_every_engine_has_a_process_of_its_own():
    from seq2seq.bench.decoding import engines  # noqa: PLC0415

    def names(isolate):
        return {name: kwargs for name, (_, kwargs, _) in engines("m", None, "ct2", [], [], [], 1, isolate).items()}
    assert names(True)["CTranslate2 float32, MKL"]["use_mkl"] is True
    assert "use_mkl" not in names(True)["CTranslate2 float32"]
    assert "CTranslate2 float32, MKL" not in names(False) and "CTranslate2 float32" in names(False)


def test_targets_report_greedy_and_beam_against_ctranslate2_and_the_mkl_row_beside_them():
    from seq2seq.bench.report import targets  # noqa: PLC0415

    speeds = {("ours", 100.0, 50.0), ("CTranslate2 float32", 80.0, 50.0), ("CTranslate2 float32, MKL", 40.0, 25.0)}
    rows = [{"engine": e, "search": s, "sentences_per_s": v}
            for e, g, b in speeds for s, v in (("greedy", g), ("beam 4", b))]
    lines = targets({"decoding": {"rows": rows}})
    assert "greedy ≥ 1.1× CTranslate2 float32: 1.25× — met" in lines
    assert "beam 4 ≥ 1.1× CTranslate2 float32: 1.00× — not met" in lines
    mkl = "against CTranslate2 float32 made to use MKL (as PyTorch does): ours at"
    assert f"not a target — greedy, {mkl} 2.50×" in lines and f"not a target — beam 4, {mkl} 2.00×" in lines
