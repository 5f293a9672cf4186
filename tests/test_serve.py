"""`seq2seq serve`: the HTTP API against a tiny trained model (FastAPI's TestClient, and a real uvicorn on
127.0.0.1 where only a socket shows it): order, parity with `translate --format jsonl`, seeded sampling
batched or alone, every bad request (one-line JSON error, the server still up), the full queue (503),
disconnects, graceful shutdown, and many concurrent clients without cross-talk.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi")
import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from seq2seq.bench.report import _table  # noqa: E402
from seq2seq.bench.serve import find_chromium, markdown, measure  # noqa: E402
from seq2seq.bench.serve import server as serve_process  # noqa: E402
from seq2seq.cli import main  # noqa: E402
from seq2seq.commands.serve import DEFAULT_LIMITS  # noqa: E402
from seq2seq.config import compose  # noqa: E402
from seq2seq.decode.unseen import source_words  # noqa: E402
from seq2seq.model.build import build_model  # noqa: E402
from seq2seq.model.directory import save_model_dir  # noqa: E402
from seq2seq.serve.app import create_app  # noqa: E402
from seq2seq.serve.engine import ServedModel, search  # noqa: E402
from seq2seq.serve.schemas import Limits, Row, Settings  # noqa: E402
from seq2seq.translator import Translator  # noqa: E402
from seq2seq.viz.maps import cross_attention  # noqa: E402
from tests.conftest import toy_pairs  # noqa: E402
from tests.test_translator import make_model_dir  # noqa: E402

SENTENCES = ["The cat sees a dog.", "", "A man eats the red ball.", "Woman sleeps."]
SMALL = Limits(max_inputs=4, max_chars=200, max_sentence_chars=100, max_body_bytes=10_000, max_queue=2)


@pytest.fixture(scope="module")
def run_dir(toy_tokenizer, tmp_path_factory):
    """A finished run: model/ (tiny, trained 250 steps on the toy corpus) beside results.json."""
    run = tmp_path_factory.mktemp("serve") / "run"
    make_model_dir(run / "model", toy_tokenizer, train_steps=250)
    (run / "results.json").write_text(json.dumps({"test": {"toy/test": {"bleu": 91.5, "chrf": 95.0}}}))
    return run


@pytest.fixture(scope="module")
def models(run_dir, toy_tokenizer, tmp_path_factory):
    """The trained encoder–decoder as `default`, and a random decoder-only twin as `gpt` (no results.json)."""
    torch.manual_seed(0)
    cfg = compose("model=gpt_tiny").model
    gpt_dir = save_model_dir(tmp_path_factory.mktemp("gpt") / "model",
                             build_model(cfg, len(toy_tokenizer)).state_dict(), cfg, len(toy_tokenizer),
                             toy_tokenizer.path)
    return {"default": ServedModel.load("default", run_dir / "model"), "gpt": ServedModel.load("gpt", gpt_dir)}


@pytest.fixture
def client(models):
    with TestClient(create_app(models, SMALL)) as c:
        yield c


def wait_until(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.002)


@contextmanager
def live_server(app):
    """A real uvicorn serving `app` on 127.0.0.1 at a free port, in a thread: (server, base URL)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30,
                                           timeout_keep_alive=60))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started)
    try:
        yield server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def hypotheses(response) -> list[list[dict]]:
    return [r["hypotheses"] for r in response.json()["results"]]


# -------------------------------------------------------------------------------- answers

def test_one_result_per_input_in_order_and_an_empty_input_gives_an_empty_result(client):
    r = client.post("/translate", json={"text": SENTENCES})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["source"] for x in results] == SENTENCES
    assert [x["hypotheses"][0]["text"] if x["hypotheses"] else "" for x in results] == \
        ["Le chat voit un chien.", "", "Un homme mange le rouge ballon.", "Femme dort."]
    assert results[1] == {"source": "", "source_pieces": [], "hypotheses": [], "timing": results[1]["timing"]}
    one = client.post("/translate", json={"text": "Woman sleeps."}).json()["results"]
    assert len(one) == 1 and one[0]["hypotheses"] == results[3]["hypotheses"]
    assert client.post("/translate", json={"text": []}).json() == {"model": "default", "results": []}


