"""`make gpu-check`: every GPU measurement, in one call of at most ~6 minutes on one H200.

1. the bf16 matrix-product peak of this GPU (the MFU denominator);
2. `experiment=h200_budget`: transformer_base trained for 270 s, checkpoints averaged, beam 4 on the
   test sets (plus the last checkpoint alone on Multi30k 2016, to show what averaging bought);
3. throughput probes on the same batches: ours (transformer_base, gpt_base) and Hugging Face's
   MarianMTModel of the same shape, each with bf16 autocast and fused Adam;
4. one table on stdout and JSON under $OUT (or --out).

On a CPU, `--smoke` runs the same path with a tiny model and a few seconds per stage.
Extra arguments are Hydra overrides for the training run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seq2seq.bench.peers import build  # noqa: E402
from seq2seq.bench.training import sample_batches  # noqa: E402
from seq2seq.config import compose  # noqa: E402
from seq2seq.data.batching import collate, layout_of  # noqa: E402
from seq2seq.data.prepare import read_split  # noqa: E402
from seq2seq.data.sets import encode_pairs, prepare_data  # noqa: E402
from seq2seq.evaluate import score  # noqa: E402
from seq2seq.train import checkpoint  # noqa: E402
from seq2seq.train.flops import FlopCounter  # noqa: E402
from seq2seq.train.loss import label_smoothed_loss  # noqa: E402
from seq2seq.train.trainer import final_search, select_device, train  # noqa: E402
from seq2seq.translator import Translator  # noqa: E402


def matmul_peak(device, size: int, repeats: int = 10) -> float:
    """TFLOP/s of a size³ bf16 matrix product on random data (mean of `repeats` after 3 warm-ups)."""
    a, b = (torch.randn(size, size, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def labelled_logits(model, batch):
    """The training forward: ours projects to the vocabulary only where a label is; a peer gives logits at
    every position, against `tgt_out` (PAD where no loss is), as the bench's training probe does."""
    if hasattr(model, "labelled_logits"):
        return model.labelled_logits(batch)
    return model.logits(batch), batch.tgt_out


def probe(implementation: str, model_cfg, vocab: int, batches, seconds: float, device, amp_dtype) -> dict:
    """Train steps on `batches` (cycled) for `seconds` after a warm-up; tokens/s and model TFLOP/s."""
    torch.manual_seed(0)
    model = build(implementation, model_cfg, vocab).to(device).train()
    ours = build("ours", model_cfg, vocab)  # the FLOP count is the architecture's, whoever implements it
    count = FlopCounter(ours)
    del ours
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, fused=True)
    layout = layout_of(model_cfg.kind)
    collated = [collate(b, layout).pin_memory() if device.type == "cuda" else collate(b, layout) for b in batches]

    def step(batch):
        batch = batch.to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits, labels = labelled_logits(model, batch)
        loss, _ = label_smoothed_loss(logits, labels, 0.1)
        (loss / batch.label_tokens).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch in collated[:3]:
        step(batch)
    sync(device)
    tokens = flops = steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for batch in collated[steps % len(collated): steps % len(collated) + 10]:
            step(batch)
            tokens += batch.input_tokens
            flops += count(batch)
            steps += 1
        sync(device)
    elapsed = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    return {"implementation": implementation, "model": model_cfg.name, "params": params, "steps": steps,
            "tokens_per_s": tokens / elapsed, "model_tflops_per_s": flops / elapsed / 1e12}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny model, seconds per stage (a CPU test of this script)")
    parser.add_argument("--probe-seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")))
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/seq2seq_gpu_run"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the training run")
    return parser.parse_args()


def last_checkpoint_bleu(cfg, run_dir: Path, device: torch.device) -> float:
    """What averaging bought: the last checkpoint alone on Multi30k 2016."""
    last = checkpoint.list_steps(run_dir / "checkpoints")[-1]
    translator = Translator.load(run_dir / "model", device=device.type)
    translator.model.load_state_dict(checkpoint.load(last)["model"])
    src, ref = read_split(cfg.data.out_dir, "multi30k/test_2016_flickr", cfg.data.src_lang, cfg.data.tgt_lang)
    if cfg.trainer.test_max_sentences:
        src, ref = src[: cfg.trainer.test_max_sentences], ref[: cfg.trainer.test_max_sentences]
    hyps = translator.translate(src, final_search(cfg.trainer), batch_tokens=cfg.trainer.eval_batch_tokens)
    return score(hyps, ref)["bleu"]


