"""Training tokens/s of transformer_small on this CPU under precision / compile variants, side by side.

    python scripts/train_throughput_options.py fp32 bf16 compile compile+bf16 fp32

Builds 40 token-bucketed batches (4,096 tokens) from the first 30k Tatoeba training pairs of the
prepared data (`make data`), then times 25 forward + backward + fused-Adam steps after 5 untimed ones
for each variant named, in order (repeat one at the end to see the drift).
"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seq2seq.config import compose  # noqa: E402
from seq2seq.data.batching import TokenBucketBatcher, collate, example_length  # noqa: E402
from seq2seq.data.prepare import read_split  # noqa: E402
from seq2seq.data.tokenizer import Tokenizer  # noqa: E402
from seq2seq.model.build import build_model  # noqa: E402
from seq2seq.train.loss import label_smoothed_loss  # noqa: E402


def main(modes: list[str]) -> None:
    torch.set_num_threads(2)
    tok = Tokenizer("data/tokenizer/spm_bpe_8000_identity.model")
    src, tgt = read_split("data", "tatoeba/train", "en", "fr")
    pairs = list(zip(tok.encode(src[:30000]), tok.encode(tgt[:30000])))
    order = TokenBucketBatcher([example_length(a, b, "pair") for a, b in pairs], 4096, seed=1).batches(0)
    batches = [collate([pairs[i] for i in b], "pair") for b in order[:40]]
    for mode in modes:
        torch.manual_seed(0)
        model = build_model(compose("model=transformer_small").model, len(tok))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
        forward = torch.compile(model.logits, dynamic=True) if "compile" in mode else model.logits
        dtype = torch.bfloat16 if "bf16" in mode else None

        def step(batch, forward=forward, dtype=dtype, optimizer=optimizer):
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                logits = forward(batch)
            loss, _ = label_smoothed_loss(logits, batch.tgt_out, 0.1)
            (loss / batch.tgt_tokens).backward()
            optimizer.step()
            optimizer.zero_grad()

        start = time.perf_counter()
        for batch in batches[:5]:
            step(batch)
        warm = time.perf_counter() - start
        tokens, start = 0, time.perf_counter()
        for batch in batches[5:30]:
            step(batch)
            tokens += batch.src_tokens + batch.tgt_tokens
        print(f"{mode}: warm-up {warm:.1f} s, {tokens / (time.perf_counter() - start):.0f} tokens/s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["fp32", "bf16"])
