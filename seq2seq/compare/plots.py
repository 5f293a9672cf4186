"""The report's figures (matplotlib, Agg backend: no display needed), drawn from the runs' results."""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _style(runs) -> dict[str, dict]:
    """One colour per system, one line style per size, one marker per seed, so twins are easy to pair up."""
    systems = list(dict.fromkeys(r.system for r in runs))
    sizes = list(dict.fromkeys(r.size for r in runs))
    seeds = list(dict.fromkeys(r.seed for r in runs))
    dashes, markers = ["-", "--", ":", "-."], ["o", "s", "^", "D", "v"]
    return {r.name: {"color": COLORS[systems.index(r.system) % len(COLORS)],
                     "linestyle": dashes[sizes.index(r.size) % len(dashes)],
                     "marker": markers[seeds.index(r.seed) % len(markers)]} for r in runs}


def flops_seen(run, entry: dict) -> float:
    """Training FLOPs at a validation point: as the trainer counted them, or, for a run whose history
    predates that count, its tokens so far at the run's average FLOPs per token."""
    if "flops" in entry:
        return entry["flops"]
    train = run.results["train"]
    return entry["tokens"] * train["flops"] / train["tokens"]


def learning_curves(runs, path: Path) -> None:
    """Validation loss and BLEU against optimizer steps, training FLOPs (the budget the comparison holds
    equal) and seconds of training steps."""
    axis = {"optimizer steps": lambda run, h: h["step"], "training FLOPs": flops_seen,
            "seconds of training steps": lambda run, h: h["seconds"]}
    fig, axes = plt.subplots(2, len(axis), figsize=(15, 7.5), sharey="row")
    style = _style(runs)
    for run in runs:
        history = run.results["train"]["history"]
        for row, metric in enumerate(("nll", "bleu")):
            for col, x in enumerate(axis.values()):
                axes[row, col].plot([x(run, h) for h in history], [h[metric] for h in history], markersize=3,
                                    label=run.name, **style[run.name])
    for col, xlabel in enumerate(axis):
        axes[1, col].set_xlabel(xlabel)
    axes[0, 0].set_ylabel("validation NLL (nats/token)")
    axes[1, 0].set_ylabel("validation BLEU (greedy)")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bleu_against_params(runs, test_sets: list[str], path: Path) -> None:
    """Test BLEU (mean ± std over seeds) against parameters, one line per system, one panel per test set."""
    fig, axes = plt.subplots(1, len(test_sets), figsize=(4.5 * len(test_sets), 4), squeeze=False)
    systems = list(dict.fromkeys(r.system for r in runs))
    for ax, name in zip(axes[0], test_sets):
        for k, system in enumerate(systems):
            points = {}
            for r in runs:
                if r.system == system:
                    points.setdefault(r.params, []).append(r.results["test"][name]["bleu"])
            xs = sorted(points)
            ys = [statistics.mean(points[x]) for x in xs]
            errs = [statistics.stdev(points[x]) if len(points[x]) > 1 else 0.0 for x in xs]
            ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=system, color=COLORS[k % len(COLORS)])
        ax.set_xscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("parameters")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("test BLEU")
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bleu_by_length(rows: list[dict], names: list[str], path: Path) -> None:
    """Grouped bars: BLEU of every run per source-length bucket."""
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows) * max(1, len(names)) / 2), 4))
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        xs = [i + (k - (len(names) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(xs, [row["bleu"][name] for row in rows], width, label=name, color=COLORS[k % len(COLORS)])
    ax.set_xticks(range(len(rows)), [f"{row['bucket']}\n({row['n']})" for row in rows])
    ax.set_xlabel("source words (sentences)")
    ax.set_ylabel("BLEU")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def source_attention(profiles: dict[str, tuple[list[float], list[float]]], path: Path) -> None:
    """Entropy of the attention over the source, and the source's share of it, by target position."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k, (name, (entropy, share)) in enumerate(profiles.items()):
        style = {"color": COLORS[k % len(COLORS)], "marker": "o", "markersize": 2, "label": name}
        axes[0].plot(range(1, len(entropy) + 1), entropy, **style)
        axes[1].plot(range(1, len(share) + 1), share, **style)
    axes[0].set_ylabel("entropy over the source (nats)")
    axes[1].set_ylabel("share of attention on the source")
    for ax in axes:
        ax.set_xlabel("target position")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
