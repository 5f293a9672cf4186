"""`seq2seq serve`: translation over HTTP (FastAPI + uvicorn) with dynamic batching, and a web page.

- schemas.py: the request models (unknown fields refused, ranges checked) and the server's limits;
- engine.py: the served models and the one adapter into the Translator;
- batcher.py: requests with equal search settings, arriving within a few milliseconds, decoded together
  in a worker thread, behind a bounded queue;
- app.py: the endpoints, the one error shape `{"error": "..."}`, the metrics;
- static/: the page (plain HTML, CSS and JavaScript; nothing fetched from elsewhere).
"""
