"""The README's picture of the `seq2seq serve` page: a real server, headless Debian chromium (Playwright).

    python scripts/serve_screenshot.py --model outputs/cpu_small/model --out docs/img/serve.png \\
        --text "A man in a red shirt is riding a bicycle." --word rouge

Translates TEXT, clicks the first French piece containing WORD (its spotlight and the heatmap show),
draws 5 samples at temperature 0.8, and saves the whole page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seq2seq.bench.serve import find_chromium, server  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, metavar="[NAME=]DIR", help="as for seq2seq serve")
    p.add_argument("--out", type=Path, default=Path("docs/img/serve.png"))
    p.add_argument("--text", default="A man in a red shirt is riding a bicycle.")
    p.add_argument("--word", default="rouge", help="the French word whose spotlight is shown")
    p.add_argument("--temperature", default="0.8")
    args = p.parse_args()
    chromium = find_chromium()
    if chromium is None:
        sys.exit("error: no chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - lazy: optional package (dev extra)

    with server(args.model, threads=2) as (_, url), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        if len(args.model) > 1:
            page.check("#compare")
        page.fill("#source", args.text)
        page.click("#translate")
        page.wait_for_function("[...document.querySelectorAll('.panel')]"
                               ".every(p => p.querySelector('.source .marker'))", timeout=120_000)
        pieces = page.locator(".panel").first.locator(".target .piece")
        texts = pieces.all_inner_texts()
        word = next((i for i, t in enumerate(texts) if args.word in t), 0)
        page.eval_on_selector("#temperature", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
                              args.temperature)
        page.click("#sample")
        page.wait_for_function("document.querySelectorAll('#samples li').length === 5", timeout=120_000)
        pieces.nth(word).click()
        pieces.nth(word).hover()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    print(args.out)


if __name__ == "__main__":
    main()
