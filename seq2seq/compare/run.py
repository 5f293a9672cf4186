"""`seq2seq compare`: every system × size × seed trained by the one trainer, on one explicit budget.

The systems (conf/compare.yaml `systems`: the encoder–decoder and the decoder-only twin by default) share
the data, the tokenizer, the seed, the optimizer, the schedule and every other trainer setting; the
budget held equal is `budget.mode`: training tokens (the default), optimizer steps, minutes of training
steps, or model FLOPs (seq2seq/train/flops.py). Two things are adjusted so that the comparison is like
for like rather than setting for setting:

  * `trainer.batch_tokens` bounds rows × columns of a batch. A pair takes max(|s|, |t|) + 1 columns in the
    encoder–decoder layout but |s| + |t| + 1 in `s <sep> t`, so the decoder-only batch budget is scaled
    by the ratio of the two over the training set: both then take as many sentence pairs per step and as
    many steps per epoch, and one warm-up schedule means the same for both.
  * early stopping (`trainer.patience`) is off: it would end runs on different budgets.

Each run lives in <output_dir>/runs/<system>_<size>_s<seed>/ (a `seq2seq train` run directory). A run that
finished with the same resolved config is reused, an interrupted one resumes, and one trained with other
settings is an error rather than a silent mix. The report (report.py) is rebuilt every time.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from seq2seq.compare.report import ReportError, Run, write_report
from seq2seq.compare.verdict import verdict
from seq2seq.config import model_config, validate
from seq2seq.data.batching import collate, example_length, layout_of
from seq2seq.data.sets import active_sets, encode_pairs, prepare_data, read_sets
from seq2seq.errors import UserError
from seq2seq.model.build import build_model
from seq2seq.schema import with_later_defaults
from seq2seq.train.flops import FlopCounter
from seq2seq.train.trainer import train

log = logging.getLogger("seq2seq.compare")

BUDGETS = {"tokens": "max_tokens", "steps": "max_steps", "minutes": "max_minutes", "flops": "max_flops"}
UNLIMITED_STEPS = 10**12


@dataclass
class System:
    label: str  # the key in `systems`, e.g. gpt
    size: str  # tiny, small, base
    seed: int
    cfg: object  # the full training config of this run

    @property
    def name(self) -> str:
        return f"{self.label}_{self.size}_s{self.seed}"


def budget_overrides(cfg, size: str) -> dict:
    """Trainer stop conditions: the chosen budget only (the others off), the same for every system."""
    mode = cfg.budget.mode
    if mode not in BUDGETS:
        raise UserError(f"budget.mode={mode} is not one of {', '.join(BUDGETS)}")
    amounts = cfg.budget[mode]
    if size not in amounts or amounts[size] is None:
        raise UserError(f"budget.{mode} has no amount for size {size}; add budget.{mode}.{size}=...")
    stops = {"max_steps": UNLIMITED_STEPS, "max_minutes": None, "max_tokens": None, "max_flops": None}
    amount = amounts[size]
    stops[BUDGETS[mode]] = int(amount) if mode in ("tokens", "steps") else float(amount)
    return stops


def plan(cfg) -> list[System]:
    """The runs of the comparison, in training order (size, then seed, then system)."""
    if not cfg.sizes or not cfg.seeds or not cfg.systems:
        raise UserError("compare needs at least one of each: sizes, seeds, systems")
    if cfg.baseline not in cfg.systems:
        raise UserError(f"baseline={cfg.baseline} is not one of the systems ({', '.join(cfg.systems)})")
    shared = {key: cfg[key] for key in ("data", "tokenizer", "trainer")}
    systems = []
    for size in cfg.sizes:
        stops = budget_overrides(cfg, str(size))
        models = {label: model_config(f"{spec.model}_{size}") for label, spec in cfg.systems.items()}
        widths = {(m.vocab_size, m.d_model) for m in models.values()}
        if len(widths) > 1:
            raise UserError(f"size {size}: the systems differ in vocabulary or width {sorted(widths)}; "
                            "twins share both")
        for seed in cfg.seeds:
            for label, spec in cfg.systems.items():
                model = OmegaConf.merge(models[label], cfg.get("model_overrides") or {}, spec.get("overrides") or {},
                                        {"name": f"{label}_{size}"})
                if spec.get("match_flops"):
                    model.layers = flops_matched_layers(model, OmegaConf.merge(models[cfg.baseline],
                                                                               cfg.get("model_overrides") or {}), cfg)
                run_cfg = OmegaConf.merge(OmegaConf.create({"name": f"{label}_{size}_s{seed}", "seed": int(seed),
                                                            **shared, "model": model}),
                                          {"trainer": {**stops, "patience": 0}})
                validate(run_cfg)
                systems.append(System(label, str(size), int(seed), run_cfg))
    return systems


def flops_matched_layers(model_cfg, baseline_cfg, cfg, sample: int = 4096) -> int:
    """The decoder-only layer count whose training FLOPs per sentence pair (seq2seq/train/flops.py, over the
    first `sample` training pairs) come closest to the baseline's: T5's "P parameters, M FLOPs" model."""
    if model_cfg.kind != "gpt":
        raise UserError(f"match_flops sets the layer count of a decoder-only model, not of a {model_cfg.kind} model")
    src, tgt, tokenizer = prepare_data(cfg)
    pairs = encode_pairs(tokenizer, src[:sample], tgt[:sample], cfg.trainer.max_len)

    def per_pair(m) -> float:
        count, layout = FlopCounter(build_model(m, len(tokenizer))), layout_of(m.kind)
        return sum(count(collate(pairs[i:i + 256], layout)) for i in range(0, len(pairs), 256)) / len(pairs)

    target = per_pair(baseline_cfg)
    costs = {n: per_pair(OmegaConf.merge(model_cfg, {"layers": n})) for n in range(1, model_cfg.layers + 1)}
    layers = min(costs, key=lambda n: abs(costs[n] - target))
    log.info("FLOPs-matched decoder-only model: %d layers, %.3g FLOPs a pair against the baseline's %.3g",
             layers, costs[layers], target)
    return layers


def equalise_batches(systems: list[System]) -> dict[str, float]:
    """Scale the decoder-only batch budget by Σ(|s|+|t|+1) / Σ(max(|s|,|t|)+1) over the training pairs, per
    size (one tokenizer each), so every system takes as many pairs per step. Returns the ratio per size."""
    ratios = {}
    for system in systems:
        if system.size not in ratios:
            src, tgt, tokenizer = prepare_data(system.cfg)
            pairs = encode_pairs(tokenizer, src, tgt, system.cfg.trainer.max_len)
            concat = sum(example_length(s, t, "concat") for s, t in pairs)
            ratios[system.size] = concat / max(sum(example_length(s, t, "pair") for s, t in pairs), 1)
        if system.cfg.model.kind == "gpt":
            system.cfg.trainer.batch_tokens = round(system.cfg.trainer.batch_tokens * ratios[system.size])
    return ratios


def first_difference(a, b, prefix: str = "") -> str:
    """The dotted path of the first key whose value differs between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
    return prefix.rstrip(".") or "the config"


