"""app.py served for real: gradio_client calls /answer on a running server, plus the Analysis tab's helpers.

The server tests launch the demo in this process on a free port with small limits (so "too big" and "too long"
inputs are cheap to make) and talk to it only through `gradio_client` and HTTP, as a user's script would.
Reference answers come from the same checkpoint through `mcd predict` and `Pipeline.answer`, so a test fails if
the app answers a different clip, mixes up sessions, drops a question or reorders them.

The checkpoint is $MCD_CHECKPOINT or the shipped checkpoints/mcd-synth; the server tests are skipped (saying
why) only when neither exists. The Analysis helpers and the start-up checks need no checkpoint.
"""
from __future__ import annotations

import base64
import csv
import io
import json
import os
import socket
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import app  # noqa: E402
from mcd import cli  # noqa: E402
from mcd.data.music_avqa import load_annotations  # noqa: E402
from mcd.serving.pipeline import DEFAULT_CHECKPOINT  # noqa: E402

try:
    from tests.media_factory import ClipSpec, make_clip
except ImportError:  # pytest's rootdir-less import mode
    from media_factory import ClipSpec, make_clip

FIXTURE_ANNOTATIONS = ROOT / "tests" / "fixtures" / "music-avqa" / "avqa-val-excerpt.json"
MAX_DURATION_S = 12.0        # the example clips are 10 s; a 13-s clip is "too long"
# /answer outputs, in order
RESULTS, TABLE, HEADER, PLOTS, CLIP = 0, 1, 2, slice(3, 10), 10


def find_checkpoint() -> tuple[Path | None, str]:
    env = os.environ.get("MCD_CHECKPOINT")
    if env:
        path = Path(env)
        return (path, "") if (path / "config.json").is_file() else (None, f"MCD_CHECKPOINT={env} has no config.json")
    if (DEFAULT_CHECKPOINT / "config.json").is_file():
        return DEFAULT_CHECKPOINT, ""
    return None, f"no checkpoint: set MCD_CHECKPOINT or ship {DEFAULT_CHECKPOINT.relative_to(ROOT)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quiet_progress(*args, **kwargs) -> None:
    """Stands in for gr.Progress when handlers are called directly (outside a Gradio event)."""


def select(index: int) -> "app.gr.SelectData":
    return app.gr.SelectData(None, {"index": [index, 0], "value": None})


def decode_plot(value: dict) -> Image.Image:
    assert value["type"] == "matplotlib" and value["plot"].startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(value["plot"].split(",", 1)[1])))


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def checkpoint() -> Path:
    path, reason = find_checkpoint()
    if path is None:
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def examples() -> list[app.Example]:
    return app.load_examples()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> SimpleNamespace:
    """Small generated clips with known properties (distinct content, so distinct features)."""
    d = tmp_path_factory.mktemp("clips")
    distinct = [make_clip(d / f"clip{i}.mp4", ClipSpec(duration=2.0 + i, fps=6, width=96, height=64,
                                                         tones=(220.0 * (i + 1),)))
                for i in range(4)]
    silent = make_clip(d / "silent.mp4", ClipSpec(duration=2.0, channels=0, width=96, height=64))
    long = make_clip(d / "long.mp4", ClipSpec(duration=MAX_DURATION_S + 1, fps=2, width=32, height=32))
    notes = d / "notes.txt"
    notes.write_text("a shopping list, not a video\n")
    return SimpleNamespace(distinct=distinct, silent=silent, long=long, notes=notes, dir=d)


@pytest.fixture(scope="module")
def server(checkpoint, examples, clips):
    biggest = max([e.video.stat().st_size for e in examples] + [c.stat().st_size for c in clips.distinct])
    max_mb = max(2.0, round(biggest / 2**20 + 1))
    settings = app.Settings(max_file_mb=max_mb, max_duration_s=MAX_DURATION_S, concurrency=4)
    demo_app, demo = app.create_app(checkpoint, settings)
    port = free_port()
    app.launch(demo, settings, host="127.0.0.1", port=port, block=False, quiet=True)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", app=demo_app, settings=settings, checkpoint=checkpoint)
    demo.close()


