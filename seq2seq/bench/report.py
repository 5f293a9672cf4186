"""The benchmark's results as printed ratios and as a dated markdown section of docs/benchmarks/<date>.md."""

from __future__ import annotations

from pathlib import Path

from seq2seq.bench.serve import markdown as serve_markdown

TARGETS = ("training ≥ 1.3× Hugging Face tokens/s", "beam 4 ≥ 2× Hugging Face generate()",
           "≥ 1.1× CTranslate2 float32")  # the last for greedy and for beam 4


def _hf_name(model: str) -> str:
    return "Hugging Face GPT2LMHeadModel" if model.startswith("gpt") else "Hugging Face MarianMTModel"


def _torch_name(model: str) -> str:
    return "torch.nn.TransformerEncoder (causal)" if model.startswith("gpt") else "torch.nn.Transformer"


def implementation_name(model: str, implementation: str) -> str:
    return {"ours": "ours", "hf": _hf_name(model), "torch": _torch_name(model)}[implementation]


def _ratios(rows: list[dict], group: str, ours: tuple[str, str], speed: str) -> dict[tuple[str, str], float]:
    """(row[group], row[ours[0]]) -> our speed ÷ its speed within the same `group` (> 1: we are faster);
    `ours` names the column and value of our own rows."""
    column, name = ours
    base = {r[group]: r[speed] for r in rows if r[column] == name}
    return {(r[group], r[column]): base[r[group]] / r[speed] for r in rows if r[group] in base and r[speed] > 0}


def training_ratios(rows: list[dict]) -> dict[tuple[str, str], float]:
    """(model, implementation) -> our tokens/s ÷ its tokens/s."""
    return _ratios(rows, "model", ("implementation", "ours"), "tokens_per_s")


def decoding_ratios(rows: list[dict]) -> dict[tuple[str, str], float]:
    """(search, engine) -> our cached sentences/s ÷ its sentences/s for the same search."""
    return _ratios(rows, "search", ("engine", "ours"), "sentences_per_s")


def _table(header: list[str], right_from: int, rows: list[list[str]]) -> list[str]:
    """A markdown table; columns from `right_from` on are right-aligned (numbers)."""
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    return ["| " + " | ".join(cells) + " |" for cells in (header, align, *rows)]


def _ratio_cell(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}"


def targets(results: dict) -> list[str]:
    """Each of the TARGETS with the measured ratio and whether it is met."""
    lines = []
    train = training_ratios(results.get("training", []))
    for (model, impl), ratio in sorted(train.items()):
        if impl == "hf":
            lines.append(f"{TARGETS[0]} ({model}): {ratio:.2f}× — {'met' if ratio >= 1.3 else 'not met'}")
    rows = results.get("decoding", {}).get("rows", [])
    dec = decoding_ratios(rows)
    if ("beam 4", "Hugging Face generate()") in dec:
        ratio = dec[("beam 4", "Hugging Face generate()")]
        lines.append(f"{TARGETS[1]}: {ratio:.2f}× — {'met' if ratio >= 2.0 else 'not met'}")
    for search in ("greedy", "beam 4"):
        if (search, "CTranslate2 float32") in dec:
            ratio = dec[(search, "CTranslate2 float32")]
            lines.append(f"{search} {TARGETS[2]}: {ratio:.2f}× — {'met' if ratio >= 1.1 else 'not met'}")
        if (search, "CTranslate2 float32, MKL") in dec:
            lines.append(f"not a target — {search}, against CTranslate2 float32 made to use MKL (as PyTorch does): "
                         f"ours at {dec[(search, 'CTranslate2 float32, MKL')]:.2f}×")
    int8 = _ratios(rows, "search", ("engine", "ours int8"), "sentences_per_s")  # like against like
    for search in ("greedy", "beam 4"):
        if (search, "CTranslate2 int8") in int8:
            ratio = int8[(search, "CTranslate2 int8")]
            lines.append(f"not a target — {search}, int8 against int8: ours at {ratio:.2f}× CTranslate2 int8's speed")
    return lines


