"""The training loop (§5): batches → label-smoothed loss → Adam step on the warm-up schedule →
validation → checkpoints → averaging (§6.1) → test scores. One loop for both model kinds.

`train(cfg, run_dir)` is a plain function; `seq2seq train` wraps it with Hydra. A run directory that
already holds checkpoints is resumed: weights, optimizer, step, data position and RNG states.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tqdm.contrib.logging import logging_redirect_tqdm

from seq2seq.data.batching import TokenBucketBatcher, collate, example_length, layout_of
from seq2seq.data.prepare import manifest_sha256
from seq2seq.data.sets import active_sets, encode_pairs, prepare_data, read_sets
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
from seq2seq.decode.config import SearchConfig
from seq2seq.translator import Translator

log = logging.getLogger("seq2seq.train")


@dataclass
class Progress:
    """Everything besides weights and optimizer that a resumed run needs."""

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


class Prefetcher:
    """Collates batches on a background thread so the step never waits for the CPU-side work.

    Yields (epoch, index, batch): the data position after this batch's round (every rank's batch at
    this place), normalised to (epoch + 1, 0) once the epoch has no round left."""

    def __init__(self, pairs, batcher, layout, loss_on_source, start_epoch, start_index, max_epochs, pin=False, depth=8,
                 rank=0, world=1):
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.pin = pin
        args = (pairs, batcher, layout, loss_on_source, start_epoch, start_index, max_epochs, rank, world)
        self.thread = threading.Thread(target=self._run, args=args, daemon=True)
        self.thread.start()

    def _run(self, pairs, batcher, layout, loss_on_source, epoch, index, max_epochs, rank, world):
        while not self.stop.is_set() and (max_epochs is None or epoch < max_epochs):
            batches = batcher.batches(epoch)
            for i in shard(len(batches), index, rank, world):
                batch = collate([pairs[j] for j in batches[i]], layout, loss_on_source)
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


# ---------------------------------------------------------------------------------------------- loop

def train(cfg, run_dir: str | os.PathLike) -> dict:
    """Train the configured model in `run_dir` (resuming if it holds checkpoints); return results.json.
    Under torchrun every rank calls this, and every rank returns rank 0's results."""
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    device, amp_dtype = select_device(cfg.trainer)
    group, device = Group.start(device)  # a group of one outside torchrun
    try:
        if not group.main:  # the other ranks write nothing and log warnings only
            logging.getLogger("seq2seq").setLevel(logging.WARNING)
            return _train(cfg, run_dir, ckpt_dir, group, device, amp_dtype)
        try:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        except OSError as e:
            raise TrainingError(f"run directory {run_dir} is not writable: {e.strerror}") from None
        handler = attach_log_file(run_dir / "train.log")
        try:
            return _train(cfg, run_dir, ckpt_dir, group, device, amp_dtype)
        finally:
            logging.getLogger("seq2seq").removeHandler(handler)
            handler.close()
    finally:
        group.close()


