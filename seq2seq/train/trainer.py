"""The training loop (§5): batches → label-smoothed loss → Adam step on the warm-up schedule →
validation → checkpoints → averaging (§6.1) → test scores. One loop for both model kinds.

`train(cfg, run_dir)` is a plain function; `seq2seq train` wraps it with Hydra. It reads top-down:

    setup   data, model and optimizer, in an order that fixes every RNG stream      -> Run
    resume  weights, optimizer, progress (step, data position) and RNG states of the newest checkpoint
    loop    step_or_stop: optimizer_step, then on_cadence (log, validate, save, stop)
    finish  average the checkpoints into model/, score the test sets, write results.json

A `Run` carries what the phases share; `Progress` is the part of it a checkpoint keeps. A run directory
that already holds checkpoints is resumed, bit-equal to a run that never stopped.

Launched by `torchrun --nproc-per-node N`, the same loop trains data-parallel (seq2seq/train/distributed.py):
rank r takes batches r, r+N, … of each epoch, the loss is normalised by the step's labels over
all ranks so that a step equals one process's step on the combined batches, and rank 0 alone writes
the run directory, validates and tests.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import sacrebleu
import sentencepiece
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from seq2seq.data.batching import Batch, TokenBucketBatcher, collate, example_length, layout_of
from seq2seq.data.prepare import manifest_sha256
from seq2seq.data.sets import active_sets, encode_pairs, prepare_data, read_sets
from seq2seq.data.tokenizer import Tokenizer
from seq2seq.decode.config import SearchConfig
from seq2seq.decode.unseen import SOURCE_WORDS, read_source_words, source_words
from seq2seq.errors import TrainingError
from seq2seq.evaluate import format_table, score, translate_and_score
from seq2seq.io import write_lines, write_text
from seq2seq.model.build import build_model, count_parameters
from seq2seq.model.directory import save_model_dir
from seq2seq.train import checkpoint
from seq2seq.train.distributed import Group, local_processes, shard
from seq2seq.train.flops import FlopCounter
from seq2seq.train.loss import label_smoothed_loss
from seq2seq.train.schedule import noam_lr, noam_scale
from seq2seq.translator import Translator

log = logging.getLogger("seq2seq.train")


# ---------------------------------------------------------------------------------------------- state

@dataclass
class Progress:
    """Everything besides weights and optimizer that a resumed run needs (a checkpoint's `progress`)."""

    step: int = 0
    epoch: int = 0
    batch_index: int = 0  # batches of `epoch` already consumed
    seconds: float = 0.0
    tokens: int = 0  # non-pad source + target tokens trained on
    flops: float = 0.0  # model FLOPs (seq2seq/train/flops.py)
    skipped: int = 0  # updates skipped for a non-finite loss
    best_bleu: float = -1.0
    bad_validations: int = 0
    history: list = field(default_factory=list)


@dataclass
class TrainData:
    """The encoded training pairs and their token-bucketed batches (§5.1: pairs batched by approximate length).
    With BPE-dropout (`resegment`), every epoch encodes the training text anew, seeded by the epoch, and is
    batched by its own lengths: epoch e is the same on every machine and after every resume."""

    pairs: list[tuple[list[int], list[int]]]
    batcher: TokenBucketBatcher
    layout: str  # "pair" (encoder–decoder) or "concat" (decoder-only)
    loss_on_source: bool  # decoder-only: labels on the source too
    resegment: Callable[[int], list[tuple[list[int], list[int]]]] | None = None  # epoch -> that epoch's pairs

    def epoch(self, epoch: int) -> tuple[list[tuple[list[int], list[int]]], list[np.ndarray]]:
        """The pairs of `epoch` and its batches (index arrays into them)."""
        if self.resegment is None:
            return self.pairs, self.batcher.batches(epoch)
        pairs = self.resegment(epoch)
        lengths = [example_length(s, t, self.layout) for s, t in pairs]
        batcher = TokenBucketBatcher(lengths, self.batcher.batch_tokens, seed=self.batcher.seed)
        return pairs, batcher.batches(epoch)

    def collate(self, pairs, ids) -> Batch:
        return collate([pairs[j] for j in ids], self.layout, self.loss_on_source)


@dataclass
class Meters:
    """Sums since the last log line, kept on the device: reading one is a host sync, so only on cadence."""

    loss: torch.Tensor  # Σ nll of the finite steps
    nonfinite_run: torch.Tensor  # consecutive non-finite losses
    nonfinite_total: torch.Tensor
    tokens: int = 0  # labels of the steps in `loss`, counted on the host

    @classmethod
    def on(cls, device: torch.device) -> Meters:
        return cls(*(torch.zeros((), device=device) for _ in range(3)))


@dataclass
class Run:
    """One training run: what setup builds and the other phases read, in place of threaded locals."""

    cfg: DictConfig
    run_dir: Path
    group: Group  # a group of one outside torchrun
    device: torch.device
    amp_dtype: torch.dtype | None  # bf16 autocast, or None for fp32
    tokenizer: Tokenizer
    data: TrainData
    valid_sets: dict  # name -> (source text, reference text, encoded pairs), encoded once for every validation
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scale: float
    count_flops: FlopCounter
    meters: Meters
    progress: Progress = field(default_factory=Progress)
    last_saved: int = 0  # the step of the newest checkpoint
    writer: object = None  # tensorboard's SummaryWriter on rank 0, if installed
    started: float = field(default_factory=time.perf_counter)

    @property
    def tcfg(self) -> DictConfig:
        return self.cfg.trainer

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def budget_s(self) -> float:
        return self.tcfg.max_minutes * 60 if self.tcfg.max_minutes else math.inf

    @property
    def sync_every(self) -> int:
        """Steps between host syncs: every step on the CPU, where they cost nothing; on a GPU they stall it."""
        return 1 if self.device.type == "cpu" else self.tcfg.log_every

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)