@pytest.fixture()
def client(server):
    from gradio_client import Client

    return Client(server.url, verbose=False)


def ask(client, video, questions: str):
    from gradio_client import handle_file

    return client.predict(handle_file(str(video)) if video is not None else None, questions, api_name="/answer")


# ------------------------------------------------------------------------------------------------ server

def test_only_answer_and_predict_are_public(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert sorted(api["named_endpoints"]) == ["/answer", "/predict"]      # /predict: tests/test_api_predict.py
    assert not api["unnamed_endpoints"]
    params = [p["parameter_name"] for p in api["named_endpoints"]["/answer"]["parameters"]]
    assert params == ["video", "questions"]


def test_answer_matches_mcd_predict_and_returns_figures(server, client, examples, capsys):
    if not examples:
        pytest.skip("assets/examples.json lists no example clips yet")
    example = examples[0]
    out = ask(client, example.video, "\n".join(example.questions))
    payload = out[RESULTS]

    argv = ["predict", "--checkpoint", str(server.checkpoint), "--video", str(example.video)]
    for q in example.questions:
        argv += ["--question", q]
    capsys.readouterr()
    assert cli.main(argv) == 0
    predicted = json.loads(capsys.readouterr().out)

    assert [a["question"] for a in payload["answers"]] == example.questions
    assert payload["answers"] == predicted["answers"]          # answers, confidences, top-5, teacher, clues
    assert payload["clip"] == predicted["clip"]
    table = out[TABLE]
    col = {name: table["headers"].index(name) for name in ("answer", "teacher", "expected", "understood as")}
    assert [row[col["answer"]] for row in table["data"]] == [a["answer"] for a in predicted["answers"]]
    assert [row[col["teacher"]] for row in table["data"]] == [a["teacher_answer"] for a in predicted["answers"]]
    assert [row[col["expected"]] for row in table["data"]] == [example.answers.get(q, "") for q in example.questions]
    assert [row[col["understood as"]] for row in table["data"]] == [a["understood_as"] for a in predicted["answers"]]
    assert out[HEADER].startswith(f"**Question 1:** {example.questions[0]}")
    for plot in out[PLOTS]:
        image = decode_plot(plot)
        assert image.width > 200 and image.height > 150
    assert "Clip:" in out[CLIP]


def test_bad_inputs_give_clear_errors_and_the_app_keeps_serving(server, client, clips):
    from gradio_client.exceptions import AppError

    good = clips.distinct[0]

    def still_serving():
        out = ask(client, good, "Is there a voiceover?")
        assert out[RESULTS]["answers"][0]["question"] == "Is there a voiceover?"

    cases = [
        (None, "Is there a voiceover?", "upload a video clip"),
        (clips.notes, "Is there a voiceover?", "not a video"),
        (good, " \n  \n", "at least one question"),
        (good, "\n".join(f"Is there a voiceover {i}?" for i in range(21)), "21 questions"),
        (clips.long, "Is there a voiceover?", f"the limit is {MAX_DURATION_S:g} s"),
    ]
    for video, questions, message in cases:
        with pytest.raises(AppError, match=message):
            ask(client, video, questions)
        still_serving()

    # a clip without audio is answered, with a warning in the results and the clip panel
    out = ask(client, clips.silent, "Is there a voiceover?\nWhere is the performance?")
    assert out[RESULTS]["clip"]["has_audio"] is False
    assert "Audio: none" in out[CLIP] and "no audio track" in out[CLIP]
    assert set(out[RESULTS]) == {"video", "checkpoint", "clip", "answers"}   # the answer contract, nothing else
    assert len(out[RESULTS]["answers"]) == 2

    # over the size limit: refused at upload, by the client library and by the server itself
    big = clips.dir / "big.mp4"
    big.write_bytes(os.urandom(server.settings.max_bytes + 1024))
    with pytest.raises(Exception, match="maximum file size"):
        ask(client, big, "Is there a voiceover?")
    with open(big, "rb") as f:
        r = httpx.post(server.url + "gradio_api/upload", files={"files": ("big.mp4", f, "video/mp4")}, timeout=30)
    assert r.status_code == 413
    still_serving()


def test_four_concurrent_sessions_get_their_own_results(server, clips):
    from gradio_client import Client

    questions = "Is there a voiceover?\nHow many musical instruments were heard throughout the video?"
    pipe = server.app.pipe
    expected = []
    for clip in clips.distinct:
        answers = pipe.answer(clip, questions)
        expected.append([r.summary(answers.clip.clip.timestamps) for r in answers.results])
    assert len({json.dumps(e) for e in expected}) == 4, "the test clips must give distinct results"
    pipe.clear_cache()            # make every session decode and encode its clip again, at the same time

    results, errors = [None] * 4, []

    def session(i: int):
        try:
            results[i] = ask(Client(server.url, verbose=False), clips.distinct[i], questions)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    for i in range(4):
        assert results[i][RESULTS]["answers"] == expected[i]
        assert results[i][RESULTS]["clip"]["duration_s"] == pytest.approx(2.0 + i, abs=0.2)


def test_selecting_a_row_shows_that_questions_figures(server, clips):
    demo_app = server.app
    questions = "Is there a voiceover?\nWhere is the performance?\nIs there a violin sound?"
    out = demo_app.answer(str(clips.distinct[1]), questions, progress=quiet_progress)
    session = out[-1]
    assert len(session.results) == 3
    header, *figures = demo_app.select_question(session, select(2))
    assert header.startswith("**Question 3:** Is there a violin sound?")
    assert len(figures) == len(app.viz.FIGURE_NAMES)
    assert all(f is not None and f.axes for f in figures)
    with pytest.raises(app.gr.Error, match="no question 4"):
        demo_app.select_question(session, select(3))
    with pytest.raises(app.gr.Error, match="Answer some questions first"):
        demo_app.select_question(None, select(0))


def test_files_are_served_only_from_assets_and_temp(server, examples, tmp_path):
    def status(path) -> int:
        return httpx.get(f"{server.url}gradio_api/file={path}", timeout=30).status_code

    assert status(ROOT / "app.py") == 403
    assert status(server.checkpoint / "config.json") == 403
    outside = tmp_path / "private.mp4"          # in the temp dir, but not created by the app: refused too
    outside.write_bytes(b"x")
    assert status(outside) == 403
    if examples:
        assert status(examples[0].video) == 200


def test_root_path_from_environment(server, monkeypatch):
    monkeypatch.setenv("GRADIO_ROOT_PATH", "/mcd-demo")
    demo = app.DemoApp(server.app.pipe, server.settings).build()
    port = free_port()
    app.launch(demo, server.settings, host="127.0.0.1", port=port, block=False, quiet=True)
    try:
        config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=30).json()
        assert config["root"].endswith("/mcd-demo")
    finally:
        demo.close()


