"""The pipeline behind the demo and `mcd predict`: caching, bad input, agreement numbers, the predict CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mcd import media
from mcd.cli import main
from mcd.serving.pipeline import MAX_QUESTIONS, Pipeline, QuestionsError, js_divergence, split_questions
from tests.media_factory import ClipSpec, make_clip

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "checkpoints" / "mcd-synth"
EXAMPLES = json.loads((ROOT / "assets" / "examples.json").read_text())
EXAMPLE = EXAMPLES[0]
CLIP = ROOT / EXAMPLE["video"]


@pytest.fixture(scope="module")
def pipe():
    return Pipeline(CHECKPOINT)


def test_split_questions_limits():
    assert split_questions("  a?\n\n b? \n") == ["a?", "b?"]
    with pytest.raises(QuestionsError, match="at least one"):
        split_questions(" \n \n")
    with pytest.raises(QuestionsError, match="21 questions"):
        split_questions("\n".join(["Is there a voiceover?"] * (MAX_QUESTIONS + 1)))


def test_js_divergence_bounds():
    p = np.array([1.0, 0, 0])
    assert js_divergence(p, p) == pytest.approx(0, abs=1e-9)
    assert js_divergence(p, np.array([0, 1.0, 0])) == pytest.approx(1.0, abs=1e-6)


def test_answer_results_are_consistent(pipe):
    answers = pipe.answer(CLIP, EXAMPLE["questions"])
    assert [r.question for r in answers.results] == EXAMPLE["questions"]
    T = pipe.T
    for r in answers.results:
        assert r.type != "unknown" and 0 < r.confidence <= 1
        assert r.top5[0] == (r.answer, pytest.approx(r.confidence))
        assert r.agree == (r.answer == r.teacher_answer)
        assert np.isclose(r.student_probs.sum(), 1, atol=1e-4) and np.isclose(r.teacher_probs.sum(), 1, atol=1e-4)
        assert r.clues["visual_low"].shape == (T, 49) and r.clues["association"].shape == (2 * T, 2 * T)
        assert len(r.clues["objects"]) == len(r.objects) == len(r.keywords) + 2
        assert -1 <= r.cos_q_v <= 1 and -1 <= r.cos_q_a <= 1
    summary = answers.clip_summary(pipe.ood_threshold)
    assert summary["has_audio"] and not summary["out_of_domain"] and summary["duration_s"] == pytest.approx(10, abs=0.2)


def test_same_clip_is_decoded_once(pipe, monkeypatch, tmp_path):
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(CLIP.read_bytes())
    pipe.answer(copy, ["Is there a voiceover?"])
    calls = []
    real = media.decode
    monkeypatch.setattr(media, "decode", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = pipe.answer(copy, ["How many instruments are sounding in the video?", "Is there a voiceover?"])
    assert calls == [] and len(again.results) == 2
    # a batch of questions gives the same answer as asking alone
    alone = pipe.answer(copy, ["Is there a voiceover?"]).results[0]
    assert again.results[1].answer == alone.answer
    assert again.results[1].confidence == pytest.approx(alone.confidence, abs=1e-5)


def test_off_topic_question_is_refused_with_note(pipe):
    """Issue 28: text that fits no supported question is not answered (it used to be, with type "unknown")."""
    r = pipe.answer(CLIP, ["What colour is the violin on the left?"]).results[0]
    assert r.status == "out_of_scope" and r.refused and r.answer is None and r.type == "unknown" and r.note


def test_bad_media_are_typed_errors(pipe, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    with pytest.raises(media.MediaError) as info:
        pipe.answer(text, ["Is there a voiceover?"])
    assert info.value.user_message
    silent = make_clip(tmp_path / "silent.mp4", ClipSpec(duration=3.0, channels=0, width=96, height=96))
    answers = pipe.answer(silent, ["Is there a voiceover?"])
    assert not answers.clip_summary(pipe.ood_threshold)["has_audio"]


def test_predict_cli_json_and_errors(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["predict", "--checkpoint", str(CHECKPOINT), "--video", str(CLIP), "--question",
                 EXAMPLE["questions"][0], "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["answers"][0]["answer"] in {a for a, _ in payload["answers"][0]["top5"]}
    assert len(payload["answers"][0]["clues"]["audio_seconds"]) == 3
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(CHECKPOINT), "--video", str(CLIP)]) == 2
    assert "at least one question" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(tmp_path), "--video", str(CLIP), "--question", "x?"]) == 2
    assert str(tmp_path) in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(CHECKPOINT), "--video", str(tmp_path / "none.mp4"),
                 "--question", "Is there a voiceover?"]) == 2
    assert "none.mp4" in capsys.readouterr().err


def test_phrase_vocabulary_covers_every_text_object():
    """A request never encodes a text object: every phrase a question can produce is encoded at load."""
    from mcd.data.text_bank import object_phrases
    from mcd.serving.pipeline import phrase_vocabulary
    from mcd.task.questions import parse
    from tests.test_questions import _all_fillings

    vocab = set(phrase_vocabulary())
    questions = [q for _, _, q in _all_fillings()] + [
        "What colour is the violin on the left?", "is the acoustic guitar louder than the erhu",
        "Which instrument sounds first, the tuba or the xylophone?"]
    for q in questions:
        p = parse(q)
        phrases, _ = object_phrases(p.keywords, p.modality, p.kind)
        assert set(phrases) <= vocab, q


def test_requests_encode_only_their_questions(pipe, monkeypatch):
    """The phrase vocabulary is encoded when the pipeline loads; a new question encodes just its own string, on
    the text thread, and `on_stage` reports the clip stage before the question stage."""
    pipe._text_worker.submit(lambda: None).result()          # the load-time vocabulary job has finished
    text = pipe.encoders.text
    encoded: list[list[str]] = []
    real = text._token_states
    monkeypatch.setattr(text, "_token_states", lambda texts: encoded.append(list(texts)) or real(texts))
    stages: list[str] = []
    question = "Is the trumpet on the left louder than the violin on the right?"
    asked = "Is the trumpet on the left louder than the violin on the right"   # as understood: the template filled
    text.question_cache.data.pop(asked, None)
    r = pipe.answer(CLIP, [question], on_stage=stages.append).results[0]
    assert encoded == [[asked]] and stages == ["clip", "questions"] and r.understood_as == asked
    assert r.objects[:2] == ["trumpet", "left"] and len(r.clues["objects"]) == len(r.objects)


def test_each_question_gets_its_types_expert_weight(pipe):
    """The demo asks the model with each question's type, so the per-type expert weights `mcd calibrate` chose
    apply there as in evaluation: a question whose type has its own weight is answered differently from the single
    `expert_weight`, and an unmatched question (type -1) gets exactly `expert_weight`."""
    import torch

    from mcd.task.questions import type_index
    model = pipe.model
    weights = model.config.ext.grounding.expert_type_weights
    assert weights, "the shipped checkpoint is calibrated (mcd reproduce runs mcd calibrate)"
    seen = []
    hook = model.register_forward_hook(lambda m, args, kwargs, out: seen.append((kwargs, out)), with_kwargs=True)
    try:
        results = pipe.answer(CLIP, EXAMPLE["questions"] + ["What colour is the violin on the left?"]).results
    finally:
        hook.remove()
    assert len(seen) == 1          # one forward answers and gives the evidence (its gradients)
    kwargs, out = seen[0]
    logits = out.logits.detach()
    kinds = kwargs["question_type"]
    # the off-topic question is refused, so it is not in the forward at all (issue 28)
    assert results[-1].refused and len(kinds) == len(results) - 1
    results = results[:-1]
    assert kinds.tolist() == [type_index(r.type) for r in results] and -1 not in kinds.tolist()
    with torch.no_grad():
        uniform = model(**{**kwargs, "question_type": None}).logits
    for i, r in enumerate(results):
        np.testing.assert_allclose(r.student_probs, logits[i].softmax(-1).numpy(), atol=1e-6)
        same = weights.get(r.type, model.config.ext.grounding.expert_weight) == model.config.ext.grounding.expert_weight
        assert torch.allclose(logits[i], uniform[i], atol=1e-6) == same, r.type


def test_shown_clues_are_the_models_own_maps(pipe):
    """The demo's spatial clue is the referent query's map of the keyword the grounding head reads as on screen
    (else the type words' map); its audio clue is the sounding keyword's referent-query weights inside the seconds
    the head reads it as sounding. Every map comes from this forward (no scene graph), and each result carries the
    checkpoint's benchmark record for the captions."""
    answers = pipe.answer(CLIP, EXAMPLE["questions"])
    sources = set()
    for r in answers.results:
        spatial, temporal = r.shown["spatial"], r.shown["temporal"]
        sources.add(spatial.source)
        n_kw = len(r.keywords)
        if spatial.source == "referent query":
            j = r.keywords.index(spatial.keyword)
            assert r.referents[spatial.keyword]["position"] in ("left", "middle", "right")
            np.testing.assert_array_equal(spatial.weights, r.object_clues["referent_visual"][j])
        else:
            assert spatial.source == "type words"
            assert all(ref["position"] not in ("left", "middle", "right") for ref in r.referents.values())
            np.testing.assert_allclose(spatial.weights, r.object_clues["visual_low"][n_kw:].mean(axis=0))
        assert spatial.weights.shape == (pipe.T, 49) and np.isclose(spatial.weights.sum(), 1, atol=1e-4)
        if temporal.source == "referent query":
            j = r.keywords.index(temporal.keyword)
            np.testing.assert_allclose(temporal.attention, r.object_clues["referent_audio"][j])
            inside = r.referents[temporal.keyword]["segments"] > 0.5
            if (temporal.attention * inside).sum() > 0:
                assert np.all(temporal.weights[~inside] == 0)
        assert r.clue_quality == pipe.config.get("clue_quality")
        assert "visual_low" in r.clues and "audio_high" in r.clues     # the maps shown before stay for the bench
    assert sources == {"referent query", "type words"}


def test_evidence_points_at_what_the_answer_needs(pipe):
    """Each answer carries what it rests on; deleting its three strongest cells (all frames) lowers the answer's
    log-odds more than deleting its three weakest for at least 80% of the example clips' questions (the evidence is
    a first-order attribution, right for 87-89% of questions on the clue benchmark, so one clip's six questions
    can miss twice) and clearly for the typical one, and the answer contract names the strongest seconds."""
    import torch

    from mcd.serving import clue_quality as cq
    from mcd.serving.evidence import answer_log_odds
    from mcd.task.questions import type_index
    from mcd.task.vocab import ANSWERS

    drops = []
    for example in EXAMPLES:
        answers = pipe.answer(ROOT / example["video"], example["questions"])
        understood = pipe.understand(example["questions"])
        text = pipe._encode_text(understood)
        feats = answers.clip
        for i, r in enumerate(answers.results):
            assert r.evidence["visual"].shape == (pipe.T, 49) and r.evidence["audio"].shape == (pipe.T,)
            per_cell = r.evidence["visual"].sum(0)
            variants = [cq.replace_with_mean(feats.visual, cq.top_k(per_cell, 3), axis=1),
                        cq.replace_with_mean(feats.visual, cq.top_k(-per_cell, 3), axis=1)]
            with torch.no_grad():
                out = pipe.model(visual=torch.stack(variants),
                                 audio=feats.audio.unsqueeze(0).expand(2, *feats.audio.shape),
                                 question=text.tokens.float()[[i, i]], question_mask=text.mask[[i, i]],
                                 objects=text.objects[[i, i]], objects_mask=text.objects_mask[[i, i]],
                                 objects_kind=text.objects_kind[[i, i]],
                                 question_type=torch.tensor([type_index(understood[i].type)] * 2))
            lo = answer_log_odds(out.logits.float(), torch.tensor([ANSWERS.index(r.answer)] * 2))
            drops.append(float(lo[1] - lo[0]))      # log-odds with the weakest deleted minus with the strongest
            summary = r.summary(feats.clip.timestamps)["evidence"]
            strongest = int(np.argmax(r.evidence["audio"]))
            if r.evidence["audio"][strongest] > 0:
                assert summary["audio_seconds"][0] == pytest.approx(feats.clip.timestamps[strongest], abs=0.01)
            assert summary["cell"] == int(np.argmax(per_cell))
    n = sum(len(e["questions"]) for e in EXAMPLES)
    assert n == len(drops) and sum(d > 0 for d in drops) >= 0.8 * n and np.median(drops) > 0.5, drops