def test_the_service_carries_unseen_names_unless_told_not_to(run_dir, toy_tokenizer):
    seen = frozenset(source_words(en for en, _ in toy_pairs(2000, seed=7)))
    translator = Translator(ServedModel.load("default", run_dir / "model").translator.model, toy_tokenizer,
                            source_words=seen)
    rows = [Row("Belmor sees the cat.", None, None, ())]
    carried = search(translator, rows, Settings())[0].text
    assert "Belmor" in carried.split() and "Belmor" not in search(translator, rows, Settings(copy_unseen=False))[0].text


def test_prefixes_and_constraints_are_those_of_translate(client, run_dir, tmp_path, capsys):
    texts = ["The cat sees a dog.", "A man eats the red ball."]
    body = {"text": texts, "target_prefix": ["Le chat", None], "constraints": [[], ["rouge"]]}
    served = [x["hypotheses"][0]["text"] for x in client.post("/translate", json=body).json()["results"]]
    assert served[0].startswith("Le chat") and "rouge" in served[1]
    (tmp_path / "prefix").write_text("Le chat\n\n")
    (tmp_path / "constraints").write_text("\nrouge\n")
    main(["translate", "--model", str(run_dir / "model"), "--prefix-file", str(tmp_path / "prefix"),
          "--constraints-file", str(tmp_path / "constraints"), *texts])
    assert capsys.readouterr().out.splitlines() == served
    one = client.post("/translate", json={"text": texts[1], "constraints": ["rouge"]}).json()["results"]
    assert one[0]["hypotheses"][0]["text"] == served[1]


@pytest.mark.parametrize("options, flags", [
    ({"beam": 3, "nbest": 2, "alignments": True}, ["--beam", "3", "--nbest", "2", "--alignments"]),
    ({"temperature": 0.0}, ["--temperature", "0"]),
])
def test_results_are_those_of_translate_jsonl(client, run_dir, capsys, options, flags):
    served = client.post("/translate", json={"text": SENTENCES, **options}).json()["results"]
    main(["translate", "--model", str(run_dir / "model"), "--format", "jsonl", *flags, *SENTENCES])
    cli = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(cli) == len(served)
    for mine, theirs in zip(served, cli):
        assert mine.keys() == theirs.keys()
        assert (mine["source"], mine["source_pieces"]) == (theirs["source"], theirs["source_pieces"])
        assert len(mine["hypotheses"]) == len(theirs["hypotheses"])
        for a, b in zip(mine["hypotheses"], theirs["hypotheses"]):
            assert a.keys() == b.keys()
            assert (a["text"], a["pieces"], a.get("alignment")) == (b["text"], b["pieces"], b.get("alignment"))
            for key in ("score", "logprob", "confidence"):
                assert a[key] == pytest.approx(b[key], abs=1e-4)
            assert a["probs"] == pytest.approx(b["probs"], abs=1e-4)


def test_a_seeded_sample_is_the_same_batched_with_others_or_alone(client):
    batcher = client.app.state.batcher
    asks = [{"text": [s], "temperature": 1.5, "seed": seed} for seed, s in enumerate(["The cat sees a dog.",
            "A man eats the red ball.", "The big woman likes a small house.", "The cat sees a dog."])]
    batcher.gate.clear()  # hold the worker: the requests gather in the queue and leave as one batch
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(client.post, "/translate", json={"text": "Dog."})
        wait_until(lambda: batcher.busy)
        futures = [pool.submit(client.post, "/translate", json=ask) for ask in asks[:2]]
        wait_until(lambda: len(batcher.waiting) == 2)
        batcher.gate.set()
        together = [f.result() for f in futures]
        assert first.result().status_code == 200
    assert [r.json()["results"][0]["timing"]["batch_lines"] for r in together] == [2, 2]
    alone = [client.post("/translate", json=ask) for ask in asks[:2]]
    assert [hypotheses(r) for r in together] == [hypotheses(r) for r in alone]
    # The same sentence with another seed is another draw; sentence i of a request draws with seed + i.
    both = client.post("/translate", json={"text": [asks[0]["text"][0], asks[1]["text"][0]], "temperature": 1.5,
                                            "seed": 0})
    assert hypotheses(both) == hypotheses(alone[0]) + hypotheses(alone[1])