# ---------------------------------------------------------------------------------------------- the run

def train(cfg, run_dir: str | os.PathLike) -> dict:
    """Train the configured model in `run_dir` (resuming if it holds checkpoints); return results.json.
    Under torchrun every rank calls this, and every rank returns rank 0's results."""
    run_dir = Path(run_dir)
    device, amp_dtype = select_device(cfg.trainer)
    group, device = Group.start(device)
    try:
        with run_directory(cfg, run_dir, group):
            run = setup(cfg, run_dir, group, device, amp_dtype)
            resume(run)
            return finish(run, loop(run))
    finally:
        group.close()


def validation_bleu(results: dict) -> float:
    """The metric `seq2seq train` returns to Hydra, for `--multirun` sweeps: the greedy BLEU of the last
    validation, averaged over the validation sets; higher is better. NaN when no validation ran (a sweeper
    such as Optuna's then counts the trial as failed). Test BLEU is left for the final report: tuning on it
    would leak the test sets into the choice."""
    history = results["train"]["history"]
    return float(history[-1]["bleu"]) if history else math.nan


@contextmanager
def run_directory(cfg, run_dir: Path, group: Group) -> Iterator[None]:
    """Rank 0 writes checkpoints/, config.yaml and train.log in `run_dir`; the others write nothing and log
    warnings only."""
    if not group.main:
        logging.getLogger("seq2seq").setLevel(logging.WARNING)
        yield
        return
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    except OSError as e:
        raise TrainingError(f"run directory {run_dir} is not writable: {e.strerror}") from None
    handler = attach_log_file(run_dir / "train.log")
    try:
        yield
    finally:
        logging.getLogger("seq2seq").removeHandler(handler)
        handler.close()


def attach_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("seq2seq")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


# ---------------------------------------------------------------------------------------------- setup