def markdown(results: dict) -> str:
    out = [f"## {results['date']}", "",
           f"- Command: `{results['command']}`",
           f"- Machine: {results['machine']}; {results['threads']} torch threads; {results['versions']}",
           f"- Load average (1 min) at start and end: {results['load'][0]:.1f}, {results['load'][-1]:.1f}"
           + (" (other work shared the cores: speeds are noisy, ratios less so)"
              if max(results["load"]) > results["threads"] else ""),
           f"- Vocabulary: {results['vocab_size']} pieces ({results['tokenizer']}) for every model", ""]
    if "training" in results:
        t = results["training_setup"]
        out += ["### Training throughput", "",
                f"Forward + backward + Adam step on {t['batches']} token-bucketed batches of at most "
                f"{t['batch_tokens']} tokens from {t['corpus']} (after {t['warmup']} untimed), the same batches, "
                "loss (label-smoothed cross-entropy) and optimizer for every implementation; tokens = source + "
                "target non-pad tokens; random init. `ours ÷` > 1 means we are faster.", ""]
        ratios = training_ratios(results["training"])
        out += _table(["model", "implementation", "parameters", "tokens/s", "ours ÷", "peak RSS (MiB)"], 2, [
            [r["model"], implementation_name(r["model"], r["implementation"]), f"{r['params']:,}",
             f"{r['tokens_per_s']:,.0f}", _ratio_cell(ratios.get((r["model"], r["implementation"]))),
             f"{r['peak_rss_mib']:,.0f}"] for r in results["training"]])
        out.append("")
    if "decoding" in results:
        d = results["decoding"]
        out += ["### Decoding", "",
                f"{d['sentences']} sentences of {d['test_set']}, sorted by length into batches of "
                f"{d['batch_size']}; ids in, ids out. Weights: {d['weights']}. Our length cap (|source| + 50) "
                "for every engine; beam 4 with length penalty 0.6 (ours: Wu et al.; the others: length^0.6). "
                "`ours ÷` compares our cached fp32 search with the same search of that engine.", ""]
        ratios = decoding_ratios(d["rows"])
        out += _table(["engine", "search", "sentences/s", "target pieces/s", "ours ÷", "peak RSS (MiB)"], 2, [
            [r["engine"], r["search"], f"{r['sentences_per_s']:,.1f}", f"{r['target_tokens_per_s']:,.0f}",
             _ratio_cell(ratios.get((r["search"], r["engine"]))), f"{r['peak_rss_mib']:,.0f}"] for r in d["rows"]])
        out += ["", "Greedy outputs identical to ours, token for token: "
                + "; ".join(f"{engine} {same}/{d['sentences']}" for engine, same in d["agreement"].items()), ""]
    if "translate" in results:
        tr = results["translate"]
        samples = tr["samples"]
        picks = sorted({samples[0], samples[len(samples) // 2], samples[-1]}) if samples else []
        out += ["### `seq2seq translate`: memory over a long input", "",
                f"{tr['lines']:,} lines (the test set repeated), greedy, {tr['weights']}, {tr['seconds']:.0f} s.", ""]
        out += _table(["lines translated", "RSS (MiB)"], 0,
                      [[f"{n:,}", f"{rss:,.0f}"] for n, rss in picks] + [["peak", f"{tr['peak_rss_mib']:,.0f}"]])
        out.append("")
    if "serve" in results:
        out += serve_markdown(results["serve"], _table)
    lines = targets(results)
    if lines:
        out += ["### Targets", ""] + [f"- {line}" for line in lines] + [""]
    out += [f"- {note}" for note in results.get("notes", [])]
    return "\n".join(out).rstrip() + "\n"


def append(path: Path, section: str) -> None:
    """Append `section` to the markdown file, creating it with a title."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = "" if path.is_file() else (f"# Benchmarks: the log of {path.stem}\n\nWritten by `make bench` "
                                      "(seq2seq/bench): one dated section per run; only ratios measured side by "
                                      "side in one run mean anything. The current figures: docs/BENCHMARKS.md.\n")
    with path.open("a", encoding="utf-8") as f:
        f.write(head + "\n" + section)