def test_attention_gives_every_layer_and_one_layer_s_heads_for_both_kinds(client, models):
    for name, layers in (("default", 2), ("gpt", None)):
        r = client.post("/attention", json={"text": "The cat sees a dog.", "model": name, "beam": 1, "layer": 0})
        assert r.status_code == 200, r.text
        a = r.json()
        translator = models[name].translator
        source = translator.split(["The cat sees a dog."])[0][0]
        target = search(translator, [Row("The cat sees a dog.")], Settings(beam=1))[0].hypotheses[0].tokens
        assert a["source_pieces"][:-1] == translator.tokenizer.id_to_piece(source)
        assert a["target_pieces"] == translator.tokenizer.id_to_piece(target) + ["</s>"]
        expected = cross_attention(translator.model, source, target, layer=None, average_heads=False)  # (L, h, T, S)
        assert len(a["layers"]) == (layers or expected.size(0))
        assert torch.allclose(torch.tensor(a["layers"]), expected.mean(1), atol=1e-4)
        assert torch.allclose(torch.tensor(a["heads"]), expected[0], atol=1e-4)
        assert a["head_layer"] == 0
    assert a["source_pieces"][-1] == "<sep>"  # the decoder-only model: its target → source block


def test_health_models_and_metrics(client):
    assert client.get("/health").json() == {"status": "ok", "models": ["default", "gpt"]}
    info = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert info["default"]["kind"] == "transformer" and info["gpt"]["kind"] == "gpt"
    assert info["default"]["test"] == {"toy/test": {"bleu": 91.5, "chrf": 95.0}} and info["gpt"]["test"] is None
    assert info["default"]["parameters"] > 0
    client.post("/translate", json={"text": ["Dog.", "Cat."]})
    client.post("/translate", json={"text": "x", "beam": 0})
    text = client.get("/metrics").text
    assert 'seq2seq_requests_total{endpoint="/translate",status="200"} 1.0' in text
    assert 'seq2seq_errors_total{endpoint="/translate",status="422"} 1.0' in text
    assert "seq2seq_sentences_total 2.0" in text
    assert 'seq2seq_batch_sentences_bucket{le="2.0"} 1.0' in text
    assert "seq2seq_request_seconds_p99" in text
    assert "/docs" in client.get("/docs").text or client.get("/openapi.json").status_code == 200
    assert set(client.get("/openapi.json").json()["paths"]) >= {"/translate", "/attention", "/health", "/models",
                                                                 "/metrics"}


# -------------------------------------------------------------------------------- bad input