def throughput_probes(cfg, gpt_cfg, seconds: float, device, amp_dtype, peak_tflops: float) -> list[dict]:
    """Ours, Hugging Face's and the decoder-only model's training throughput, on the same batches."""
    train_src, train_tgt, tokenizer = prepare_data(cfg)
    pairs = encode_pairs(tokenizer, train_src, train_tgt, cfg.trainer.max_len)
    rows = []
    for implementation, model_cfg in (("ours", cfg.model), ("hf", cfg.model), ("ours", gpt_cfg)):
        batches = sample_batches(pairs, layout_of(model_cfg.kind), cfg.trainer.batch_tokens, 40)
        try:
            row = probe(implementation, model_cfg, len(tokenizer), batches, seconds, device, amp_dtype)
        except Exception as e:  # a peer that cannot run here is reported, not fatal
            row = {"implementation": implementation, "model": model_cfg.name, "error": f"{type(e).__name__}: {e}"[:300]}
        if "model_tflops_per_s" in row:
            row["mfu"] = row["model_tflops_per_s"] / peak_tflops
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def summary(report: dict) -> str:
    lines = [f"# gpu-check on {report['device']} (torch {report['torch']}), {report['seconds']:.0f} s",
             f"bf16 matmul peak: {report['bf16_peak_tflops']:.0f} TFLOP/s",
             f"train: {report['train']['steps']} steps in {report['train']['seconds']:.0f} s, "
             f"{report['train']['tokens_per_s']:,.0f} tokens/s, MFU {100 * report['train']['mfu']:.1f}%",
             f"{'test set':<28} {'BLEU':>6} {'chrF':>6}"]
    lines += [f"{k:<28} {v['bleu']:>6.2f} {v['chrf']:>6.2f}" for k, v in report["test"].items()]
    lines.append("last checkpoint alone, multi30k/test_2016_flickr: "
                 f"{report['last_checkpoint_multi30k_2016_bleu']:.2f}")
    lines.append(f"{'probe':<26} {'tokens/s':>12} {'TFLOP/s':>8} {'MFU':>6}")
    for r in report["probes"]:
        name = f"{r['implementation']} {r['model']}"
        figures = (f"{r['tokens_per_s']:>12,.0f} {r['model_tflops_per_s']:>8.1f} {100 * r['mfu']:>5.1f}%"
                   if "error" not in r else r["error"][:80])
        lines.append(f"{name:<26} " + figures)
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    overrides = ["experiment=h200_budget", *args.overrides]
    if args.smoke:
        overrides += ["model=transformer_tiny", "trainer.device=auto", "trainer.precision=auto",
                      "trainer.max_minutes=0.1", "trainer.batch_tokens=2048", "trainer.save_every=5",
                      "trainer.test_max_sentences=50", "trainer.log_every=5"]
        args.probe_seconds = min(args.probe_seconds, 2.0)
    cfg = compose(*overrides)
    gpt_cfg = compose("experiment=h200_budget", f"model={'gpt_tiny' if args.smoke else 'gpt_base'}").model
    device, amp_dtype = select_device(cfg.trainer)
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
              "overrides": overrides}

    report["bf16_peak_tflops"] = matmul_peak(device, 256 if args.smoke else 8192)
    print(f"bf16 matmul peak: {report['bf16_peak_tflops']:.0f} TFLOP/s", flush=True)
    results = train(cfg, args.run_dir)
    report["train"] = {k: v for k, v in results["train"].items() if k != "history"}
    report["test"] = results["test"]
    report["params"] = results["model"]["params"]
    report["train"]["mfu"] = results["train"]["model_tflops_per_s"] / report["bf16_peak_tflops"]
    report["last_checkpoint_multi30k_2016_bleu"] = last_checkpoint_bleu(cfg, args.run_dir, device)
    report["probes"] = throughput_probes(cfg, gpt_cfg, args.probe_seconds, device, amp_dtype,
                                         report["bf16_peak_tflops"])
    report["seconds"] = time.perf_counter() - t0

    table = summary(report)
    print(table, flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    (args.out / "gpu_check.txt").write_text(table + "\n")


if __name__ == "__main__":
    main()