def select_device(tcfg) -> tuple[torch.device, torch.dtype | None]:
    device = torch.device("cuda" if tcfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if tcfg.device == "auto" else tcfg.device))
    if device.type == "cuda" and tcfg.tf32:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if device.type == "cpu":
        torch.set_num_threads(tcfg.threads or max(1, (os.cpu_count() or 1) // local_processes()))
    precision = tcfg.precision if tcfg.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    if precision == "bf16" and device.type == "cpu" and cpu_has_native_bf16() is False:
        log.warning("this CPU has neither AVX512-BF16 nor AMX, so bf16 autocast is emulated and slower "
                    "than fp32 here: add trainer.precision=fp32")
    return device, (torch.bfloat16 if precision == "bf16" else None)


def cpu_has_native_bf16() -> bool | None:
    """Whether the CPU multiplies bf16 natively (AVX512-BF16 or AMX flags in /proc/cpuinfo); None if unknown."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def setup(cfg, run_dir: Path, group: Group, device: torch.device, amp_dtype: torch.dtype | None) -> Run:
    """Data, model and Adam (§5.3), in the order that fixes the RNG streams: the seed, then the weights
    (the same on every rank), then each rank's dropout stream of its own."""
    tcfg, mcfg = cfg.trainer, cfg.model
    torch.manual_seed(cfg.seed)
    tokenizer, data, valid_sets = load_data(cfg, run_dir, group)
    model = build_model(mcfg, len(tokenizer)).to(device)
    if group.rank:
        torch.manual_seed(cfg.seed + group.rank)  # the same initial weights, dropout masks of its own
    log.info("model %s: %s parameters on %s (%s)", mcfg.get("name", mcfg.kind), f"{count_parameters(model):,}",
             device, "bf16 autocast" if amp_dtype else "fp32")
    # Fused Adam skips an update on the device when `found_inf` is set, so a non-finite loss needs no host sync.
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0, betas=tuple(tcfg.adam_betas), eps=tcfg.adam_eps,
                                 weight_decay=tcfg.weight_decay, fused=True)
    return Run(cfg, run_dir, group, device, amp_dtype, tokenizer, data, valid_sets, model, optimizer,
               lr_scale=noam_scale(mcfg.d_model, tcfg.warmup, tcfg.peak_lr, tcfg.lr_scale),
               count_flops=FlopCounter(model), meters=Meters.on(device))


def load_data(cfg, run_dir: Path, group: Group) -> tuple[Tokenizer, TrainData, dict]:
    """The tokenizer, the encoded training pairs and their batcher, and the encoded validation sets."""
    with group.main_first():  # rank 0 writes the splits and the tokenizer, the others read them
        train_src, train_tgt, tokenizer = prepare_data(cfg)
    if group.main:
        shutil.copyfile(tokenizer.path, run_dir / "spm.model")
        write_lines(run_dir / SOURCE_WORDS, source_words(train_src))  # for --copy-unseen (decode/unseen.py)
    pairs = encode_pairs(tokenizer, train_src, train_tgt, cfg.trainer.max_len)
    layout = layout_of(cfg.model.kind)
    lengths = [example_length(s, t, layout) for s, t in pairs]
    batcher = TokenBucketBatcher(lengths, cfg.trainer.batch_tokens, seed=cfg.seed)
    log.info("%d training pairs, %d batches an epoch, %.1f%% padding", len(pairs), len(batcher.batches(0)),
             100 * batcher.padding_ratio(0))
    valid_sets = {}
    for name in active_sets(cfg.data, "valid_sets"):
        src, tgt = read_sets(cfg.data, [name])
        valid_sets[name] = (src, tgt, list(zip(tokenizer.encode(src), tokenizer.encode(tgt))))
    resegment = partial(dropout_pairs, tokenizer, train_src, train_tgt, cfg) if cfg.trainer.bpe_dropout else None
    data = TrainData(pairs, batcher, layout, bool(cfg.model.get("loss_on_source", False)), resegment)
    return tokenizer, data, valid_sets


def dropout_pairs(tokenizer, src: list[str], tgt: list[str], cfg, epoch: int) -> list[tuple[list[int], list[int]]]:
    """The training pairs of `epoch` under BPE-dropout, drawn from the run's seed and the epoch alone."""
    return encode_pairs(tokenizer, src, tgt, cfg.trainer.max_len, cfg.trainer.bpe_dropout,
                        seed=cfg.seed * 100_003 + epoch)


# ---------------------------------------------------------------------------------------------- resume

def resume(run: Run) -> None:
    """Continue from the newest checkpoint that loads: weights, Adam's moments, progress (step and data
    position) and RNG states, so that the run goes on bit-equal to one never stopped. Without one, start
    from trainer.init_from if it is set."""
    resumed = checkpoint.latest_loadable(run.ckpt_dir, warn=log.warning)
    found = run.group.gather(resumed and resumed["progress"]["step"])
    if len(set(found)) > 1:
        raise TrainingError(f"the ranks found different checkpoints in {run.ckpt_dir} (steps {found}): "
                            "every machine must see the same run directory (a shared filesystem)")
    if resumed is None:
        if run.tcfg.init_from:
            init_weights_from(run.model, run.tcfg.init_from)
        return
    run.model.load_state_dict(resumed["model"])
    run.optimizer.load_state_dict(resumed["optimizer"])
    run.progress = Progress(**resumed["progress"])
    run.last_saved = run.progress.step
    rng = resumed["rng"]
    if len(resumed.get("rng_ranks") or ()) == run.group.world:
        rng = resumed["rng_ranks"][run.group.rank]  # each rank's own dropout stream, on as many ranks as before
    torch.set_rng_state(rng["torch"])
    if run.device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"])
    log.info("resumed from step %d (epoch %d, batch %d)", run.progress.step, run.progress.epoch,
             run.progress.batch_index)


def init_weights_from(model, path) -> None:
    path = Path(path)
    state = checkpoint.load(path / "model.pt" if path.is_dir() else path)["model"]
    model.load_state_dict(state)
    log.info("initialised weights from %s (fresh optimizer and schedule)", path)


# ---------------------------------------------------------------------------------------------- the loop

def loop(run: Run) -> str:
    """Optimizer steps until a budget, the epochs, early stopping or a signal says stop; returns what did.
    A checkpoint is always written at the end, so that the run can go on from where it stopped."""
    forward = run.group.wrap(run.model)  # model.labelled_logits, or DistributedDataParallel over it
    forward = torch.compile(forward) if run.tcfg.compile else forward
    start = (run.progress.epoch, run.progress.batch_index)
    prefetch = Prefetcher(run.data, start, run.tcfg.max_epochs, run.group, pin=run.device.type == "cuda")
    run.writer = tensorboard_writer(run.run_dir) if run.group.main else None
    bar = progress_bar(run.tcfg, run.progress, enabled=run.group.main)
    run.started = time.perf_counter()
    with StopRequest() as stop, logging_redirect_tqdm():  # log lines print above the progress bar
        with closing(prefetch), bar:
            stop_reason = None
            while stop_reason is None:
                stop_reason = step_or_stop(run, forward, prefetch, bar, stop)
        check_nonfinite(run)
        if run.last_saved != run.progress.step:
            save_checkpoint(run)
    return stop_reason


def step_or_stop(run: Run, forward: Callable, prefetch: Prefetcher, bar: tqdm, stop: StopRequest) -> str | None:
    """One step and its on-cadence work, or the reason to stop before it. Only the step's own time counts
    towards trainer.max_minutes, not validation or checkpoint writes."""
    started = time.perf_counter()
    reason = run.group.main_decides(budget_reached(run.tcfg, run.progress, run.budget_s))  # rank 0's clock
    if reason:
        return reason
    micro = [prefetch.get() for _ in range(run.tcfg.accumulate)]
    if any(m is None for m in micro):  # every rank has as many batches an epoch: all stop here
        return f"max_epochs={run.tcfg.max_epochs}"
    lr, tokens, flops = optimizer_step(run, forward, [m[2] for m in micro])
    progress = run.progress
    progress.step += 1
    progress.epoch, progress.batch_index = micro[-1][:2]
    progress.tokens += int(tokens)
    progress.flops += flops
    progress.seconds += time.perf_counter() - started
    bar.update(1)
    return on_cadence(run, lr, bar, stop)


def optimizer_step(run: Run, forward: Callable, batches: list[Batch]) -> tuple[float, float, float]:
    """One Adam update (§5.3) on the learning-rate schedule, of the label-smoothed loss (§5.4) summed over
    `batches` (trainer.accumulate of them) and normalised by the step's labels over all ranks. A non-finite
    loss on any rank skips the update on every rank, with no host sync. Returns the learning rate and the
    step's input tokens and FLOPs over all ranks."""
    tcfg, group = run.tcfg, run.group
    run.model.train()
    lr = noam_lr(run.progress.step + 1, run.cfg.model.d_model, tcfg.warmup, run.lr_scale)
    for param_group in run.optimizer.param_groups:
        param_group["lr"] = lr
    step_tokens, tokens, flops = group.sum(  # this step's counts over all ranks
        sum(b.label_tokens for b in batches), sum(b.input_tokens for b in batches),
        sum(run.count_flops(b) for b in batches))
    # DDP averages the ranks' gradients: with each rank's loss over the mean tokens a rank, that average
    # is Σ_r grad_r / step_tokens, one process's gradient on all of the step's batches
    tokens_per_rank = step_tokens / group.world if group.world > 1 else step_tokens
    step_loss = torch.zeros((), device=run.device)
    for i, batch in enumerate(batches):
        batch = batch.to(run.device)
        with group.accumulating(i < len(batches) - 1):
            with run.autocast():
                logits, labels = forward(batch)
            loss, nll = label_smoothed_loss(logits, labels, tcfg.label_smoothing)
            (loss / tokens_per_rank).backward()
        step_loss += nll
    bad = group.max_((~torch.isfinite(step_loss)).float())  # a rank's non-finite loss skips the step on all
    run.optimizer.found_inf = bad
    if tcfg.clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), tcfg.clip_norm)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    meters = run.meters
    meters.nonfinite_run = (meters.nonfinite_run + 1) * bad
    meters.nonfinite_total += bad
    meters.loss += torch.nan_to_num(step_loss, nan=0.0, posinf=0.0, neginf=0.0)
    meters.tokens += step_tokens
    return lr, tokens, flops