def chunked(size: int):
    for _ in range(size // 1000):
        yield b" " * 1000


BAD = [  # (method, path, body, headers, status, what the message says)
    ("post", "/translate", b'{"text": ', None, 400, "malformed JSON"),
    ("post", "/translate", b"{\"text\": \"caf\xe9\"}", None, 400,
     "not valid UTF-8 (invalid continuation byte at byte 13)"),
    ("post", "/translate", b"", None, 422, "Field required"),
    ("post", "/translate", "form", None, 422,
     "the body must be a JSON object, sent with content-type: application/json"),
    ("post", "/translate", b'["a"]', None, 422, "valid dictionary"),
    ("post", "/translate", {"text": 3}, None, 422, "valid string"),
    ("post", "/translate", {"text": "a", "beam": "4"}, None, 422, "beam: Input should be a valid integer"),
    ("post", "/translate", {"text": "a", "alignments": "yes"}, None, 422, "alignments"),
    ("post", "/translate", {"text": "a", "colour": "red"}, None, 422, "unknown field 'colour'"),
    ("post", "/translate", {"text": "a", "model": "nope"}, None, 404, "unknown model 'nope'"),
    ("post", "/translate", {"text": "a", "beam": 0}, None, 422, "beam: Input should be greater than or equal to 1"),
    ("post", "/translate", {"text": "a", "beam": 99}, None, 422, "beam: Input should be less than or equal to 16"),
    ("post", "/translate", {"text": "a", "beam": 2, "nbest": 3}, None, 422, "nbest (3) must be at most beam (2)"),
    ("post", "/translate", {"text": "a", "temperature": -1}, None, 422, "temperature"),
    ("post", "/translate", {"text": "a", "temperature": 1, "nbest": 2}, None, 422, "nbest must be 1"),
    ("post", "/translate", {"text": "a", "temperature": 1, "top_k": -1}, None, 422, "top_k"),
    ("post", "/translate", {"text": "a", "temperature": 1, "top_p": 0}, None, 422, "top_p"),
    ("post", "/translate", {"text": "a", "temperature": 1, "seed": -1}, None, 422, "seed"),
    ("post", "/translate", {"text": ["a"] * 5}, None, 422, "5 inputs: at most 4"),
    ("post", "/translate", {"text": ["a" * 90] * 3}, None, 422, "270 characters: at most 200"),
    ("post", "/translate", {"text": "a" * 101}, None, 422, "a sentence of 101 characters: at most 100"),
    ("post", "/translate", {"text": ["a", "b"], "target_prefix": ["Le"]}, None, 422, "one entry per sentence (2)"),
    ("post", "/translate", {"text": ["a", "b"], "constraints": ["chat"]}, None, 422, "one entry per sentence (2)"),
    ("post", "/translate", {"text": "a", "temperature": 1, "constraints": ["chat"]}, None, 422,
     "constraints need beam search"),
    ("post", "/translate", {"text": "a", "temperature": 1, "copy_unseen": True}, None, 422,
     "copy_unseen needs beam search"),
    ("post", "/translate", {"text": "Belmor runs.", "copy_unseen": True}, None, 422,
     "model 'default' lists no words its training saw: copy_unseen cannot be required"),
    ("post", "/translate", {"text": "a", "target_prefix": "b" * 200}, None, 422, "201 characters: at most 200"),
    ("post", "/translate", b" " * 10_001, None, 413, "request body of 10001 bytes: at most 10000"),
    ("post", "/translate", "chunked", None, 413, "request body over 10000 bytes"),
    ("post", "/attention", {"text": "a" * 101}, None, 422, "at most 100"),
    ("post", "/attention", {"text": ""}, None, 422, "text is empty"),
    ("post", "/attention", {"text": "Dog.", "layer": 7}, None, 422, "layer 7: the model has 2 layers"),
    ("post", "/attention", {"text": ["Dog."]}, None, 422, "text"),
    ("get", "/translate", None, None, 405, "Method Not Allowed"),
    ("get", "/nowhere", None, None, 404, "Not Found"),
]


@pytest.mark.parametrize("method, path, body, headers, status, message", BAD,
                         ids=[f"{m} {p} {s} {msg[:30]}" for m, p, _, _, s, msg in BAD])
def test_a_bad_request_gets_a_one_line_json_error_and_the_server_stays_up(client, method, path, body, headers,
                                                                             status, message):
    kwargs = {}
    if isinstance(body, dict):
        kwargs["json"] = body
    elif body == "form":  # what `curl -d` sends without -H
        kwargs["data"] = {"text": "Dog."}
    elif body == "chunked":
        kwargs["content"], kwargs["headers"] = chunked(20_000), {"content-type": "application/json"}
    elif body is not None:
        kwargs["content"], kwargs["headers"] = body, {"content-type": "application/json"}
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert list(r.json()) == ["error"] and "\n" not in r.json()["error"]
    assert message in r.json()["error"]
    assert client.get("/health").status_code == 200
    assert client.post("/translate", json={"text": "Dog."}).status_code == 200


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=30),
                           lambda inner: (st.lists(inner, max_size=3)
                                          | st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=6)
FIELDS = ["text", "model", "beam", "nbest", "temperature", "top_k", "top_p", "seed", "alignments", "layer", "other"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES | st.sampled_from([1, 2, 0.5, "Dog.", "default"]),
                            max_size=5),
       path=st.sampled_from(["/translate", "/attention"]))