def test_analysis_row_opens_its_clip_and_clues(server, clips, tmp_path):
    bench = tmp_path / "bench"
    (bench / "videos").mkdir(parents=True)
    (bench / "videos" / "synth_000001.mp4").write_bytes(clips.distinct[2].read_bytes())
    rows = [{"question_id": 1, "video_id": "synth_000001", "question": "Is there a voiceover?",
             "type": "Audio-Visual/Existential", "answer": "no", "pred": "yes", "teacher_pred": "no"},
            {"question_id": 2, "video_id": "synth_404", "question": "Is there a voiceover?",
             "type": "Audio-Visual/Existential", "answer": "no", "pred": "no", "teacher_pred": "no"}]
    head, video, *figures = server.app.open_row(rows, str(bench), select(0))
    assert "synth_000001" in head and "predicted **yes**" in head
    assert Path(video).is_file() and Path(video).read_bytes() == clips.distinct[2].read_bytes()
    assert not Path(video).is_relative_to(bench)               # served from a temp copy, never the folder
    assert all(f is not None for f in figures)
    head, video, *figures = server.app.open_row(rows, str(bench), select(1))
    assert video is None and "not available" in head and all(f is None for f in figures)


def test_analysis_tab_handlers_load_filter_and_export(server, tmp_path):
    path, records, right = fixture_predictions(tmp_path, enriched=False)
    demo_app = server.app
    (summary, types, accuracy_fig, confusion_fig, type_dd, gold_dd, pred_dd, _, _, table, count, all_rows,
     shown) = demo_app.load_predictions(str(path), str(FIXTURE_ANNOTATIONS))
    assert f"overall accuracy {right / len(records):.2%}" in summary
    assert len(table) == len(records) == len(all_rows) and count == f"{len(records)} of {len(records)} rows"
    assert set(type_dd.constructor_args["choices"]) - {app.ALL} == {r.type for r in records}
    assert accuracy_fig.axes and confusion_fig.axes

    table, count, confusion_fig, shown = demo_app.apply_filters(all_rows, True, False, app.ALL, app.ALL, app.ALL)
    wrong = [r for r in all_rows if not r["correct"]]
    assert list(table["question_id"]) == [r["question_id"] for r in wrong]
    assert count == f"{len(wrong)} of {len(records)} rows" and shown == wrong
    csv_path = demo_app.export_csv(shown)
    with open(csv_path, newline="") as f:
        assert [int(r["question_id"]) for r in csv.DictReader(f)] == [r["question_id"] for r in wrong]
    with pytest.raises(app.gr.Error, match="No rows to export"):
        demo_app.export_csv([])
    with pytest.raises(app.gr.Error, match="upload a predictions"):
        demo_app.load_predictions(None, None)
    with pytest.raises(app.gr.Error, match="load the annotations file"):
        demo_app.load_predictions(str(path), None)