def on_cadence(run: Run, lr: float, bar: tqdm, stop: StopRequest) -> str | None:
    """After a step: check for non-finite losses, log, validate, save, each on its cadence; returns a reason
    to stop (early stopping, a signal to any rank), after writing a checkpoint for it."""
    tcfg, step, group = run.tcfg, run.progress.step, run.group
    reason = None
    if step % run.sync_every == 0:
        check_nonfinite(run)
    if step % tcfg.log_every == 0:
        report(run, lr, bar)
    if step % tcfg.valid_every == 0:
        if group.main and validate(run):
            reason = f"no BLEU improvement in {tcfg.patience} validations"
        reason = group.main_decides(reason)  # the others wait for rank 0's validation
    interrupted = group.any(stop.requested)  # a signal to any rank stops them all after this step
    if step % tcfg.save_every == 0 or reason or interrupted:
        save_checkpoint(run)
    return "interrupted" if interrupted else reason


def budget_reached(tcfg, progress: Progress, budget_s: float) -> str | None:
    if progress.step >= tcfg.max_steps:
        return f"max_steps={tcfg.max_steps}"
    if progress.seconds >= budget_s:
        return f"max_minutes={tcfg.max_minutes}"
    if tcfg.max_tokens and progress.tokens >= tcfg.max_tokens:
        return f"max_tokens={tcfg.max_tokens}"
    if tcfg.max_flops and progress.flops >= tcfg.max_flops:
        return f"max_flops={tcfg.max_flops:.3g}"
    return None