def test_any_json_body_gets_an_answer_or_a_one_line_error_never_a_crash(client, body, path):
    r = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code in (200, 404, 422), r.text
    if r.status_code != 200:
        assert list(r.json()) == ["error"] and "\n" not in r.json()["error"]


def test_a_model_path_in_a_request_is_refused(client, run_dir):
    for name in (str(run_dir / "model"), "../model", "model/"):
        r = client.post("/translate", json={"text": "Dog.", "model": name})
        assert r.status_code == 404 and r.json() == {"error": f"unknown model {name!r}; this server has: default, gpt"}


def test_a_full_queue_gets_503_with_retry_after_and_the_queued_requests_are_answered(client):
    batcher = client.app.state.batcher
    batcher.gate.clear()
    with ThreadPoolExecutor(4) as pool:
        running = pool.submit(client.post, "/translate", json={"text": "Dog."})
        wait_until(lambda: batcher.busy)
        queued = [pool.submit(client.post, "/translate", json={"text": s, "beam": 2}) for s in ("Cat.", "Man.")]
        wait_until(lambda: len(batcher.waiting) == SMALL.max_queue)
        assert client.get("/health").status_code == 200  # the event loop answers while the worker is busy
        refused = client.post("/translate", json={"text": "Woman."})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"].startswith("server busy")
        batcher.gate.set()
        assert [f.result().status_code for f in [running, *queued]] == [200, 200, 200]
    assert client.post("/translate", json={"text": "Woman."}).status_code == 200


# -------------------------------------------------------------------------------- a real server

def test_a_client_that_disconnects_mid_request_harms_no_one(models):
    app = create_app(models, SMALL)
    batcher = app.state.batcher
    with live_server(app) as (_, _, url):
        port = int(url.rsplit(":", 1)[1])
        head = b"POST /translate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port)) as s:  # half a body, then gone
            s.sendall(head % 100 + b'{"text": "Do')
        batcher.gate.clear()  # a whole request, gone before its answer
        with socket.create_connection(("127.0.0.1", port)) as s:
            body = b'{"text": "The cat sees a dog."}'
            s.sendall(head % len(body) + body)
            wait_until(lambda: batcher.busy)
        batcher.gate.set()
        r = httpx.post(f"{url}/translate", json={"text": "The cat sees a dog."}, timeout=30)
        assert r.status_code == 200 and r.json()["results"][0]["hypotheses"][0]["text"] == "Le chat voit un chien."
        assert httpx.get(f"{url}/health").status_code == 200


def test_sigterm_finishes_the_requests_in_flight_then_exits(models):
    app = create_app(models, SMALL)
    batcher = app.state.batcher
    with live_server(app) as (server, thread, url), ThreadPoolExecutor(1) as pool:
        batcher.gate.clear()
        in_flight = pool.submit(httpx.post, f"{url}/translate", json={"text": "The cat sees a dog."}, timeout=30)
        wait_until(lambda: batcher.busy)
        server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
        time.sleep(0.3)
        assert thread.is_alive()  # waiting for the request in flight
        batcher.gate.set()
        r = in_flight.result()
        assert r.status_code == 200 and r.json()["results"][0]["hypotheses"][0]["text"] == "Le chat voit un chien."
        thread.join(30)
        assert not thread.is_alive()