# ------------------------------------------------------------------------------------------------ no checkpoint

def test_start_up_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert app.main(["--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_load_examples_accepts_the_documented_shapes(tmp_path):
    make_clip(tmp_path / "a.mp4", ClipSpec(duration=1.0, width=32, height=32))
    (tmp_path / "list.json").write_text(json.dumps([
        {"video": "a.mp4", "questions": ["Is there a voiceover?", " ", "Where is the performance?"], "title": "A",
         "answers": ["no", "", "indoor"]},
        {"video": "missing.mp4", "questions": ["x?"]},
        "not an object"]))
    (tmp_path / "dict.json").write_text(json.dumps({"examples": [{"clip": "a.mp4", "questions": "q1?\nq2?"}]}))
    (tmp_path / "broken.json").write_text("{")
    [a] = app.load_examples(tmp_path / "list.json")
    assert a.video == (tmp_path / "a.mp4").resolve() and a.title == "A"
    assert a.questions == ["Is there a voiceover?", "Where is the performance?"]
    assert a.answers == {"Is there a voiceover?": "no", "Where is the performance?": "indoor"}
    [b] = app.load_examples(tmp_path / "dict.json")
    assert b.questions == ["q1?", "q2?"] and b.title == "a" and b.answers == {}
    assert app.load_examples(tmp_path / "broken.json") == []
    assert app.load_examples(tmp_path / "absent.json") == []


def fixture_predictions(tmp_path: Path, enriched: bool) -> tuple[Path, list, int]:
    """Predictions for the fixture annotations: every third one wrong, and the teacher wrong on every fourth."""
    records = load_annotations(FIXTURE_ANNOTATIONS)
    rows, right = [], 0
    for i, r in enumerate(records):
        wrong = i % 3 == 0
        pred = ("no" if r.answer != "no" else "yes") if wrong else r.answer
        right += not wrong
        row = {"question_id": r.question_id, "pred": pred, "teacher_pred": pred if i % 4 else "zero"}
        if enriched:
            row.update(video_id=r.video_id, question=r.question, type=r.type, answer=r.answer)
        rows.append(row)
    path = tmp_path / ("enriched.jsonl" if enriched else "bare.jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, records, right


@pytest.mark.parametrize("enriched", [True, False])
def test_load_analysis_scores_per_type(tmp_path, enriched):
    path, records, right = fixture_predictions(tmp_path, enriched)
    analysis = app.load_analysis(path, None if enriched else FIXTURE_ANNOTATIONS)
    assert analysis.report["n"] == len(records)
    assert analysis.report["overall"] == pytest.approx(right / len(records))
    assert analysis.teacher_report is not None
    assert all(r["correct"] == (r["pred"] == r["answer"]) for r in analysis.rows)
    table = app.type_table(analysis)
    overall = table[table["type"] == "Overall"].iloc[0]
    assert overall["questions"] == len(records)
    assert overall["accuracy (%)"] == pytest.approx(round(100 * right / len(records), 2))
    for t, n in table[["type", "questions"]].itertuples(index=False):
        if "/" in t:
            assert n == sum(r.type == t for r in records)


def test_load_analysis_explains_what_is_missing(tmp_path):
    path, _, _ = fixture_predictions(tmp_path, enriched=False)
    with pytest.raises(ValueError, match="load the annotations file"):
        app.load_analysis(path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_id": 1, "pred": "yes"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        app.load_analysis(bad, FIXTURE_ANNOTATIONS)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no rows"):
        app.load_analysis(empty, FIXTURE_ANNOTATIONS)


def test_filters_and_csv_export(tmp_path):
    path, records, _ = fixture_predictions(tmp_path, enriched=True)
    rows = app.load_analysis(path).rows
    wrong = app.filter_rows(rows, wrong_only=True)
    assert wrong and all(not r["correct"] for r in wrong)
    assert len(wrong) == sum(i % 3 == 0 for i in range(len(rows)))
    disagree = app.filter_rows(rows, disagree_only=True)
    assert disagree and all(r["teacher_pred"] != r["pred"] for r in disagree)
    qtype = rows[0]["type"]
    by_type = app.filter_rows(rows, qtype=qtype, gold=rows[0]["answer"])
    assert by_type and all(r["type"] == qtype and r["answer"] == rows[0]["answer"] for r in by_type)
    assert app.filter_rows(rows, pred="no such answer") == []
    assert app.filter_rows(rows, qtype=app.ALL, gold=None) == rows

    out = app.write_csv(wrong, tmp_path / "wrong.csv")
    with open(out, newline="") as f:
        read = list(csv.DictReader(f))
    assert [int(r["question_id"]) for r in read] == [r["question_id"] for r in wrong]
    assert list(read[0])[:len(app.ANALYSIS_COLUMNS)] == app.ANALYSIS_COLUMNS
    assert {r["correct"] for r in read} == {"False"}


def test_clip_lookup_refuses_path_tricks(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "synth_1.mp4").write_bytes(b"x")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    assert app.clip_for(str(tmp_path), "synth_1") == tmp_path / "videos" / "synth_1.mp4"
    assert app.clip_for(str(tmp_path / "videos"), "../secret") is None
    assert app.clip_for(str(tmp_path), ".hidden") is None
    assert app.clip_for(str(tmp_path), "a/b") is None
    assert app.clip_for(None, "synth_1") is None
    assert app.clip_for(str(tmp_path), "synth_2") is None


def test_clip_panel_wording():
    summary = {"duration_s": 10.0, "T": 10, "has_audio": False, "width": 224, "height": 224, "ood_score": 5.0,
               "out_of_domain": True}
    text = app.clip_markdown(summary, threshold=2.0)
    assert "Audio: none" in text and "Out of domain" in text and "5.00 > 2.00" in text
    assert len(app.clip_warnings(summary)) == 2
    summary.update(has_audio=True, ood_score=1.0, out_of_domain=False)
    assert "In domain" in app.clip_markdown(summary, threshold=2.0) and app.clip_warnings(summary) == []


def test_question_header_says_what_the_keywords_point_at():
    base = dict(question="Where is the first sounding instrument?", answer="left", confidence=0.9, agree=True,
                teacher_answer="left", teacher_confidence=0.8, type="Audio-Visual/Temporal", keywords=["first"],
                cos_q_v=0.1, cos_q_a=0.2, note=None)
    assert "point at" not in app.question_header(0, SimpleNamespace(**base, referents={}))
    r = SimpleNamespace(**base, referents={
        "first": {"instrument": "acoustic_guitar", "instrument_p": 0.81, "position": "left", "position_p": 0.9,
                  "sounds_p": 0.97},
        "flute": {"instrument": "flute", "instrument_p": 0.99, "position": "absent", "position_p": 0.7,
                  "sounds_p": 0.2}})
    line = app.question_header(0, r).split("\n")[-1]
    assert line == ("Keywords point at: *first* → acoustic guitar (81%), on the left (90%), sounds (97%); "
                    "*flute* → flute (99%), not in the clip (70%), silent (80%).")


def test_example_run_loads_and_its_rows_open_their_clips(server):
    """"Load example run": the bundled predictions of the shipped checkpoint on the example clips, scored per type,
    with the benchmark folder set so that a row opens its clip (from assets/)."""
    from mcd.serving.examples import EXAMPLE_RUN_FILE

    rows = [json.loads(line) for line in EXAMPLE_RUN_FILE.read_text().splitlines()]
    *outputs, folder = server.app.load_example_run()
    summary, table, all_rows = outputs[0], outputs[9], outputs[11]
    assert len(table) == len(all_rows) == len(rows) == sum(len(e.questions) for e in app.load_examples())
    right = sum(r["correct"] for r in rows)
    assert f"overall accuracy {right / len(rows):.2%}" in summary
    assert Path(folder) == app.ASSETS
    head, video, *figures = server.app.open_row(all_rows, folder, select(0))
    assert Path(video).read_bytes() == (app.ASSETS / f"{all_rows[0]['video_id']}.mp4").read_bytes()
    assert all(f is not None for f in figures)


def test_table_marks_a_foreign_clips_answers_and_highlights_unexpected_ones(server, examples):
    example = examples[0]
    answers = server.app.pipe.answer(example.video, example.questions)
    expected = {q: "zero" for q in example.questions[:1]}        # one expected answer the model does not give
    assert answers.results[0].answer != "zero"
    plain = app.results_table(answers.results, expected)
    marked = app.results_table(answers.results, expected, unreliable=True)
    assert list(plain["answer"]) == [r.answer for r in answers.results]
    assert list(marked["answer"]) == [r.answer + app.UNRELIABLE_MARK for r in answers.results]
    styles = app.styled_results(marked)._compute().ctx          # (row, column) -> CSS of the cells that have any
    highlighted = {cell for cell, css in styles.items() if ("background-color", "#fde2e1") in css}
    columns = list(marked.columns)
    assert highlighted == {(0, columns.index("answer")), (0, columns.index("expected"))}


def test_domain_warning_says_what_was_flagged():
    assert app.domain_warning({"clip": {"out_of_domain": False}}) == ""
    flagged = {"clip": {"out_of_domain": True, "domain": {
        "picture": {"flagged": True, "reason": "the picture is unlike the training clips"},
        "sound": {"flagged": False, "reason": None}}}}
    text = app.domain_warning(flagged)
    assert "the picture is unlike the training clips" in text and "not reliable" in text
    assert "unlike the clips the model was trained on" in app.domain_warning({"clip": {"out_of_domain": True}})