def check_nonfinite(run: Run) -> None:
    """Log updates skipped for a non-finite loss; stop after trainer.nonfinite_limit in a row (a host sync)."""
    progress, meters = run.progress, run.meters
    skipped = int(meters.nonfinite_total.item())
    if skipped > progress.skipped:
        log.warning("step %d: %d update(s) skipped for a non-finite loss", progress.step, skipped - progress.skipped)
        progress.skipped = skipped
    if meters.nonfinite_run.item() >= run.tcfg.nonfinite_limit:
        raise TrainingError(f"{int(meters.nonfinite_run.item())} non-finite losses in a row up to step "
                            f"{progress.step}: lower the learning rate (trainer.peak_lr) or check the data")


def seconds_left(tcfg, progress: Progress, budget_s: float) -> tuple[float, str] | None:
    """Training seconds left at the measured throughput, and the budget that binds first
    (steps, minutes, tokens or FLOPs); None before anything was measured or with no such budget."""
    if progress.step == 0 or progress.seconds <= 0:
        return None
    rate = progress.seconds / progress.step  # seconds a step
    left = {"max_steps": (tcfg.max_steps - progress.step) * rate, "max_minutes": budget_s - progress.seconds}
    if tcfg.max_tokens and progress.tokens:
        left["max_tokens"] = (tcfg.max_tokens - progress.tokens) * progress.seconds / progress.tokens
    if tcfg.max_flops and progress.flops:
        left["max_flops"] = (tcfg.max_flops - progress.flops) * progress.seconds / progress.flops
    name = min(left, key=left.get)
    return (max(left[name], 0.0), name) if left[name] < math.inf else None


