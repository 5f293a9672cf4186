"""`seq2seq serve` under load: sentences/s and p50/p99 latency for 1, 8 and 64 concurrent clients, with
dynamic batching and with every request decoded alone (batch of 1), beside `seq2seq translate` on the
same sentences (the throughput ceiling: all of them known in advance, sorted and batched); and the
server's resident memory over many requests.

Each server is a real `python -m seq2seq serve` process on 127.0.0.1; the clients (httpx, asyncio) run
in this process, one sentence per request, default search (beam 4), and share the machine with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from seq2seq.bench.measure import MIB, rss_bytes
from seq2seq.serve.metrics import percentile

CLIENTS = (1, 8, 64)
TARGET_SPEEDUP, TARGET_P99 = 4.0, 0.5  # at 64 clients: batching vs batch of 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(models, threads: int, batching: bool = True):
    """A `seq2seq serve` process on a free port for a model directory (or a list of `[NAME=]DIR`):
    (process, base URL); SIGTERM at the end."""
    import httpx  # noqa: PLC0415 - lazy: optional package (bench extra)

    port = free_port()
    specs = [str(models)] if isinstance(models, (str, Path)) else [str(m) for m in models]
    command = [sys.executable, "-m", "seq2seq", "serve", *(a for spec in specs for a in ("--model", spec)),
               "--port", str(port), "--threads", str(threads), "--max-queue", "100000",
               *([] if batching else ["--no-batching"])]
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    stderr.seek(0)
                    raise RuntimeError(f"seq2seq serve did not start: {stderr.read().decode(errors='replace')[-500:]}")
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            yield proc, url
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


async def _clients(url: str, sentences: list[str], clients: int, on_answer=None) -> tuple[list[float], float]:
    """`clients` concurrent clients sending `sentences`, one a request, each taking the next one left:
    (latencies in seconds, wall seconds)."""
    import httpx  # noqa: PLC0415 - lazy: optional package (bench extra)

    todo, latencies = iter(sentences), []

    async def client(http):
        for sentence in todo:
            start = time.perf_counter()
            r = await http.post("/translate", json={"text": sentence})
            r.raise_for_status()
            latencies.append(time.perf_counter() - start)
            if on_answer is not None:
                on_answer(len(latencies))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=600) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return latencies, time.perf_counter() - start


def load(url: str, sentences: list[str], clients: int) -> dict:
    latencies, seconds = asyncio.run(_clients(url, sentences, clients))
    return {"clients": clients, "requests": len(latencies), "sentences_per_s": len(latencies) / seconds,
            "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99)}


def ceiling(model_dir, sentences: list[str], threads: int) -> dict:
    """`seq2seq translate --format jsonl` over the sentences: decoding seconds from its own timing."""
    with tempfile.NamedTemporaryFile("w", suffix=".en", encoding="utf-8") as f:
        f.write("\n".join(sentences) + "\n")
        f.flush()
        out = subprocess.run([sys.executable, "-m", "seq2seq", "translate", "--model", str(model_dir), "-i", f.name,
                              "--format", "jsonl", "--threads", str(threads)], capture_output=True, check=True)
    timings = [json.loads(line)["timing"] for line in out.stdout.decode().splitlines()]
    seconds = sum(t["batch_seconds"] / t["batch_lines"] for t in timings)
    return {"sentences": len(timings), "sentences_per_s": len(timings) / seconds}


def memory(url: str, pid: int, sentences: list[str], requests: int, clients: int = 64, samples: int = 10) -> dict:
    """RSS of the server every requests/samples answers over `requests` requests (the sentences cycled)."""
    every, seen = max(1, requests // samples), []
    cycled = (sentences * (requests // len(sentences) + 1))[:requests]

    def sample(answered):
        if answered % every == 0:
            seen.append((answered, rss_bytes(pid) / MIB))

    before = rss_bytes(pid) / MIB
    _, seconds = asyncio.run(_clients(url, cycled, clients, sample))
    return {"requests": requests, "clients": clients, "seconds": seconds, "start_mib": before, "samples": seen}


def measure(model_dir, sentences: list[str], threads: int, rss_requests: int, clients=CLIENTS, log=print) -> dict:
    """Every figure of the serving section, in a dict for the report."""
    out = {"sentences": len(sentences), "rows": [], "ceiling": ceiling(model_dir, sentences, threads)}
    log(f"serve: seq2seq translate {out['ceiling']['sentences_per_s']:.1f} sentences/s")
    for batching in (True, False):
        with server(model_dir, threads, batching) as (proc, url):
            for n in clients:
                row = {"server": "dynamic batching" if batching else "batch of 1", **load(url, sentences, n)}
                out["rows"].append(row)
                log(f"serve: {row['server']:<16} {n:>3} clients {row['sentences_per_s']:7.1f} sentences/s  "
                    f"p50 {row['p50_ms']:7.0f} ms  p99 {row['p99_ms']:7.0f} ms")
            if batching and rss_requests:
                out["memory"] = memory(url, proc.pid, sentences, rss_requests)
                samples = out["memory"]["samples"]
                log(f"serve: RSS {samples[0][1]:.0f} -> {samples[-1][1]:.0f} MiB over {rss_requests:,} requests")
    return out


def targets(s: dict) -> list[str]:
    rows = {(r["server"], r["clients"]): r for r in s["rows"]}
    top = max(r["clients"] for r in s["rows"])
    batched, alone = rows.get(("dynamic batching", top)), rows.get(("batch of 1", top))
    if not (batched and alone):
        return []
    speedup, p99 = batched["sentences_per_s"] / alone["sentences_per_s"], batched["p99_ms"] / alone["p99_ms"]
    return [f"batching ≥ {TARGET_SPEEDUP:g}× the batch-of-1 server's throughput at {top} clients: {speedup:.2f}× — "
            f"{'met' if speedup >= TARGET_SPEEDUP else 'not met'}",
            f"batching p99 ≤ {TARGET_P99:g}× the batch-of-1 server's at {top} clients: {p99:.2f}× — "
            f"{'met' if p99 <= TARGET_P99 else 'not met'}"]


def markdown(s: dict, table) -> list[str]:
    """The section's lines; `table(header, right_from, rows)` draws a markdown table."""
    out = ["### `seq2seq serve` under load", "",
           f"{s['sentences']} sentences of {s['test_set']}, one per request, beam 4; weights: {s['weights']}. "
           "Clients (httpx) and server share the machine. `seq2seq translate` gets the same sentences at once "
           "(sorted, batches of 64): the ceiling.", ""]
    rows = [[r["server"], str(r["clients"]), f"{r['sentences_per_s']:,.1f}", f"{r['p50_ms']:,.0f}",
             f"{r['p99_ms']:,.0f}"] for r in s["rows"]]
    rows.append(["`seq2seq translate`", "—", f"{s['ceiling']['sentences_per_s']:,.1f}", "", ""])
    out += table(["server", "clients", "sentences/s", "p50 (ms)", "p99 (ms)"], 1, rows) + [""]
    if "memory" in s:
        m, picks = s["memory"], s["memory"]["samples"]
        out += [f"Server RSS over {m['requests']:,} requests ({m['clients']} clients, {m['seconds']:.0f} s): "
                f"{m['start_mib']:,.0f} MiB before, then "
                + ", ".join(f"{rss:,.0f} MiB after {n:,}" for n, rss in picks) + ".", ""]
    out += [f"- {line}" for line in targets(s)]
    return out + [""]


def find_chromium() -> str | None:
    """Debian's chromium (or $SEQ2SEQ_CHROMIUM), which Playwright drives; None when there is none."""
    found = os.environ.get("SEQ2SEQ_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return found if found and os.access(found, os.X_OK) else None