def attach_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("seq2seq")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def _train(cfg, run_dir: Path, ckpt_dir: Path, group: Group, device: torch.device, amp_dtype) -> dict:
    tcfg, mcfg = cfg.trainer, cfg.model
    torch.manual_seed(cfg.seed)

    with group.main_first():  # rank 0 writes the splits and the tokenizer, the others read them
        train_src, train_tgt, tokenizer = prepare_data(cfg)
    if group.main:
        shutil.copyfile(tokenizer.path, run_dir / "spm.model")
    pairs = encode_pairs(tokenizer, train_src, train_tgt, tcfg.max_len)
    layout = layout_of(mcfg.kind)
    loss_on_source = bool(mcfg.get("loss_on_source", False))
    lengths = [example_length(s, t, layout) for s, t in pairs]
    batcher = TokenBucketBatcher(lengths, tcfg.batch_tokens, seed=cfg.seed)
    log.info("%d training pairs, %d batches an epoch, %.1f%% padding", len(pairs), len(batcher.batches(0)),
             100 * batcher.padding_ratio(0))
    valid_sets = {}  # name -> (source text, reference text, encoded pairs), encoded once for every validation
    for name in active_sets(cfg.data, "valid_sets"):
        src, tgt = read_sets(cfg.data, [name])
        valid_sets[name] = (src, tgt, list(zip(tokenizer.encode(src), tokenizer.encode(tgt))))

    model = build_model(mcfg, len(tokenizer)).to(device)
    if group.rank:
        torch.manual_seed(cfg.seed + group.rank)  # the same initial weights, dropout masks of its own
    n_params = count_parameters(model)
    log.info("model %s: %s parameters on %s (%s)", mcfg.get("name", mcfg.kind), f"{n_params:,}", device,
             "bf16 autocast" if amp_dtype else "fp32")
    # Fused Adam skips an update on the device when `found_inf` is set, so a non-finite loss needs no host sync.
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0, betas=tuple(tcfg.adam_betas), eps=tcfg.adam_eps,
                                 weight_decay=tcfg.weight_decay, fused=True)
    lr_scale = noam_scale(mcfg.d_model, tcfg.warmup, tcfg.peak_lr, tcfg.lr_scale)
    count_flops = FlopCounter(model)

    progress = Progress()
    resumed = checkpoint.latest_loadable(ckpt_dir, warn=log.warning)
    found = group.gather(resumed and resumed["progress"]["step"])
    if len(set(found)) > 1:
        raise TrainingError(f"the ranks found different checkpoints in {ckpt_dir} (steps {found}): "
                            "every machine must see the same run directory (a shared filesystem)")
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        progress = Progress(**resumed["progress"])
        rng = resumed["rng"]
        if len(resumed.get("rng_ranks") or ()) == group.world:
            rng = resumed["rng_ranks"][group.rank]  # each rank's own dropout stream, on as many ranks as before
        torch.set_rng_state(rng["torch"])
        if device.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"])
        log.info("resumed from step %d (epoch %d, batch %d)", progress.step, progress.epoch, progress.batch_index)
    elif tcfg.init_from:
        init_weights_from(model, tcfg.init_from)
    forward = group.wrap(model)  # model.labelled_logits, or DistributedDataParallel over it
    step_logits = torch.compile(forward) if tcfg.compile else forward

    budget_s = tcfg.max_minutes * 60 if tcfg.max_minutes else math.inf
    prefetch = Prefetcher(pairs, batcher, layout, loss_on_source, progress.epoch, progress.batch_index,
                          tcfg.max_epochs, pin=device.type == "cuda", rank=group.rank, world=group.world)
    writer = tensorboard_writer(run_dir) if group.main else None
    bar = progress_bar(tcfg, progress, enabled=group.main)
    sync_every = 1 if device.type == "cpu" else tcfg.log_every  # host syncs stall a GPU: batch them
    running_loss = torch.zeros((), device=device)
    running_tokens = 0
    nonfinite_run = torch.zeros((), device=device)  # consecutive non-finite losses, counted on the device
    nonfinite_total = torch.zeros((), device=device)
    last_saved = progress.step
    stop_reason = None
    t_wall = time.perf_counter()
    with StopRequest() as stop, logging_redirect_tqdm():  # log lines print above the progress bar
        t_last = time.perf_counter()  # the budget counts training steps, not validation or checkpoint writes
        while stop_reason is None:
            stop_reason = group.main_decides(budget_reached(tcfg, progress, budget_s))  # rank 0's clock
            if stop_reason:
                break
            micro = [prefetch.get() for _ in range(tcfg.accumulate)]
            if any(m is None for m in micro):  # every rank has as many batches an epoch: all stop here
                stop_reason = f"max_epochs={tcfg.max_epochs}"
                break
            model.train()
            lr = noam_lr(progress.step + 1, mcfg.d_model, tcfg.warmup, lr_scale)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            batches = [m[2] for m in micro]
            step_tokens, tokens, flops = group.sum(  # this step's counts over all ranks
                sum(b.label_tokens for b in batches), sum(b.input_tokens for b in batches),
                sum(count_flops(b) for b in batches))
            # DDP averages the ranks' gradients: with each rank's loss over the mean tokens a rank, that average
            # is Σ_r grad_r / step_tokens, one process's gradient on all of the step's batches
            tokens_per_rank = step_tokens / group.world if group.world > 1 else step_tokens
            step_loss = torch.zeros((), device=device)
            for i, batch in enumerate(batches):
                batch = batch.to(device)
                with group.accumulating(i < len(batches) - 1):
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        logits, labels = step_logits(batch)
                    loss, nll = label_smoothed_loss(logits, labels, tcfg.label_smoothing)
                    (loss / tokens_per_rank).backward()
                step_loss += nll
            bad = group.max_((~torch.isfinite(step_loss)).float())  # a rank's non-finite loss skips the step on all
            optimizer.found_inf = bad
            if tcfg.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.clip_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            nonfinite_run = (nonfinite_run + 1) * bad
            nonfinite_total += bad
            running_loss += torch.nan_to_num(step_loss, nan=0.0, posinf=0.0, neginf=0.0)
            running_tokens += step_tokens

            progress.step += 1
            progress.epoch, progress.batch_index = micro[-1][:2]
            progress.tokens += int(tokens)
            progress.flops += flops
            now = time.perf_counter()
            progress.seconds += now - t_last
            t_last = now
            bar.update(1)

            if progress.step % sync_every == 0:
                check_nonfinite(progress, nonfinite_run, nonfinite_total, tcfg.nonfinite_limit)
            if progress.step % tcfg.log_every == 0:
                report(progress, group.sum_(running_loss), running_tokens, lr, budget_s, bar, writer, tcfg)
                running_loss.zero_()
                running_tokens = 0
            if progress.step % tcfg.valid_every == 0:
                if group.main and validate(model, tokenizer, valid_sets, layout, tcfg, device,
                                           amp_dtype, progress, ckpt_dir, writer):
                    stop_reason = f"no BLEU improvement in {tcfg.patience} validations"
                stop_reason = group.main_decides(stop_reason)  # the others wait for rank 0's validation
            interrupted = group.any(stop.requested)  # a signal to any rank stops them all after this step
            if progress.step % tcfg.save_every == 0 or stop_reason or interrupted:
                save_checkpoint(model, optimizer, progress, ckpt_dir, tcfg.keep_last, group)
                last_saved = progress.step
            if interrupted:
                stop_reason = "interrupted"
            t_last = time.perf_counter()
        prefetch.close()
        bar.close()
        check_nonfinite(progress, nonfinite_run, nonfinite_total, tcfg.nonfinite_limit)
        if last_saved != progress.step:
            save_checkpoint(model, optimizer, progress, ckpt_dir, tcfg.keep_last, group)
    log.info("training stopped at step %d after %.1f min (%s)", progress.step, progress.seconds / 60, stop_reason)
    if stop_reason == "interrupted":
        log.warning("checkpoint written at step %d; run the same command again to resume", progress.step)
        raise SystemExit(130)
    if not group.main:
        return group.from_main(None)  # rank 0 averages, writes model/ and results.json, and tests

    weights, weights_from = final_weights(model, ckpt_dir, tcfg.average_last)
    log.info("model/ holds %s", weights_from)
    save_model_dir(run_dir / "model", weights, mcfg, len(tokenizer), tokenizer.path)
    model.load_state_dict(weights)
    results = {
        "model": {"name": mcfg.get("name", mcfg.kind), "kind": mcfg.kind, "params": n_params, "weights": weights_from},
        "data": {"manifest_sha256": manifest_sha256(cfg.data.out_dir), "train_pairs": len(pairs)},
        "train": {"steps": progress.step, "seconds": round(progress.seconds, 1), "tokens": progress.tokens,
                  "tokens_per_s": round(progress.tokens / max(progress.seconds, 1e-9), 1),
                  "flops": progress.flops, "model_tflops_per_s": round(progress.flops / max(progress.seconds, 1e-9) / 1e12, 3),
                  "skipped_updates": progress.skipped, "wall_seconds": round(time.perf_counter() - t_wall, 1),
                  "stopped_by": stop_reason, "processes": group.world, "history": progress.history},
        "test": test_scores(Translator(model, tokenizer, device), cfg, run_dir),
        "env": environment(device),
    }
    write_text(run_dir / "results.json", json.dumps(results, indent=2))
    log.info("results: %s", run_dir / "results.json")
    return group.from_main(results)


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