def report(run: Run, lr: float, bar: tqdm) -> None:
    """The log line of trainer.log_every steps (the mean nll a label since the last one), on every rank's sum."""
    progress, meters = run.progress, run.meters
    train_nll = run.group.sum_(meters.loss).item() / max(meters.tokens, 1)
    meters.loss.zero_()
    meters.tokens = 0
    tps = progress.tokens / max(progress.seconds, 1e-9)
    left = seconds_left(run.tcfg, progress, run.budget_s)
    bar.set_postfix(loss=f"{train_nll:.3f}", lr=f"{lr:.2e}", tok_s=f"{tps:,.0f}",
                    eta=f"{left[0] / 60:.1f}m" if left else None)
    eta = f", ETA {left[0] / 60:.1f} min of training to {left[1]}" if left else ""
    log.info("step %d: nll %.4f, lr %.3e, %.0f tokens/s, %.1f min%s", progress.step, train_nll, lr, tps,
             progress.seconds / 60, eta)
    if run.writer:
        run.writer.add_scalar("train/nll", train_nll, progress.step)
        run.writer.add_scalar("train/lr", lr, progress.step)
        run.writer.add_scalar("train/tokens_per_s", tps, progress.step)


def save_checkpoint(run: Run) -> None:
    """Rank 0 writes the checkpoint; with several ranks it holds each rank's RNG state too (`rng_ranks`)."""
    run.last_saved = run.progress.step
    rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None}
    rng_ranks = run.group.gather(rng)
    if not run.group.main:
        return
    state = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "progress": asdict(run.progress),
        "rng": rng,
    }
    if run.group.world > 1:
        state["rng_ranks"] = rng_ranks
    try:
        checkpoint.save(state, checkpoint.step_path(run.ckpt_dir, run.progress.step))
    except OSError as e:
        raise TrainingError(f"cannot write a checkpoint in {run.ckpt_dir} ({e.strerror}); "
                            "the previous checkpoint is intact") from None
    checkpoint.prune(run.ckpt_dir, run.tcfg.keep_last)


@torch.no_grad()
def validate(run: Run) -> bool:
    """Validation loss on every set, greedy BLEU on the first trainer.valid_max_sentences of each; keeps the
    best model as best.pt. Returns True when early stopping (trainer.patience) says stop."""
    progress = run.progress
    run.model.eval()
    entry = {"step": progress.step, "seconds": round(progress.seconds, 1), "tokens": progress.tokens,
             "flops": progress.flops, "sets": {}}
    translator = Translator(run.model, run.tokenizer, run.device)
    for name, (src, tgt, pairs) in run.valid_sets.items():
        nll, n = validation_loss(run, pairs)
        k = run.tcfg.valid_max_sentences or len(src)
        hyps = translator.translate(src[:k], temperature=0.0, batch_tokens=run.tcfg.eval_batch_tokens)
        entry["sets"][name] = {"nll": round(nll / n, 4), "ppl": round(math.exp(min(nll / n, 50)), 2),
                               "bleu": score(hyps, tgt[:k])["bleu"]}
    entry["bleu"] = round(sum(s["bleu"] for s in entry["sets"].values()) / len(entry["sets"]), 2)
    entry["nll"] = round(sum(s["nll"] for s in entry["sets"].values()) / len(entry["sets"]), 4)
    progress.history.append(entry)
    log.info("step %d validation: nll %.3f, greedy BLEU %s", progress.step, entry["nll"],
             ", ".join(f"{k} {v['bleu']:.1f}" for k, v in entry["sets"].items()))
    if run.writer:
        run.writer.add_scalar("valid/nll", entry["nll"], progress.step)
        run.writer.add_scalar("valid/bleu", entry["bleu"], progress.step)
    if entry["bleu"] > progress.best_bleu:
        progress.best_bleu, progress.bad_validations = entry["bleu"], 0
        checkpoint.save({"model": run.model.state_dict(), "step": progress.step, "bleu": entry["bleu"]},
                        run.ckpt_dir / "best.pt")
    else:
        progress.bad_validations += 1
    run.model.train()
    return run.tcfg.patience > 0 and progress.bad_validations >= run.tcfg.patience


