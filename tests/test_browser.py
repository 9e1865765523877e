"""The demo in a real browser: Playwright drives Debian's chromium through the whole "Ask" flow.

Open the page, upload a clip, type 3 questions, press Answer, wait for the 3 rows of the results table, select
the second row, and see its figures replace the first question's (header and heatmap). A full-page screenshot is
kept in test-artifacts/ (git-ignored; CI keeps it as an artifact).

Skipped, saying why, when chromium or the Playwright package is missing, or when no checkpoint exists
($MCD_CHECKPOINT or the shipped checkpoints/mcd-synth).
"""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import app  # noqa: E402
from mcd.serving.pipeline import DEFAULT_CHECKPOINT  # noqa: E402

try:
    from tests.media_factory import ClipSpec, make_clip
except ImportError:
    from media_factory import ClipSpec, make_clip

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:                                      # the browser fixture skips these tests then
    PlaywrightTimeout = TimeoutError

CHROMIUM = Path(os.environ.get("MCD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts"
QUESTIONS = ["Is there a voiceover?", "Where is the performance?", "Is there a violin sound?"]
MAX_FILE_MB = 5              # the example clips are far smaller; the "too big" file is 6 MB


def checkpoint_or_skip() -> Path:
    env = os.environ.get("MCD_CHECKPOINT")
    path = Path(env) if env else DEFAULT_CHECKPOINT
    if not (path / "config.json").is_file():
        pytest.skip(f"no checkpoint at {path}: set MCD_CHECKPOINT or ship checkpoints/mcd-synth")
    return path


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (scripts/setup.sh dev installs Debian's chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(browser):
    checkpoint = checkpoint_or_skip()
    settings = app.Settings(max_file_mb=MAX_FILE_MB, max_duration_s=30)
    _, demo = app.create_app(checkpoint, settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.launch(demo, settings, host="127.0.0.1", port=port, block=False, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def clip_for_upload(tmp_path: Path) -> Path:
    examples = app.load_examples()
    if examples:
        return examples[0].video
    return make_clip(tmp_path / "upload.mp4", ClipSpec(duration=4.0, fps=8, width=160, height=120))


def test_ask_three_questions_and_select_a_row(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(server)
        page.wait_for_selector("#answer-btn", timeout=30_000)
        page.locator("#video-input input[type=file]").set_input_files(str(clip_for_upload(tmp_path)))
        page.wait_for_selector("#video-input video", timeout=30_000)      # the upload finished and shows
        page.locator("#questions textarea").fill("\n".join(QUESTIONS))
        page.locator("#answer-btn").click()

        rows = page.locator("#results-table [role=row]")
        page.wait_for_function("document.querySelectorAll('#results-table [role=row]').length >= 4",
                               timeout=90_000)                            # header + 3 answers
        assert rows.count() == 4
        assert [page.locator(f"#results-table [data-testid=cell-{i}-1]").inner_text() for i in range(3)] == QUESTIONS
        page.wait_for_function("(document.querySelector('#selected-question')?.innerText || '').includes('Question 1')")
        page.locator("#heatmap img").wait_for(timeout=30_000)
        page.locator("#top5 img").wait_for(timeout=30_000)          # the clue panel shows after the answer
        first_top5 = page.locator("#top5 img").get_attribute("src")

        page.locator("#results-table [data-testid=cell-1-1]").click()      # second question's row
        page.wait_for_function("(document.querySelector('#selected-question')?.innerText || '').includes('Question 2')",
                               timeout=30_000)
        assert QUESTIONS[1] in page.locator("#selected-question").inner_text()
        # the second question's figures replaced the first's (its top-5 differs), and the heatmap is drawn
        page.wait_for_function(
            "src => document.querySelector('#top5 img').getAttribute('src') !== src", arg=first_top5,
            timeout=30_000)
        page.wait_for_function(
            "() => { const img = document.querySelector('#heatmap img');"
            " return img && img.complete && img.naturalWidth > 300; }", timeout=30_000)
        for name in ("top5", "teacher_student", "temporal", "association", "objects"):
            assert page.locator(f"#{name} img").count() == 1, name
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser_ask.png"), full_page=True)
        page.close()
    assert (ARTIFACTS / "browser_ask.png").stat().st_size > 10_000


def test_bad_inputs_in_the_page_show_messages_and_the_page_keeps_working(browser, server, tmp_path):
    def toast(text: str) -> None:
        page.locator("[data-testid=toast-body]", has_text=text).first.wait_for(timeout=30_000)

    def upload(path: Path) -> None:
        clear = page.locator("#video-input button[aria-label=Clear]")
        file_input = page.locator("#video-input input[type=file]")
        for _ in range(6):                               # a clip is loaded: remove it to get the file input back
            if file_input.count() or not clear.count():
                break
            clear.first.click()   # a click right after a failed request can go unanswered: the user clicks again
            try:
                file_input.wait_for(state="attached", timeout=10_000)
            except PlaywrightTimeout:
                continue
        file_input.set_input_files(str(path), timeout=60_000)

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(server)
        page.wait_for_selector("#answer-btn", timeout=30_000)
        page.locator("#questions textarea").fill(QUESTIONS[0])
        page.locator("#answer-btn").click()
        toast("Please upload a video clip")

        big = tmp_path / "big.mp4"
        big.write_bytes(os.urandom((MAX_FILE_MB + 1) * 1024 * 1024))
        upload(big)
        toast("exceed the maximum allowed size")

        fake = tmp_path / "notes.mp4"                   # passes the browser's file-type filter, is not a video
        fake.write_text("a shopping list, not a video")
        upload(fake)
        page.wait_for_selector("#video-input video", state="attached", timeout=30_000)
        page.locator("#answer-btn").click()
        toast("not a video")

        upload(clip_for_upload(tmp_path))
        page.locator("#questions textarea").fill("\n".join(f"Is there a voiceover {i}?" for i in range(21)))
        page.locator("#answer-btn").click()
        toast("21 questions were given")

        page.locator("#questions textarea").fill("\n".join(QUESTIONS[:2]))
        page.locator("#answer-btn").click()
        page.wait_for_function("document.querySelectorAll('#results-table [role=row]').length === 3",
                               timeout=90_000)                            # header + 2 answers
        assert page.locator("#results-table [data-testid=cell-1-1]").inner_text() == QUESTIONS[1]
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser_bad_inputs.png"), full_page=True)
        page.close()


def upload(page, path: Path) -> None:
    """Put `path` in the clip box, removing a clip already there (its file input only exists when empty)."""
    clear = page.locator("#video-input button[aria-label=Clear]")
    if clear.count():
        clear.first.click()
    page.locator("#video-input input[type=file]").set_input_files(str(path))
    page.wait_for_selector("#video-input video", timeout=30_000)


def ask(page, questions: list[str]) -> None:
    """Type `questions`, press Answer and wait until the table holds exactly their rows."""
    page.locator("#questions textarea").fill("\n".join(questions))
    page.locator("#answer-btn").click()
    page.wait_for_function(
        "n => { const cells = [...document.querySelectorAll('#results-table [data-testid^=\"cell-\"][data-testid$=\"-1\"]')];"
        " return cells.length === n.length && cells.every((c, i) => c.innerText.trim() === n[i]); }",
        arg=questions, timeout=120_000)


@pytest.mark.parametrize("width", [1400, 390], ids=["desktop", "phone"])
def test_the_page_says_what_it_knows_and_an_error_keeps_the_results(browser, server, tmp_path, width):
    """At desktop and phone widths: the domain line is visible before anything is asked and no empty figure boxes
    are; an example clip gets no out-of-domain banner and no marks; an input error after a good run is one toast, and the results stay readable and
    clickable. At desktop width every column header fits on one line."""
    examples = app.load_examples()
    if not examples:
        pytest.skip("assets/examples.json lists no example clips")
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(server)
        page.wait_for_selector("#answer-btn", timeout=30_000)
        line = page.locator("#domain-line")
        assert line.is_visible() and "What this model knows" in line.inner_text()
        assert page.locator("#heatmap").count() == 0 or not page.locator("#heatmap").is_visible()

        example = examples[0]
        upload(page, example.video)
        ask(page, example.questions[:3])
        page.locator("#domain-warning").wait_for(state="hidden", timeout=30_000)
        assert app.UNRELIABLE_MARK.strip() not in page.locator("#results-table [data-testid=cell-0-4]").inner_text()
        page.locator("#heatmap img").wait_for(timeout=30_000)

        page.locator("#questions textarea").fill("")
        page.locator("#answer-btn").click()
        page.locator("[data-testid=toast-body]", has_text="at least one question").first.wait_for(timeout=30_000)
        assert page.locator("#results-table [data-testid=cell-1-1]").inner_text() == example.questions[1]
        page.locator("#results-table [data-testid=cell-1-1]").click()
        page.wait_for_function("(document.querySelector('#selected-question')?.innerText || '').includes('Question 2')",
                               timeout=30_000)

        if width >= 1000:
            # one line per header: the text's box is one line high and nothing of it is cut off
            heights = page.evaluate(
                "() => [...document.querySelectorAll('#results-table th .header-content span.header')].map(s => "
                "[s.innerText, s.getBoundingClientRect().height, parseFloat(getComputedStyle(s).lineHeight) || 20, "
                "s.scrollWidth <= s.parentElement.parentElement.clientWidth + 1])")
            assert len(heights) == len(app.RESULT_COLUMNS)
            for text, height, line_height, fits in heights:
                assert height < 1.6 * line_height and fits, (text, height, line_height, fits)
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"browser_domain_{width}.png"), full_page=True)
        page.close()


def test_the_analysis_tab_loads_the_example_run(browser, server):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(server)
        page.get_by_role("tab", name="Analysis").click()
        page.locator("#example-run-btn").click()
        page.wait_for_function("document.querySelectorAll('#analysis-table [role=row]').length > 5",
                               timeout=60_000)
        page.locator("#analysis-table [data-testid=cell-0-3]").click()
        page.locator("#analysis-heatmap img").wait_for(timeout=60_000)
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser_example_run.png"), full_page=True)
        page.close()


def test_a_foreign_clip_gets_the_warning_and_marked_answers(browser, server, tmp_path):
    """A clip nothing like the training world (a grey ramp and a pure tone) gets the out-of-domain banner with
    its reason, and its answers carry the unreliable mark in the table itself."""
    path = make_clip(tmp_path / "foreign.mp4", ClipSpec(duration=4.0, width=160, height=120, tones=(440.0,)))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(server)
        page.wait_for_selector("#answer-btn", timeout=30_000)
        upload(page, path)
        ask(page, ["Is there a violin sound?"])
        warning = page.locator("#domain-warning")
        warning.wait_for(state="visible", timeout=30_000)
        assert "Out of domain" in warning.inner_text()
        assert app.UNRELIABLE_MARK.strip() in page.locator("#results-table [data-testid=cell-0-4]").inner_text()
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser_foreign.png"), full_page=True)
        page.close()
