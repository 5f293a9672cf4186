"""The FastAPI application: endpoints, one error shape for every 4xx and 5xx, metrics, the static page."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from seq2seq.serve.batcher import Batcher, Job, Overloaded
from seq2seq.serve.engine import ServedModel, attention, search
from seq2seq.serve.metrics import Metrics
from seq2seq.serve.schemas import AttentionRequest, Limits, TranslateRequest
from seq2seq.translator import record

STATIC = Path(__file__).resolve().parent / "static"
ENDPOINTS = ("/translate", "/attention", "/health", "/models", "/metrics", "/")
RETRY_AFTER_S = 1
log = logging.getLogger("seq2seq.serve")


class Refused(Exception):
    """A request the server will not run; answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


DEFAULTS = Limits()  # frozen, so one instance serves every call


def create_app(models: dict[str, ServedModel], limits: Limits = DEFAULTS) -> FastAPI:
    """The service over already loaded `models` (name -> ServedModel)."""
    metrics = Metrics()
    batcher = Batcher(limits.max_batch_tokens, limits.max_wait_ms, limits.max_queue, limits.batching, metrics.on_batch)
    metrics.queue.set_function(lambda: len(batcher.waiting))

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="seq2seq", summary="English→French translation", lifespan=lifespan)
    app.state.models, app.state.limits, app.state.batcher, app.state.metrics = models, limits, batcher, metrics
    add_error_handlers(app)
    app.add_middleware(Guard, metrics=metrics, max_body_bytes=limits.max_body_bytes)
    add_routes(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(request, exc: Refused):
        return error(exc.status, str(exc), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        return error(*validation_message(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http(request, exc: HTTPException):
        message = exc.detail
        if isinstance(exc.__cause__, UnicodeDecodeError):
            message = f"the body is not valid UTF-8 ({exc.__cause__.reason} at byte {exc.__cause__.start})"
        return error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def crashed(request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return error(500, f"internal error ({type(exc).__name__})")


def validation_message(errors: list[dict]) -> tuple[int, str]:
    """(status, one line) for Pydantic's errors: 400 for a body that is not JSON, else 422."""
    first = errors[0]
    if first["type"] == "json_invalid":
        return 400, f"malformed JSON: {first.get('ctx', {}).get('error', first['msg'])}"
    where = ".".join(str(p) for p in first["loc"] if p != "body")
    if not where and isinstance(first.get("input"), (bytes, str)):  # a body sent as something other than JSON
        return 422, "the body must be a JSON object, sent with content-type: application/json"
    if first["type"] == "extra_forbidden":
        message = f"unknown field {where!r}"
    else:
        message = f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}"
    return 422, message + (f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else "")


class Guard:
    """ASGI middleware: bodies over `max_body_bytes` get 413 (by Content-Length, or counted as they
    arrive), and every answer's status and latency go to the metrics."""

    def __init__(self, app, metrics: Metrics, max_body_bytes: int):
        self.app, self.metrics, self.limit = app, metrics, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status, seen = time.perf_counter(), 500, 0

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        try:
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.limit:
                too_large = error(413, f"request body of {int(length)} bytes: at most {self.limit}")
                await too_large(scope, receive, send_status)
            else:
                await self.app(scope, limited, send_status)
        finally:
            endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
            self.metrics.observe(endpoint, status, time.perf_counter() - start)


def served(request: Request, name: str) -> ServedModel:
    """The model of that name; a client names models, never paths."""
    models = request.app.state.models
    if name not in models:
        raise Refused(404, f"unknown model {name!r}; this server has: {', '.join(sorted(models))}")
    return models[name]


def check_text(texts: list[str], limits: Limits, extra_chars: int = 0) -> None:
    """The request's size limits; `extra_chars`: its target prefixes and constraints, counted with the text."""
    if len(texts) > limits.max_inputs:
        raise Refused(422, f"{len(texts)} inputs: at most {limits.max_inputs} per request")
    if (chars := sum(map(len, texts)) + extra_chars) > limits.max_chars:
        raise Refused(422, f"{chars} characters: at most {limits.max_chars} per request")
    longest = max(map(len, texts), default=0)
    if longest > limits.max_sentence_chars:
        raise Refused(422, f"a sentence of {longest} characters: at most {limits.max_sentence_chars} per sentence")


async def submit(request: Request, job: Job):
    """The job's results from the batcher; a ValueError of the search (options it cannot serve) is a 422."""
    try:
        return await request.app.state.batcher.submit(job)
    except Overloaded as e:
        raise Refused(503, f"server busy: {e}", {"Retry-After": str(RETRY_AFTER_S)}) from None
    except ValueError as e:
        raise Refused(422, str(e)) from None


def add_routes(app: FastAPI) -> None:
    @app.post("/translate", summary="Translate one sentence or a list (the `translate --format jsonl` schema)")
    async def translate(body: TranslateRequest, request: Request):
        model, limits, texts = served(request, body.model), request.app.state.limits, body.texts
        check_text(texts, limits, body.extra_chars())
        settings, translator = body.settings(), model.translator
        if settings.copy_unseen and translator.source_words is None:
            raise Refused(422, f"model {body.model!r} lists no words its training saw: copy_unseen cannot be required")
        pieces = await run_in_threadpool(translator.split, texts)  # off the event loop, as the search is
        tokens = sum(len(ids) + 1 for line in pieces for ids in line)
        run = lambda rows: search(translator, rows, settings, limits.max_batch_tokens)  # noqa: E731
        found, timing = await submit(request, Job(("translate", body.model, settings), body.rows(), tokens, run))
        return {"model": body.model, "results": [record(t, timing, settings.alignments) for t in found]}

    @app.post("/attention", summary="One sentence's translation and its cross-attention weights")
    async def attend(body: AttentionRequest, request: Request):
        model = served(request, body.model)
        check_text([body.text], request.app.state.limits)
        run = lambda rows: [attention(model, rows[0], body.beam, body.layer)]  # noqa: E731
        found, _ = await submit(request, Job(None, [body.text], len(body.text), run))
        return found[0]

    @app.get("/health", summary="200 once the models are loaded")
    async def health(request: Request):
        return {"status": "ok", "models": sorted(request.app.state.models)}

    @app.get("/models", summary="Names, kinds, parameters and test scores of the served models")
    async def models(request: Request):
        return {"models": [m.info for m in request.app.state.models.values()]}

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics(request: Request):
        return Response(request.app.state.metrics.text(), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")
