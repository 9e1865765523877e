"""Regenerate the README screenshots of the demo (docs/screenshots/ask.png, ask-phone.png and analysis.png).

    python docs/screenshots/make.py --checkpoint checkpoints/mcd-synth [--example 2] [--row 1]
        [--predictions PRED.jsonl --bench data/synth-default]

ask.png: the Ask tab after answering an example clip's questions, with one row selected (1400 px wide).
ask-phone.png: the same on a 390-px phone screen, scrolled to the results.
analysis.png: the Analysis tab with the bundled example run ("Load example run"), or with an `mcd evaluate`
predictions file when --predictions is given, filtered to wrong answers, and the first wrong row opened (its clip
and clues; a predictions file needs the benchmark folder holding videos/<video_id>.mp4).
Drives Debian's chromium with Playwright, like tests/test_browser.py.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import app  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


def main() -> int:
    from playwright.sync_api import sync_playwright

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--predictions", type=Path, help="predictions JSONL from `mcd evaluate` (default: the example run)")
    p.add_argument("--annotations", type=Path, help="needed only for bare prediction rows")
    p.add_argument("--bench", type=Path, help="benchmark folder (videos/<video_id>.mp4) to open a row's clip")
    p.add_argument("--example", type=int, default=0, help="which example clip of assets/examples.json")
    p.add_argument("--row", type=int, default=1, help="which answer row to select")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()

    settings = app.Settings()
    demo_app, demo = app.create_app(args.checkpoint, settings)
    info = app.launch(demo, settings, host="127.0.0.1", port=None, block=False, quiet=True)
    url = info[1] if isinstance(info, tuple) else demo.local_url
    example = demo_app.examples[args.example]
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            for name, width, height in (("ask-phone.png", 390, 844), ("ask.png", 1400, 1000)):
                page = browser.new_page(viewport={"width": width, "height": height})
                ask(page, url, example, args.row)
                page.screenshot(path=str(args.out / name), full_page=True)

            page.get_by_role("tab", name="Analysis").click()
            if args.predictions:
                page.locator("#pred-file input[type=file]").set_input_files(str(args.predictions))
                if args.annotations:
                    page.locator("#ann-file input[type=file]").set_input_files(str(args.annotations))
                if args.bench:
                    page.get_by_label("Benchmark folder", exact=False).fill(str(args.bench.resolve()))
                time.sleep(2)                               # uploads finish
                page.locator("#load-btn").click()
            else:
                page.locator("#example-run-btn").click()
            page.wait_for_function("document.querySelectorAll('#analysis-table [role=row]').length > 2",
                                   timeout=120_000)
            page.get_by_label("wrong answers only").check()
            time.sleep(3)
            page.locator("#analysis-table [data-testid=cell-0-3]").click()
            if args.bench or not args.predictions:
                page.locator("#analysis-heatmap img").wait_for(timeout=60_000)
            time.sleep(2)
            page.screenshot(path=str(args.out / "analysis.png"), full_page=True)
            browser.close()
    finally:
        demo.close()
    print(f"wrote ask.png, ask-phone.png and analysis.png in {args.out}")
    return 0


def ask(page, url: str, example, row: int) -> None:
    """Upload the example clip, ask its questions, select answer `row` and wait for its figures."""
    page.goto(url)
    page.wait_for_selector("#answer-btn")
    page.locator("#video-input input[type=file]").set_input_files(str(example.video))
    page.wait_for_selector("#video-input video")
    page.locator("#questions textarea").fill("\n".join(example.questions))
    page.locator("#answer-btn").click()
    page.wait_for_function(f"document.querySelectorAll('#results-table [role=row]').length > "
                           f"{len(example.questions)}", timeout=120_000)
    page.locator(f"#results-table [data-testid=cell-{row}-1]").click()
    page.wait_for_function("document.querySelector('#selected-question').innerText"
                           f".includes('Question {row + 1}')")
    page.locator("#top5 img").wait_for(timeout=60_000)
    time.sleep(2)                                           # let the other plots finish loading


if __name__ == "__main__":
    sys.exit(main())