@pytest.mark.slow
def test_fifty_concurrent_clients_each_get_their_own_answers(models):
    """50 clients × 20 requests on a real uvicorn; half sample with seeds. Every answer must equal the one
    for the same sentence sent alone: nothing crosses between requests batched together."""
    clients, per_client = 50, 20
    asks = [[{"text": en, **({"temperature": 1.2, "seed": 100 * c + k} if c % 2 else {"beam": 2})}
             for k, (en, _) in enumerate(toy_pairs(per_client, seed=1000 + c))] for c in range(clients)]
    translator = models["default"].translator
    expected = {}
    for ask in (a for client_asks in asks for a in client_asks):
        settings = Settings(beam=ask.get("beam", 1), temperature=ask.get("temperature"))
        found = search(translator, [Row(ask["text"], ask.get("seed"))], settings)[0]
        expected[json.dumps(ask, sort_keys=True)] = (found.text, found.hypotheses[0].score)
    app = create_app(models, Limits(max_queue=1000))

    async def one_client(http, my_asks):
        out = []
        for ask in my_asks:
            r = await http.post("/translate", json=ask)
            assert r.status_code == 200, r.text
            h = r.json()["results"][0]["hypotheses"][0]
            out.append((json.dumps(ask, sort_keys=True), h["text"], h["score"]))
        return out

    async def everyone(url):
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
            return await asyncio.gather(*(one_client(http, a) for a in asks))

    with live_server(app) as (_, _, url):
        start = time.monotonic()
        answers = asyncio.run(everyone(url))
        seconds = time.monotonic() - start
        metrics = httpx.get(f"{url}/metrics").text
    print(f"served in {seconds:.1f} s")
    assert seconds < 120
    for key, text, score in (a for client_answers in answers for a in client_answers):
        assert (text, pytest.approx(score, abs=1e-4)) == expected[key]
    assert sum(len(a) for a in answers) == clients * per_client
    batches = float(metrics.split("seq2seq_batch_sentences_count ")[1].split()[0])
    assert batches < clients * per_client  # requests were batched together


# -------------------------------------------------------------------------------- the page

def alpha(css_colour: str) -> float:
    """The alpha of a computed `rgb(...)` / `rgba(...)` colour."""
    parts = css_colour[css_colour.index("(") + 1: -1].split(",")
    return float(parts[3]) if len(parts) == 4 else (0.0 if css_colour == "rgba(0, 0, 0, 0)" else 1.0)