def check_nonfinite(progress: Progress, run: torch.Tensor, total: torch.Tensor, limit: int) -> None:
    """Log updates skipped for a non-finite loss; stop after `limit` in a row."""
    skipped = int(total.item())
    if skipped > progress.skipped:
        log.warning("step %d: %d update(s) skipped for a non-finite loss", progress.step, skipped - progress.skipped)
        progress.skipped = skipped
    if run.item() >= limit:
        raise TrainingError(f"{int(run.item())} non-finite losses in a row up to step {progress.step}: "
                            "lower the learning rate (trainer.peak_lr) or check the data")


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


def report(progress: Progress, running_loss, running_tokens: int, lr: float, budget_s: float, bar, writer,
           tcfg) -> None:
    train_nll = running_loss.item() / max(running_tokens, 1)
    tps = progress.tokens / max(progress.seconds, 1e-9)
    left = seconds_left(tcfg, progress, budget_s)
    bar.set_postfix(loss=f"{train_nll:.3f}", lr=f"{lr:.2e}", tok_s=f"{tps:,.0f}",
                    eta=f"{left[0] / 60:.1f}m" if left else None)
    eta = f", ETA {left[0] / 60:.1f} min of training to {left[1]}" if left else ""
    log.info("step %d: nll %.4f, lr %.3e, %.0f tokens/s, %.1f min%s", progress.step, train_nll, lr, tps,
             progress.seconds / 60, eta)
    if writer:
        writer.add_scalar("train/nll", train_nll, progress.step)
        writer.add_scalar("train/lr", lr, progress.step)
        writer.add_scalar("train/tokens_per_s", tps, progress.step)


