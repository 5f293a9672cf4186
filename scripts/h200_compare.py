"""The comparison at transformer_base size on one H200, in one call: at most 8 minutes (`--quick`: 3).

1. the bf16 matrix-product peak of this GPU (the MFU denominator), as `make gpu-check` measures it;
2. `transformer_base` and its causal decoder-only twin `gpt_base`, 1 seed, bf16, experiment=h200_budget's
   recipe, trained on equal training FLOPs; each run's MFU is the h200_budget run's figure;
3. the prefix-LM twin as well when the time allows (not with `--quick`);
4. the generated verdict and report (`seq2seq compare`), copied with a JSON summary under $OUT (or --out).

The FLOPs budget of each run comes from the measured peak: peak × an expected MFU × the seconds a run may
take, so the call fits its time on any GPU; the report states the budget. `--smoke` runs the same path on a
CPU with the tiny models and a few seconds a run (the test of this script). Extra arguments are Hydra
overrides for the comparison (conf/compare.yaml), e.g. data.out_dir=... to use prepared data.

    python scripts/h200_compare.py            # on the H200: then commit compare/base-h200/ (report and plots)
    python scripts/h200_compare.py --quick    # the rerun if the first call failed
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from gpu_check import matmul_peak  # noqa: E402

from seq2seq.compare.run import compare  # noqa: E402
from seq2seq.config import compose  # noqa: E402

# mode -> (systems, seconds of training a run, test sentences per set)
MODES = {
    "full": ("gpt_prefix", 110, None),
    "quick": (None, 40, 500),
    "smoke": ("gpt_prefix", 3, 30),
}
EXPECTED_MFU = 0.30  # transformer_base at bf16 on an H100/H200-class GPU; the report gives the measured MFU
RECIPE = [  # experiment=h200_budget's trainer, for every system
    "trainer.device=auto", "trainer.precision=bf16", "trainer.batch_tokens=32768", "trainer.warmup=1000",
    "trainer.peak_lr=1.0e-3", "trainer.valid_every=100000", "trainer.save_every=100", "trainer.keep_last=5",
    "trainer.average_last=5", "trainer.log_every=100", "trainer.eval_batch_tokens=24000",
]
SMOKE_BUDGET = 1e10  # FLOPs a tiny run: a few seconds on a CPU (a CPU's matmul peak says nothing of a tiny model)
SMOKE = ["trainer.batch_tokens=2048", "trainer.warmup=10", "trainer.save_every=5", "trainer.eval_batch_tokens=2000",
         "trainer.precision=fp32", "report.bootstrap=100", "report.source_attention=20"]


def overrides(mode: str, budget: float, name: str, extra: list[str]) -> list[str]:
    third, _, test_cap = MODES[mode]
    size = "tiny" if mode == "smoke" else "base"
    out = [f"name={name}", f"sizes=[{size}]", "seeds=[1]", "budget.mode=flops", f"budget.flops.{size}={budget:.4g}",
           *RECIPE]
    if third:
        out.append(f"+systems.{third}={{model: gpt, overrides: {{prefix_lm: true}}}}")
    if test_cap:
        out.append(f"trainer.test_max_sentences={test_cap}")
    return out + (SMOKE if mode == "smoke" else []) + extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="two systems, 40 s a run, 500 test sentences a set (≤ 3 min)")
    mode.add_argument("--smoke", action="store_true", help="tiny models, seconds a run: the CPU test of this script")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "h200_compare_out")))
    parser.add_argument("--dir", type=Path, default=ROOT / "compare" / "base-h200",
                        help="the comparison's folder: report.md, plots, runs/ (default compare/base-h200)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/compare.yaml")
    args = parser.parse_args()
    chosen = "smoke" if args.smoke else "quick" if args.quick else "full"
    t0 = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak = matmul_peak(device, 256 if chosen == "smoke" else 8192)
    budget = SMOKE_BUDGET if chosen == "smoke" else peak * 1e12 * EXPECTED_MFU * MODES[chosen][1]
    print(f"bf16 matmul peak {peak:.0f} TFLOP/s -> {budget:.3g} training FLOPs a run", flush=True)

    cfg = compose(*overrides(chosen, budget, args.dir.name, args.overrides), config_name="compare")
    out_dir = args.dir
    report = compare(cfg, out_dir)
    runs = {}
    for run_dir in sorted((out_dir / "runs").iterdir()):
        results = json.loads((run_dir / "results.json").read_text())
        train = {k: v for k, v in results["train"].items() if k != "history"}
        train["mfu"] = train["model_tflops_per_s"] / peak
        runs[run_dir.name] = {"params": results["model"]["params"], "train": train, "test": results["test"]}
    summary = {"mode": chosen, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               "torch": torch.__version__, "bf16_peak_tflops": peak, "flops_budget": budget, "runs": runs,
               "seconds": time.perf_counter() - t0}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "h200_compare.json").write_text(json.dumps(summary, indent=2))
    for path in [report, *out_dir.glob("*.png")]:
        shutil.copy(path, args.out / path.name)
    mfu = ", ".join(f"{k} {100 * v['train']['mfu']:.1f}%" for k, v in runs.items())
    print(f"{summary['seconds']:.0f} s; MFU {mfu}")


if __name__ == "__main__":
    main()
