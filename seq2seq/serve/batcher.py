"""Dynamic batching: jobs with equal keys that arrive within `max_wait_ms` of each other are run together
(up to `max_batch_tokens` source pieces) in one worker thread, so the event loop stays free.

The queue is bounded: `submit` raises `Overloaded` once `max_queue` jobs are waiting. `gate` (a
threading.Event, open by default) lets tests hold the worker so that the queue fills deterministically.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


class Overloaded(Exception):
    """The queue is full: the client should retry later."""


@dataclass
class Job:
    key: Hashable | None  # jobs with equal keys may share a batch; None: always alone
    rows: list  # what the job asks for, one item per sentence
    tokens: int  # its size, in source pieces
    run: Callable[[list], list]  # rows of a whole batch -> one result per row (called in the worker thread)
    future: asyncio.Future = None
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    def __init__(self, max_batch_tokens: int, max_wait_ms: float, max_queue: int, batching: bool = True,
                 on_batch: Callable[[int, float], None] | None = None):
        self.max_batch_tokens, self.max_wait = max_batch_tokens, max_wait_ms / 1000
        self.max_queue, self.batching = max_queue, batching
        self.on_batch = on_batch or (lambda rows, seconds: None)
        self.waiting: deque[Job] = deque()
        self.busy = False  # a batch is in the worker
        self.gate = threading.Event()
        self.gate.set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seq2seq-model")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Cancel the collecting loop (after the server has answered its in-flight requests)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.gate.set()
        self._executor.shutdown(wait=True)

    async def submit(self, job: Job) -> tuple[list, dict]:
        """-> (the job's results, the batch's timing); Overloaded when the queue is full."""
        if len(self.waiting) >= self.max_queue:
            raise Overloaded(f"{len(self.waiting)} requests are waiting; try again shortly")
        job.future = asyncio.get_running_loop().create_future()
        self.waiting.append(job)
        self._wake.set()
        return await job.future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.waiting:
                await self._wait_for_company()
                batch = self._take()
                if not batch:
                    continue
                self.busy = True
                try:
                    outcome = await loop.run_in_executor(self._executor, self._run, batch)
                finally:
                    self.busy = False
                try:
                    self._deliver(batch, outcome)
                except Exception as e:  # noqa: BLE001 - the loop must outlive any one batch's failure
                    self._deliver(batch, e)

    async def _wait_for_company(self) -> None:
        """Give the oldest job up to max_wait to be joined by others of its key, unless its batch is full."""
        first = self.waiting[0]
        if not self.batching or first.key is None:
            return
        while (delay := first.arrived + self.max_wait - time.monotonic()) > 0:
            if sum(j.tokens for j in self.waiting if j.key == first.key) >= self.max_batch_tokens:
                return
            self._wake.clear()  # sleep until the next arrival (submit sets it) or the end of the wait
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                return

    def _take(self) -> list[Job]:
        """The oldest live job and, in arrival order, the others of its key that fit the token budget."""
        while self.waiting and self.waiting[0].future.done():  # its client is gone
            self.waiting.popleft()
        if not self.waiting:
            return []
        first = self.waiting.popleft()
        batch, tokens = [first], first.tokens
        if not self.batching or first.key is None:
            return batch
        for job in list(self.waiting):
            if job.key == first.key and not job.future.done() and tokens + job.tokens <= self.max_batch_tokens:
                self.waiting.remove(job)
                batch.append(job)
                tokens += job.tokens
        return batch

    def _run(self, batch: list[Job]):
        """In the worker thread: one call for the whole batch; -> (results, timing) or the exception."""
        self.gate.wait()
        rows = [row for job in batch for row in job.rows]
        start = time.perf_counter()
        try:
            results = batch[0].run(rows)
        except Exception as e:  # noqa: BLE001 - handed to every request of the batch
            return e
        if len(results) != len(rows):
            return RuntimeError(f"the model gave {len(results)} results for {len(rows)} inputs")
        seconds = time.perf_counter() - start
        self.on_batch(len(rows), seconds)
        return results, {"batch_seconds": round(seconds, 4), "batch_lines": len(rows)}

    @staticmethod
    def _deliver(batch: list[Job], outcome) -> None:
        k = 0
        for job in batch:
            if job.future.done():
                pass
            elif isinstance(outcome, Exception):
                job.future.set_exception(outcome)
            else:
                job.future.set_result((outcome[0][k:k + len(job.rows)], outcome[1]))
            k += len(job.rows)