def init_weights_from(model, path) -> None:
    path = Path(path)
    state = checkpoint.load(path / "model.pt" if path.is_dir() else path)["model"]
    model.load_state_dict(state)
    log.info("initialised weights from %s (fresh optimizer and schedule)", path)


def save_checkpoint(model, optimizer, progress: Progress, ckpt_dir: Path, keep_last: int, group: Group) -> None:
    """Rank 0 writes the checkpoint; with several ranks it holds each rank's RNG state too (`rng_ranks`)."""
    rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None}
    rng_ranks = group.gather(rng)
    if not group.main:
        return
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "progress": asdict(progress),
        "rng": rng,
    }
    if group.world > 1:
        state["rng_ranks"] = rng_ranks
    try:
        checkpoint.save(state, checkpoint.step_path(ckpt_dir, progress.step))
    except OSError as e:
        raise TrainingError(f"cannot write a checkpoint in {ckpt_dir} ({e.strerror}); "
                            "the previous checkpoint is intact") from None
    checkpoint.prune(ckpt_dir, keep_last)


def final_weights(model, ckpt_dir: Path, average_last: int) -> tuple[dict, str]:
    """§6.1: the mean of the last `average_last` checkpoints, else the best by validation BLEU, else the last."""
    steps = checkpoint.list_steps(ckpt_dir)
    if average_last > 1 and len(steps) > 1:
        chosen = steps[-average_last:]
        return checkpoint.average(chosen), f"the average of {len(chosen)} checkpoints ({', '.join(p.name for p in chosen)})"
    best = ckpt_dir / "best.pt"
    if best.is_file():
        return checkpoint.load(best)["model"], "the best checkpoint by validation BLEU"
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, "the last weights"


@torch.no_grad()
def validate(model, tokenizer, valid_sets, layout, tcfg, device, amp_dtype, progress, ckpt_dir, writer) -> bool:
    """Validation loss on every set, greedy BLEU on the first sentences of each; keeps the best model.
    The loss is per target piece (<eos> included) for every kind, with or without a loss on the source
    in training, so that curves compare. Returns True when early stopping says stop."""
    model.eval()
    entry = {"step": progress.step, "seconds": round(progress.seconds, 1), "tokens": progress.tokens, "sets": {}}
    translator = Translator(model, tokenizer, device)
    for name, (src, tgt, pairs) in valid_sets.items():
        nll = n = 0.0
        for start in range(0, len(pairs), 128):
            batch = collate(pairs[start:start + 128], layout).to(device)  # labels on the target only
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits, labels = model.labelled_logits(batch)
            nll += label_smoothed_loss(logits, labels, 0.0)[1].item()
            n += batch.tgt_tokens
        k = tcfg.valid_max_sentences or len(src)
        hyps = translator.translate(src[:k], temperature=0.0, batch_tokens=tcfg.eval_batch_tokens)
        entry["sets"][name] = {"nll": round(nll / n, 4), "ppl": round(math.exp(min(nll / n, 50)), 2),
                               "bleu": score(hyps, tgt[:k])["bleu"]}
    entry["bleu"] = round(sum(s["bleu"] for s in entry["sets"].values()) / len(entry["sets"]), 2)
    entry["nll"] = round(sum(s["nll"] for s in entry["sets"].values()) / len(entry["sets"]), 4)
    progress.history.append(entry)
    log.info("step %d validation: nll %.3f, greedy BLEU %s", progress.step, entry["nll"],
             ", ".join(f"{k} {v['bleu']:.1f}" for k, v in entry["sets"].items()))
    if writer:
        writer.add_scalar("valid/nll", entry["nll"], progress.step)
        writer.add_scalar("valid/bleu", entry["bleu"], progress.step)
    if entry["bleu"] > progress.best_bleu:
        progress.best_bleu, progress.bad_validations = entry["bleu"], 0
        checkpoint.save({"model": model.state_dict(), "step": progress.step, "bleu": entry["bleu"]}, ckpt_dir / "best.pt")
    else:
        progress.bad_validations += 1
    model.train()
    return tcfg.patience > 0 and progress.bad_validations >= tcfg.patience


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
    import sacrebleu
    import sentencepiece

    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        sha = None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"git_sha": sha, "torch": torch.__version__, "sacrebleu": sacrebleu.__version__,
            "sentencepiece": sentencepiece.__version__, "device": f"{device.type}: {name}",
            "threads": torch.get_num_threads(), "python": platform.python_version()}


def tensorboard_writer(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def progress_bar(tcfg, progress: Progress, enabled: bool = True):
    from tqdm import tqdm

    return tqdm(total=tcfg.max_steps if not tcfg.max_minutes else None, initial=progress.step, unit="step",
                dynamic_ncols=True, mininterval=2.0, disable=None if enabled else True)