def train_or_reuse(system: System, run_dir: Path) -> dict:
    wanted = OmegaConf.to_yaml(system.cfg, resolve=True)
    config_file, results_file = run_dir / "config.yaml", run_dir / "results.json"
    if config_file.is_file() and config_file.read_text() != wanted:
        stored = with_later_defaults(OmegaConf.to_container(OmegaConf.load(config_file)))
        wanted_dict = OmegaConf.to_container(OmegaConf.create(wanted))
        if stored != wanted_dict:
            raise UserError(f"{run_dir} holds a run with other settings ({first_difference(stored, wanted_dict)} "
                            "differs); pass another name=... or remove that directory")
    if results_file.is_file():
        log.info("%s: reusing the finished run in %s", system.name, run_dir)
        return {**json.loads(results_file.read_text()), "reused": True}
    log.info("%s: training in %s", system.name, run_dir)
    return train(system.cfg, run_dir)


def eta(trained_seconds: list[float], runs_left: int) -> str:
    """`, about N min left in all`, from the wall time of the runs trained so far (one budget for all runs, so
    the systems' run times are alike); nothing before the first run has finished."""
    if not trained_seconds:
        return ""
    return f", about {statistics.mean(trained_seconds) * runs_left / 60:.0f} min left in all"


def command_line() -> str | None:
    """`seq2seq compare <overrides>` as Hydra received it (None outside a Hydra run)."""
    if not HydraConfig.initialized():
        return None
    return " ".join(["seq2seq compare", *HydraConfig.get().overrides.task])


def compare(cfg, output_dir) -> Path:
    """Train (or reuse) every run of the comparison in `output_dir`/runs and write `output_dir`/report.md."""
    out = Path(output_dir)
    systems = plan(cfg)
    ratios = equalise_batches(systems)
    for size, ratio in ratios.items():
        log.info("size %s: decoder-only batches hold %.3f x trainer.batch_tokens (as many pairs a step)", size, ratio)
    runs, trained_seconds = [], []
    for i, system in enumerate(systems, 1):
        log.info("run %d of %d: %s%s", i, len(systems), system.name, eta(trained_seconds, len(systems) - i + 1))
        run_dir = out / "runs" / system.name
        started = time.perf_counter()
        if not train_or_reuse(system, run_dir).get("reused"):
            trained_seconds.append(time.perf_counter() - started)
        try:
            runs.append(Run.load(run_dir, system.label, system.size, system.seed))
        except ReportError as e:
            raise UserError(str(e)) from None
    test_sets = {}
    first = systems[0].cfg
    for name in active_sets(first.data, "test_sets"):
        src, ref = read_sets(first.data, [name])
        if not src:  # the trainer skips an empty set too (tatoeba/names of a corpus without names)
            continue
        cap = first.trainer.test_max_sentences
        test_sets[name] = (src[:cap], ref[:cap]) if cap else (src, ref)
    try:
        lines = verdict(runs, test_sets, cfg.report.bootstrap, cfg.baseline, cfg.systems)
        path = write_report(out, runs, test_sets, cfg, command_line(), lines)
    except ReportError as e:
        raise UserError(str(e)) from None
    print("verdict:\n" + "\n".join(f"  {line}" for line in lines), flush=True)
    print(f"report: {path}", flush=True)
    return path