def validation_loss(run: Run, pairs: list) -> tuple[float, int]:
    """Σ nll and target pieces (<eos> included) of a validation set: labels on the target only for every kind,
    with or without a loss on the source in training, so that the curves of both kinds compare."""
    nll = n = 0.0
    for start in range(0, len(pairs), 128):
        batch = collate(pairs[start:start + 128], run.data.layout).to(run.device)
        with run.autocast():
            logits, labels = run.model.labelled_logits(batch)
        nll += label_smoothed_loss(logits, labels, 0.0)[1].item()
        n += batch.tgt_tokens
    return nll, n


# ---------------------------------------------------------------------------------------------- finish

def finish(run: Run, stop_reason: str) -> dict:
    """After the loop: rank 0 averages the last checkpoints into model/ (§6.1), scores the test sets with
    beam search (§6.1) and writes results.json; every rank returns it. An interrupted run exits with 130."""
    progress, group = run.progress, run.group
    log.info("training stopped at step %d after %.1f min (%s)", progress.step, progress.seconds / 60, stop_reason)
    if stop_reason == "interrupted":
        log.warning("checkpoint written at step %d; run the same command again to resume", progress.step)
        raise SystemExit(130)
    if not group.main:
        return group.from_main(None)  # rank 0 averages, writes model/ and results.json, and tests
    weights, weights_from = final_weights(run.model, run.ckpt_dir, run.tcfg.average_last)
    log.info("model/ holds %s", weights_from)
    save_model_dir(run.run_dir / "model", weights, run.cfg.model, len(run.tokenizer), run.tokenizer.path)
    shutil.copyfile(run.run_dir / SOURCE_WORDS, run.run_dir / "model" / SOURCE_WORDS)
    run.model.load_state_dict(weights)
    results = summary(run, stop_reason, weights_from)
    words = read_source_words(run.run_dir / SOURCE_WORDS)  # names never seen are carried through (decode/unseen.py)
    translator = Translator(run.model, run.tokenizer, run.device, source_words=words)
    results["test"] = test_scores(translator, run.cfg, run.run_dir)
    results["env"] = environment(run.device)
    write_text(run.run_dir / "results.json", json.dumps(results, indent=2))
    log.info("results: %s", run.run_dir / "results.json")
    return group.from_main(results)


def summary(run: Run, stop_reason: str, weights_from: str) -> dict:
    """The model, data and training parts of results.json."""
    mcfg, p = run.cfg.model, run.progress
    seconds = max(p.seconds, 1e-9)
    return {
        "model": {"name": mcfg.get("name", mcfg.kind), "kind": mcfg.kind, "params": count_parameters(run.model),
                  "weights": weights_from},
        "data": {"manifest_sha256": manifest_sha256(run.cfg.data.out_dir), "train_pairs": len(run.data.pairs)},
        "train": {"steps": p.step, "seconds": round(p.seconds, 1), "tokens": p.tokens,
                  "tokens_per_s": round(p.tokens / seconds, 1), "flops": p.flops,
                  "model_tflops_per_s": round(p.flops / seconds / 1e12, 3), "skipped_updates": p.skipped,
                  "wall_seconds": round(time.perf_counter() - run.started, 1), "stopped_by": stop_reason,
                  "processes": run.group.world, "history": p.history},
    }


