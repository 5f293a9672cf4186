"""/metrics in Prometheus' text format: requests, sentences, errors, batch sizes, latency percentiles."""

from __future__ import annotations

import threading
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

WINDOW = 1000  # latency percentiles are over the last WINDOW requests


class Metrics:
    """One registry per app, so several apps (tests) never share counters."""

    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("seq2seq_requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.errors = Counter("seq2seq_errors", "requests answered with a 4xx or 5xx status", ["endpoint", "status"],
                              registry=r)
        self.sentences = Counter("seq2seq_sentences", "sentences translated", registry=r)
        self.batch_sentences = Histogram("seq2seq_batch_sentences", "sentences decoded together in one batch",
                                         buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r)
        self.latency = Histogram("seq2seq_request_seconds", "time from request to response", ["endpoint"], registry=r)
        self._recent: deque[float] = deque(maxlen=WINDOW)
        self._lock = threading.Lock()
        for q in (50, 90, 99):
            Gauge(f"seq2seq_request_seconds_p{q}", f"{q}th percentile of the last {WINDOW} request latencies",
                  registry=r).set_function(lambda q=q: self.percentile(q))
        self.queue = Gauge("seq2seq_queue_waiting", "requests waiting for the model", registry=r)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)
        with self._lock:
            self._recent.append(seconds)

    def on_batch(self, sentences: int, seconds: float) -> None:
        self.batch_sentences.observe(sentences)
        self.sentences.inc(sentences)

    def percentile(self, q: float) -> float:
        with self._lock:
            values = list(self._recent)
        return percentile(values, q)

    def text(self) -> bytes:
        return generate_latest(self.registry)


def percentile(values, q: float) -> float:
    """The q-th percentile (nearest rank) of `values`; 0 for none."""
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q / 100))] if values else 0.0
