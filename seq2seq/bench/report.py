"""The benchmark's results as printed ratios and as a dated markdown section of docs/BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

TARGETS = ("training ≥ 1.3× Hugging Face tokens/s", "beam 4 ≥ 2× Hugging Face generate()",
           "greedy within 2× of CTranslate2 float32")


def _hf_name(model: str) -> str:
    return "Hugging Face GPT2LMHeadModel" if model.startswith("gpt") else "Hugging Face MarianMTModel"


def _torch_name(model: str) -> str:
    return "torch.nn.TransformerEncoder (causal)" if model.startswith("gpt") else "torch.nn.Transformer"


def implementation_name(model: str, implementation: str) -> str:
    return {"ours": "ours", "hf": _hf_name(model), "torch": _torch_name(model)}[implementation]


def training_ratios(rows: list[dict]) -> dict[tuple[str, str], float]:
    """(model, implementation) -> our tokens/s ÷ its tokens/s (> 1: we are faster)."""
    ours = {r["model"]: r["tokens_per_s"] for r in rows if r["implementation"] == "ours"}
    return {(r["model"], r["implementation"]): ours[r["model"]] / r["tokens_per_s"]
            for r in rows if r["model"] in ours and r["tokens_per_s"] > 0}


def decoding_ratios(rows: list[dict]) -> dict[tuple[str, str], float]:
    """(engine, search) -> our cached sentences/s ÷ its sentences/s for the same search."""
    ours = {r["search"]: r["sentences_per_s"] for r in rows if r["engine"] == "ours"}
    return {(r["engine"], r["search"]): ours[r["search"]] / r["sentences_per_s"]
            for r in rows if r["search"] in ours and r["sentences_per_s"] > 0}


def targets(results: dict) -> list[str]:
    """Each target of issue 7 with the measured ratio and whether it is met."""
    lines = []
    train = training_ratios(results.get("training", []))
    for (model, impl), ratio in sorted(train.items()):
        if impl == "hf":
            lines.append(f"{TARGETS[0]} ({model}): {ratio:.2f}× — {'met' if ratio >= 1.3 else 'not met'}")
    dec = decoding_ratios(results.get("decoding", {}).get("rows", []))
    if ("Hugging Face generate()", "beam 4") in dec:
        ratio = dec[("Hugging Face generate()", "beam 4")]
        lines.append(f"{TARGETS[1]}: {ratio:.2f}× — {'met' if ratio >= 2.0 else 'not met'}")
    if ("CTranslate2 float32", "greedy") in dec:
        ratio = dec[("CTranslate2 float32", "greedy")]
        lines.append(f"{TARGETS[2]}: ours at {ratio:.2f}× its speed — {'met' if ratio >= 0.5 else 'not met'}")
    speed = {(r["engine"], r["search"]): r["sentences_per_s"] for r in results.get("decoding", {}).get("rows", [])}
    for search in ("greedy", "beam 4"):  # like against like: both engines quantize to int8
        if speed.get(("ours int8", search)) and speed.get(("CTranslate2 int8", search)):
            ratio = speed[("ours int8", search)] / speed[("CTranslate2 int8", search)]
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
                f"Forward + backward + Adam step on {t['batches']} token-bucketed batches of at most {t['batch_tokens']} "
                f"tokens from {t['corpus']} (after {t['warmup']} untimed), the same batches, loss (label-smoothed "
                "cross-entropy) and optimizer for every implementation; tokens = source + target non-pad tokens; "
                "random init. `ours ÷` > 1 means we are faster.", "",
                "| model | implementation | parameters | tokens/s | ours ÷ | peak RSS (MiB) |",
                "| --- | --- | ---: | ---: | ---: | ---: |"]
        ratios = training_ratios(results["training"])
        for r in results["training"]:
            ratio = ratios.get((r["model"], r["implementation"]))
            out.append(f"| {r['model']} | {implementation_name(r['model'], r['implementation'])} | {r['params']:,} | "
                       f"{r['tokens_per_s']:,.0f} | {'' if ratio is None else f'{ratio:.2f}'} | {r['peak_rss_mib']:,.0f} |")
        out.append("")
    if "decoding" in results:
        d = results["decoding"]
        out += ["### Decoding", "",
                f"{d['sentences']} sentences of {d['test_set']}, sorted by length into batches of {d['batch_size']}; ids in, "
                f"ids out. Weights: {d['weights']}. Our length cap (|source| + 50) for every engine; beam 4 with "
                "length penalty 0.6 (ours: Wu et al.; the others: length^0.6). `ours ÷` compares our cached fp32 "
                "search with the same search of that engine.", "",
                "| engine | search | sentences/s | target pieces/s | ours ÷ | peak RSS (MiB) |",
                "| --- | --- | ---: | ---: | ---: | ---: |"]
        ratios = decoding_ratios(d["rows"])
        for r in d["rows"]:
            ratio = ratios.get((r["engine"], r["search"]))
            out.append(f"| {r['engine']} | {r['search']} | {r['sentences_per_s']:,.1f} | {r['target_tokens_per_s']:,.0f} | "
                       f"{'' if ratio is None else f'{ratio:.2f}'} | {r['peak_rss_mib']:,.0f} |")
        out += ["", "Greedy outputs identical to ours, token for token: "
                + "; ".join(f"{engine} {same}/{d['sentences']}" for engine, same in d["agreement"].items()), ""]
    if "translate" in results:
        tr = results["translate"]
        samples = tr["samples"]
        picks = sorted({samples[0], samples[len(samples) // 2], samples[-1]}) if samples else []
        out += ["### `seq2seq translate`: memory over a long input", "",
                f"{tr['lines']:,} lines (the test set repeated), greedy, {tr['weights']}, {tr['seconds']:.0f} s.", "",
                "| lines translated | RSS (MiB) |", "| ---: | ---: |"]
        out += [f"| {n:,} | {rss:,.0f} |" for n, rss in picks]
        out += [f"| peak | {tr['peak_rss_mib']:,.0f} |", ""]
    lines = targets(results)
    if lines:
        out += ["### Targets (issue 7)", ""] + [f"- {line}" for line in lines] + [""]
    out += [f"- {note}" for note in results.get("notes", [])]
    return "\n".join(out).rstrip() + "\n"


def append(path: Path, section: str) -> None:
    """Append `section` to the markdown file, creating it with a title."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = "" if path.is_file() else ("# Benchmarks\n\nWritten by `make bench` (seq2seq/bench): one dated section per "
                                      "run; only ratios measured side by side in one run mean anything.\n")
    with path.open("a", encoding="utf-8") as f:
        f.write(head + "\n" + section)