def final_weights(model, ckpt_dir: Path, average_last: int) -> tuple[dict, str]:
    """§6.1: the mean of the last `average_last` checkpoints, else the best by validation BLEU, else the last."""
    steps = checkpoint.list_steps(ckpt_dir)
    if average_last > 1 and len(steps) > 1:
        chosen = steps[-average_last:]
        names = ", ".join(p.name for p in chosen)
        return checkpoint.average(chosen), f"the average of {len(chosen)} checkpoints ({names})"
    best = ckpt_dir / "best.pt"
    if best.is_file():
        return checkpoint.load(best)["model"], "the best checkpoint by validation BLEU"
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, "the last weights"


def final_search(tcfg) -> SearchConfig:
    """The search of the final test (trainer.final_beam, trainer.final_lenpen; §6.1: beam 4, α 0.6)."""
    return SearchConfig(beam=tcfg.final_beam, lenpen=tcfg.final_lenpen)


def test_scores(translator: Translator, cfg, run_dir: Path) -> dict:
    """Beam search (§6.1) on every configured test set; hypotheses written beside the scores."""
    tcfg, out = cfg.trainer, {}
    for name in active_sets(cfg.data, "test_sets"):
        src, ref = read_sets(cfg.data, [name])
        if not src:
            log.info("test set %s is empty: skipped", name)
            continue
        if tcfg.test_max_sentences:
            src, ref = src[: tcfg.test_max_sentences], ref[: tcfg.test_max_sentences]
        hyps, out[name] = translate_and_score(translator, src, ref, final_search(tcfg),
                                              batch_tokens=tcfg.eval_batch_tokens, keep=cfg.data.src_lang == "en")
        write_lines(run_dir / "test" / f"{name.replace('/', '.')}.hyp", hyps)
    if out:
        print(format_table(out), flush=True)  # stdout; the scores are in results.json
    return out


def environment(device) -> dict:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        sha = None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"git_sha": sha, "torch": torch.__version__, "sacrebleu": sacrebleu.__version__,
            "sentencepiece": sentencepiece.__version__, "device": f"{device.type}: {name}",
            "threads": torch.get_num_threads(), "python": platform.python_version()}


# ---------------------------------------------------------------------------------------------- helpers

class Prefetcher:
    """Collates batches on a background thread so the step never waits for the CPU-side work.

    Yields (epoch, index, batch) from `start` = (epoch, index): the data position after this batch's round
    (every rank's batch at this place), normalised to (epoch + 1, 0) once the epoch has no round left;
    then None after `max_epochs` epochs."""

    def __init__(self, data: TrainData, start: tuple[int, int], max_epochs: int | None, group: Group,
                 pin: bool = False, depth: int = 8):
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.pin = pin
        self.thread = threading.Thread(target=self._run, args=(data, *start, max_epochs, group.rank, group.world),
                                       daemon=True)
        self.thread.start()

    def _run(self, data: TrainData, epoch: int, index: int, max_epochs: int | None, rank: int, world: int):
        while not self.stop.is_set() and (max_epochs is None or epoch < max_epochs):
            pairs, batches = data.epoch(epoch)
            for i in shard(len(batches), index, rank, world):
                batch = data.collate(pairs, batches[i])
                after = i - rank + world
                position = (epoch, after) if after + world <= len(batches) else (epoch + 1, 0)
                if not self._put((*position, batch.pin_memory() if self.pin else batch)):
                    return
            epoch, index = epoch + 1, 0
        self._put(None)

    def _put(self, item) -> bool:
        """Queue `item` unless asked to stop first (a full queue never blocks the stop)."""
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self):
        return self.queue.get()

    def close(self):
        """Stop and wait for the thread: one still inside torch when the interpreter exits aborts it."""
        self.stop.set()
        self.thread.join()


class StopRequest:
    """SIGINT/SIGTERM: finish the current step, checkpoint, exit. A second SIGINT exits at once."""

    def __init__(self):
        self.requested = False
        self.previous = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("%s received: finishing this step and writing a checkpoint (Ctrl-C again to quit now)",
                    signal.Signals(signum).name)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def tensorboard_writer(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 (tensorboard is optional)
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def progress_bar(tcfg, progress: Progress, enabled: bool = True) -> tqdm:
    return tqdm(total=tcfg.max_steps if not tcfg.max_minutes else None, initial=progress.step, unit="step",
                dynamic_ncols=True, mininterval=2.0, disable=None if enabled else True)
