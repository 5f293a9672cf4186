"""`seq2seq serve --model [NAME=]DIR ...`: translation over HTTP, with a web page, on 127.0.0.1 by default.

Ctrl-C or SIGTERM stops taking connections, finishes the requests in flight, then exits (uvicorn's
graceful shutdown; the batching loop stops after the last answer).
"""

from __future__ import annotations

import torch

from seq2seq.commands.common import PRECISIONS, default_model_dir, warn
from seq2seq.errors import UserError

# The web stack (FastAPI, pydantic, uvicorn; about 0.4 s to import) loads inside the functions below, for `serve`
# alone: the CLI imports every command module to build its --help.
DEFAULT_LIMITS = {  # spelled out here so that --help needs no FastAPI or pydantic; checked by a test
    "max_inputs": 64, "max_chars": 20_000, "max_sentence_chars": 2_000, "max_body_bytes": 1_000_000,
    "max_queue": 256, "max_batch_tokens": 4096, "max_wait_ms": 5.0}


def add_arguments(p) -> None:
    p.add_argument("--model", action="append", metavar="[NAME=]DIR", default=[],
                   help="a model directory to serve, under NAME (default name: default); repeat for several "
                        "(default: the model/ of the latest finished `make train` run)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32 (default), bf16 or int8")
    p.add_argument("--threads", type=int, help="CPU threads for the model (default: PyTorch's choice)")
    g = p.add_argument_group("batching and limits")
    g.add_argument("--max-batch-tokens", type=int, default=DEFAULT_LIMITS["max_batch_tokens"],
                   help="source pieces decoded together at most (default %(default)s)")
    g.add_argument("--max-wait-ms", type=float, default=DEFAULT_LIMITS["max_wait_ms"],
                   help="how long a request waits for others to batch with (default %(default)s ms)")
    g.add_argument("--no-batching", action="store_true", help="decode every request alone (for comparison)")
    g.add_argument("--max-queue", type=int, default=DEFAULT_LIMITS["max_queue"],
                   help="requests waiting at most; beyond, 503 with Retry-After (default %(default)s)")
    g.add_argument("--max-inputs", type=int, default=DEFAULT_LIMITS["max_inputs"],
                   help="sentences per request (default %(default)s)")
    g.add_argument("--max-chars", type=int, default=DEFAULT_LIMITS["max_chars"],
                   help="characters per request (default %(default)s)")
    g.add_argument("--max-sentence-chars", type=int, default=DEFAULT_LIMITS["max_sentence_chars"],
                   help="characters per sentence (default %(default)s)")
    g.add_argument("--max-body-bytes", type=int, default=DEFAULT_LIMITS["max_body_bytes"],
                   help="request body size (default %(default)s)")


def limits_of(args):
    from seq2seq.serve.schemas import Limits  # noqa: PLC0415 - lazy: the web stack (see above)

    values = {name: getattr(args, name) for name in DEFAULT_LIMITS}
    if any(v <= 0 for k, v in values.items() if k != "max_wait_ms") or values["max_wait_ms"] < 0:
        raise UserError("the batching and limit options must be positive (--max-wait-ms may be 0)")
    return Limits(**values, batching=not args.no_batching)


def load_models(args) -> dict:
    from seq2seq.serve.engine import ServedModel, parse_model_specs  # noqa: PLC0415 - lazy: the web stack (see above)

    try:
        specs = parse_model_specs(args.model or [str(default_model_dir())])
    except ValueError as e:
        raise UserError(str(e)) from None
    models = {}
    for name, directory in specs.items():
        try:
            models[name] = ServedModel.load(name, directory, args.device, args.precision)
        except ValueError as e:  # int8 on a GPU
            raise UserError(str(e)) from None
        warn(f"model {name}: {directory} ({models[name].info['kind']}, {models[name].info['parameters']:,} parameters)")
    return models


def run(args) -> None:
    import uvicorn  # noqa: PLC0415 - lazy: the web stack (see above)

    from seq2seq.serve.app import create_app  # noqa: PLC0415 - lazy: the web stack (see above)

    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: must be between 1 and 65535")
    limits = limits_of(args)
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be at least 1 (got {args.threads})")
        torch.set_num_threads(args.threads)
    app = create_app(load_models(args), limits)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        warn(f"warning: listening on {args.host}: anyone who can reach this machine there can use the service")
    warn(f"serving on http://{args.host}:{args.port}/ (API docs at /docs); Ctrl-C stops")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=30)