@pytest.mark.slow
def test_the_page_translates_lights_up_attention_and_samples_in_a_real_browser(models):
    """Headless Debian chromium through Playwright: translate, hover a French piece (the English pieces lit
    are those /attention weighs most), click for the heatmap, switch layers, samples that follow the
    temperature slider, both models side by side, and an API error shown as a message."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no chromium executable (apt-get install chromium, or set SEQ2SEQ_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with live_server(create_app(models, Limits(max_sentence_chars=200))) as (_, _, url), \
            sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        assert page.is_visible("#compare-box")  # two models are served
        page.fill("#source", "The cat sees a dog.")
        page.click("#translate")
        panel = page.locator('.panel[data-model="default"]')
        panel.locator(".source .piece.marker").wait_for()  # the attention has come: the source shows </s>
        targets = panel.locator(".target .piece")
        assert "".join(targets.all_inner_texts()[:-1]).strip() == "Le chat voit un chien."
        assert panel.locator(".confidence").inner_text().startswith("confidence: mean log-probability")
        attention = httpx.post(f"{url}/attention", json={"text": "The cat sees a dog."}).json()
        j = attention["target_pieces"].index("\u2581chat")
        check_spotlight(panel, targets.nth(j), attention["layers"][-1][j])
        top = int(panel.locator(".source .piece.top").get_attribute("data-index"))
        assert attention["source_pieces"][top] == "\u2581cat"
        targets.nth(j).click()
        assert panel.locator(".heatmap tbody tr").count() == len(attention["target_pieces"])
        panel.locator("select.layer").select_option("0")
        check_spotlight(panel, targets.nth(j), attention["layers"][0][j])

        slider = page.locator("#temperature")
        slider.focus()
        for _ in range(5):
            page.keyboard.press("ArrowLeft")
        assert page.inner_text("#temperature-value") == "0.5"
        page.click("#sample")
        page.wait_for_function("document.querySelectorAll('#samples li').length === 5")
        assert all(t.startswith("T = 0.5, seed") for t in page.locator("#samples li").all_inner_texts())
        slider.focus()
        page.keyboard.press("ArrowRight")  # the samples on show are drawn again at 0.6
        page.wait_for_function("[...document.querySelectorAll('#samples li')]"
                               ".every(li => li.textContent.startsWith('T = 0.6'))")

        page.check("#compare")
        page.locator('.panel[data-model="gpt"] .source .piece.marker').wait_for()
        assert page.locator(".panel").count() == 2
        gpt = page.locator('.panel[data-model="gpt"]')
        gpt_attention = httpx.post(f"{url}/attention", json={"text": "The cat sees a dog.", "model": "gpt"}).json()
        check_spotlight(gpt, gpt.locator(".target .piece").nth(1), gpt_attention["layers"][-1][1])

        page.fill("#source", "word " * 60)
        page.click("#translate")
        page.wait_for_selector("#error:not([hidden])")
        assert page.inner_text("#error") == "Error 422: a sentence of 300 characters: at most 200 per sentence"
        browser.close()


def check_spotlight(panel, target_piece, row: list[float]) -> None:
    """Hovering `target_piece` lights each source piece with its /attention weight: same weights, same order."""
    target_piece.hover()
    sources = panel.locator(".source .piece")
    shown = [float(w) for w in sources.evaluate_all("spans => spans.map(s => s.dataset.weight)")]
    assert shown == pytest.approx(row, abs=1e-5)
    lit = [alpha(c) for c in sources.evaluate_all("spans => spans.map(s => getComputedStyle(s).backgroundColor)")]
    by_light = sorted(range(len(lit)), key=lambda i: -lit[i])[:3]
    by_weight = sorted(range(len(row)), key=lambda i: -row[i])[:3]
    assert by_light == by_weight
    assert lit[by_weight[0]] == pytest.approx(1.0, abs=1e-3)


# -------------------------------------------------------------------------------- the command and the bench

def test_the_command_s_defaults_are_the_limits_defaults():
    assert DEFAULT_LIMITS == {k: v for k, v in vars(Limits()).items() if k != "batching"}


@pytest.mark.parametrize("args, message", [
    (["--model", "a=x", "--model", "a=y"], "the name 'a' is given twice"),
    (["--model", "a b=x"], "a name is letters, digits"),
    (["--model", "missing/dir"], "model directory not found"),
    (["--max-queue", "0"], "must be positive"),
    (["--port", "70000"], "--port 70000"),
])
def test_serve_refuses_bad_options_in_one_line(run_dir, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(["serve", *(["--model", str(run_dir / "model")] if args[0] != "--model" else []), *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


@pytest.mark.slow
def test_seq2seq_serve_answers_curl_then_finishes_its_work_on_sigterm_and_the_bench_runs(run_dir):
    many = [en for en, _ in toy_pairs(64, seed=3)]
    with serve_process(run_dir / "model", threads=1) as (proc, url), ThreadPoolExecutor(1) as pool:
        r = httpx.post(f"{url}/translate", content='{"text": "The cat sees a dog."}',
                       headers={"content-type": "application/json"})
        assert r.json()["results"][0]["hypotheses"][0]["text"] == "Le chat voit un chien."
        assert "<title>" in httpx.get(url).text
        in_flight = pool.submit(httpx.post, f"{url}/translate", json={"text": many, "beam": 8}, timeout=60)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert len(in_flight.result().json()["results"]) == 64  # answered before the server went
    assert proc.returncode == -signal.SIGTERM  # uvicorn, done, re-raises the signal it caught
    sentences = [en for en, _ in toy_pairs(12, seed=5)]
    figures = measure(run_dir / "model", sentences, threads=1, rss_requests=40, clients=(1, 4), log=lambda m: None)
    assert [(r["server"], r["clients"], r["requests"]) for r in figures["rows"]] == [
        ("dynamic batching", 1, 12), ("dynamic batching", 4, 12), ("batch of 1", 1, 12), ("batch of 1", 4, 12)]
    assert all(r["sentences_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"] for r in figures["rows"])
    assert figures["ceiling"]["sentences"] == 12 and len(figures["memory"]["samples"]) == 10
    text = "\n".join(markdown({**figures, "test_set": "toy", "weights": "tiny"}, _table))
    assert "| dynamic batching | 4 |" in text and "at 4 clients" in text and "RSS over 40 requests" in text
