"""The JSON-only API event `/predict`: the answer contract alone, as `mcd predict` prints it, small on the wire.

Served for real: the demo runs in this process on a free port (tests/test_app.py's fixtures) and is called only
through `gradio_client` and plain HTTP, as a user's script would.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mcd import cli  # noqa: E402

try:  # the server, its clips and the client, as tests/test_app.py builds them
    from tests.test_app import checkpoint, client, clips, examples, server  # noqa: F401
except ImportError:  # pytest's rootdir-less import mode
    from test_app import checkpoint, client, clips, examples, server  # noqa: F401

CONTRACT_KEYS = {"video", "checkpoint", "clip", "answers"}
MAX_BYTES = 20 * 1024          # the bar for 5 questions


def predict(client, video, questions: str) -> dict:
    from gradio_client import handle_file

    return client.predict(handle_file(str(video)) if video is not None else None, questions, api_name="/predict")


def mcd_predict(capsys, checkpoint: Path, video: Path, questions: list[str]) -> dict:
    argv = ["predict", "--checkpoint", str(checkpoint), "--video", str(video)]
    for q in questions:
        argv += ["--question", q]
    capsys.readouterr()
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def five_questions(examples) -> tuple:
    if not examples:
        pytest.skip("assets/examples.json lists no example clips")
    example = examples[0]
    assert len(example.questions) >= 5
    return example.video, example.questions[:5]


def test_predict_is_a_public_endpoint_with_clip_and_questions(client):
    api = client.view_api(print_info=False, return_format="dict")
    endpoint = api["named_endpoints"]["/predict"]
    assert [p["parameter_name"] for p in endpoint["parameters"]] == ["video", "questions"]
    assert [r["component"] for r in endpoint["returns"]] == ["Json"]


def test_predict_adds_nothing_visible_to_the_page(server):
    """Its output component is hidden and placed so that the Ask and Analysis tabs stay one tab bar."""
    config = httpx.get(server.url + "config", timeout=30).json()
    types = {c["id"]: c["type"] for c in config["components"]}
    top = [types.get(child["id"]) for child in config["layout"]["children"]]
    assert top.count("tabs") == 1, top
    tabs = next(child for child in config["layout"]["children"] if types.get(child["id"]) == "tabs")
    assert len(tabs["children"]) == 2
    (predict,) = [d for d in config["dependencies"] if d["api_name"] == "predict"]
    assert not predict["targets"]                                      # no button, no trigger on the page
    (output,) = [c for c in config["components"] if c["id"] == predict["outputs"][0]]
    assert output["props"]["visible"] is False


def test_predict_returns_the_contract_of_mcd_predict(server, client, examples, capsys):
    video, questions = five_questions(examples)
    payload = predict(client, video, "\n".join(questions))
    expected = mcd_predict(capsys, server.checkpoint, video, questions)

    assert set(payload) == set(expected) == CONTRACT_KEYS
    assert payload["checkpoint"] == expected["checkpoint"]
    assert payload["clip"] == expected["clip"]
    assert [a["question"] for a in payload["answers"]] == questions
    for got, want in zip(payload["answers"], expected["answers"]):
        assert set(got) == set(want)
        assert got == want        # answers, confidences, top-5, teacher, clues: the same numbers
    assert len(json.dumps(payload)) < MAX_BYTES


def test_predict_is_under_20_kb_on_the_wire(server, examples):
    """The bytes a plain HTTP client receives for 5 questions (upload, call, read the event stream)."""
    video, questions = five_questions(examples)
    api = server.url + "gradio_api/"
    with httpx.Client(timeout=120) as http:
        with open(video, "rb") as f:
            uploaded = http.post(api + "upload", files={"files": (video.name, f, "video/mp4")}).json()[0]
        clip = {"path": uploaded, "orig_name": video.name, "meta": {"_type": "gradio.FileData"}}
        event = http.post(api + "call/predict", json={"data": [clip, "\n".join(questions)]}).json()["event_id"]
        stream = http.get(api + f"call/predict/{event}").content
    assert b"event: complete" in stream, stream[-500:]
    data = json.loads(stream.split(b"event: complete", 1)[1].split(b"data:", 1)[1].strip())
    assert set(data[0]) == CONTRACT_KEYS and len(data[0]["answers"]) == 5
    print(f"/predict, 5 questions: {len(stream)} bytes on the wire")
    assert len(stream) < MAX_BYTES


def test_predict_errors_are_readable(client, clips):
    from gradio_client.exceptions import AppError

    good = clips.distinct[0]
    cases = [
        (None, "Is there a voiceover?", "upload a video clip"),
        (clips.notes, "Is there a voiceover?", "not a video"),
        (good, " \n  \n", "at least one question"),
        (good, "\n".join(f"Is there a voiceover {i}?" for i in range(21)), "21 questions"),
    ]
    for video, questions, message in cases:
        with pytest.raises(AppError, match=message):
            predict(client, video, questions)
    out = predict(client, good, "Is there a voiceover?")       # and it keeps serving
    assert set(out) == CONTRACT_KEYS and out["answers"][0]["question"] == "Is there a voiceover?"
