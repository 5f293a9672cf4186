"""How the benchmark measures: each implementation in a process of its own, called in turns; peak RSS.

Side by side: every implementation lives in its own spawned process (`Worker`), so what one allocates
never counts against another, and the parent calls them in turns, batch by batch, so that whatever else
the shared machine runs at that moment slows them alike. A worker times each call and samples its own
resident memory (RSS) meanwhile with a thread (psutil, or /proc where psutil is missing).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback

try:
    import psutil
except ImportError:  # the bench extra brings it; /proc serves without
    psutil = None

MIB = 1024 * 1024


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of process `pid` (this one by default); 0 once it has exited."""
    if psutil is None:
        try:
            with open(f"/proc/{pid or 'self'}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


class PeakRSS:
    """`with PeakRSS() as peak: ...` then `peak.mib`: the highest RSS seen inside the block."""

    def __init__(self, pid: int | None = None, interval: float = 0.005):
        self.pid, self.interval = pid, interval
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self):
        self.peak = rss_bytes(self.pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))

    @property
    def mib(self) -> float:
        return self.peak / MIB


def _serve(conn, factory, kwargs) -> None:
    """The worker process: build the object, then run the calls that come down the pipe."""
    try:
        obj = factory(**kwargs)
        conn.send(("ok", None))
        while (message := conn.recv()) is not None:
            method, args = message
            conn.send(("ok", _timed_call(getattr(obj, method), args)))
    except Exception:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", traceback.format_exc()))


def _timed_call(fn, args) -> tuple:
    with PeakRSS() as peak:
        start = time.perf_counter()
        result = fn(*args)
        seconds = time.perf_counter() - start
    return result, seconds, peak.mib


class Worker:
    """`factory(**kwargs)` built in a freshly spawned process (in this one when `isolate` is false).
    `call(method, *args)` -> (result, seconds, peak RSS MiB during the call)."""

    def __init__(self, factory, isolate: bool = True, **kwargs):
        self.obj = self.proc = None
        if not isolate:
            self.obj = factory(**kwargs)
            return
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, factory, kwargs), daemon=True)
        self.proc.start()
        child.close()
        self._receive()

    def _receive(self):
        try:
            status, payload = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"benchmark worker died (exit code {self.proc.exitcode})") from None
        if status == "error":
            raise RuntimeError(f"benchmark worker failed:\n{payload}")
        return payload

    def call(self, method: str, *args) -> tuple:
        if self.obj is not None:
            return _timed_call(getattr(self.obj, method), args)
        self.conn.send((method, args))
        return self._receive()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(timeout=30)
        self.obj = self.proc = None


def in_turns(names: list, i: int) -> list:
    """`names` rotated by i: over many batches nobody always goes first."""
    k = i % len(names)
    return names[k:] + names[:k]


def translate_memory(model_dir: str, input_file: str, threads: int, every: int) -> dict:
    """Run `seq2seq translate --temperature 0` (greedy) over `input_file` and sample its RSS every `every`
    output lines: bounded memory means the late samples stay at the early ones."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "seq2seq", "translate", "--model", str(model_dir), "-i", str(input_file),
               "--temperature", "0"]
    samples, lines = [], 0
    start = time.perf_counter()
    with tempfile.TemporaryFile() as stderr, \
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env) as proc:
        with PeakRSS(proc.pid, interval=0.05) as peak:
            for _ in proc.stdout:
                lines += 1
                if lines % every == 0:
                    samples.append((lines, rss_bytes(proc.pid) / MIB))
            proc.wait()
        stderr.seek(0)
        error = stderr.read().decode(errors="replace").strip()
    if proc.returncode:
        raise RuntimeError(f"seq2seq translate exited with {proc.returncode}: "
                           f"{error.splitlines()[-1] if error else ''}")
    return {"lines": lines, "seconds": time.perf_counter() - start, "samples": samples, "peak_rss_mib": peak.mib}
