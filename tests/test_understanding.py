"""Questions in people's own words (issue 28): exact template match, the semantic matcher with its synonym lexicon and
calibrated threshold, refusals (off-topic, unknown instruments, bad input), and the answer contract's new fields."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from mcd.task.questions import TEMPLATES
from mcd.task.understanding import (
    ANSWERED, BANK_FILE, INVALID, MAX_QUESTION_CHARS, OUT_OF_SCOPE, UNKNOWN_INSTRUMENT, PhrasingBank,
    QuestionUnderstander, counts_fit, find_mentions, fronted_topic_form, matching_words, question_form, sense_fits,
    tokens,
)
from mcd.task.vocab import FORMAT1_SYNTH_INSTRUMENTS, INSTRUMENTS

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "checkpoints" / "mcd-synth"
EXAMPLE = json.loads((ROOT / "assets" / "examples.json").read_text())[0]
BENCH_DATA = ROOT / "bench" / "data"


@pytest.fixture(scope="module")
def embed():
    from mcd.encoders.text import MiniLMTextEncoder

    enc = MiniLMTextEncoder()
    return lambda texts: enc.sentence_embeddings(list(texts)).numpy()


@pytest.fixture(scope="module")
def und(embed):
    """The matcher as the shipped checkpoint gets it: its ten world-v1 instruments."""
    return QuestionUnderstander(embed, FORMAT1_SYNTH_INSTRUMENTS, cache_key="test-minilm")


def mention_values(text: str) -> list[tuple[str, str]]:
    return [m.options[0] for m in find_mentions(tokens(text))]


# --- exact template wording -------------------------------------------------------------------------------------

def test_exact_template_match_needs_no_model():
    u = QuestionUnderstander(None, FORMAT1_SYNTH_INSTRUMENTS).understand("is there a VIOLIN sound ?")
    assert u.status == ANSWERED and u.similarity == 1.0
    assert u.understood_as == "Is there a violin sound" and u.type == "Audio/Counting" and u.keywords == ("violin",)
    # without a model, anything else is refused with a note (never guessed)
    other = QuestionUnderstander(None).understand("Can you hear a violin?")
    assert other.status == OUT_OF_SCOPE and other.understood_as is None and "exact wording" in other.note


def test_every_template_filling_is_understood_exactly(und):
    from mcd.task.questions import SLOT_DOMAINS, fill_template

    questions = []
    for t in TEMPLATES:
        values = []
        for slot in t.slots:
            domain = FORMAT1_SYNTH_INSTRUMENTS if slot == "<Object>" else SLOT_DOMAINS[slot]
            values.append(next(v for v in domain if v not in values))
        questions.append((fill_template(t.text, values), values, t))
    for (q, values, t), u in zip(questions, und.understand_all([q + "?" for q, _, _ in questions])):
        assert u.status == ANSWERED and u.understood_as == q and u.template is t and list(u.keywords) == values


# --- the synonym lexicon ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("the fiddle", [("Object", "violin")]),
    ("a guitar and an acoustic guitar", [("Object", "acoustic_guitar"), ("Object", "acoustic_guitar")]),
    ("keys, keyboard, pianos", [("Object", "piano")] * 3),
    ("the sax", [("Object", "saxophone")]),
    ("drums or the drum kit", [("Object", "drum"), ("Object", "drum")]),
    ("the bass guitar", [("Object", "electric_bass")]),
    ("an electric guitar", [("Object", "electric guitar")]),     # not the acoustic guitar
    ("the double bass", [("Object", "double bass")]),            # not the electric bass
    ("conga drums", [("Object", "congas")]),
    ("leftmost, far left, the right-most", [("LRer", "leftest"), ("LRer", "leftest"), ("LRer", "rightest")]),
    ("to the right of the violin", [("LR", "right"), ("Object", "violin")]),
    ("in the centre", [("LR", "middle")]),
    ("the quietest", [("LL", "lowest")]),
    ("which comes in second", [("TH", "second")]),
    ("right after the piano", [("BA", "after"), ("Object", "piano")]),
    ("does it last longer", []),                                  # 'last' as a verb is no order
])
def test_synonyms(text, expected):
    assert mention_values(text) == expected


def test_where_in_the_media_phrases_are_not_matched_on():
    assert matching_words("Any commentary voiced over the footage?") == ["any", "commentary", "voiced"]
    assert matching_words("Is there a flute in this film?") == ["is", "there", "a", "flute"]
    assert matching_words("Is the left one in the video clip louder?") == ["is", "the", "left", "one", "louder"]


def test_question_form():
    assert question_form(tokens("Is the violin louder?")) == "yes_no"
    assert question_form(tokens("Tell me how many drums there are")) == "count"
    assert question_form(tokens("Where's the loudest one?")) == "where"
    assert question_form(tokens("Which instrument starts first?")) == "wh"
    assert question_form(tokens("Is this played inside or outside?")) is None
    # a place asked for without "where"
    assert question_form(tokens("In which spot is the loudest instrument?")) == "where"
    assert question_form(tokens("Which side is the first one on?")) == "where"
    assert question_form(tokens("Which instrument is on the left side?")) == "wh"
    # a topic named first and asked about in a later clause; a trailing "do you think?" is no yes/no question
    assert fronted_topic_form("the last one to sound: where is it?") == "where"
    assert fronted_topic_form("the leftmost one - which instrument is that?") is None      # no clause break
    assert fronted_topic_form("the leftmost one, which instrument is that?") == "wh"
    assert fronted_topic_form("Is it inside or outside, do you think?") is None


def test_a_possessive_after_a_plural_keeps_the_slot_word():
    assert tokens("the conga drums's rhythm") == ["the", "conga", "drums", "rhythm"]
    assert mention_values("Is the right conga drums's playing busier than the middle keyboard's?") == [
        ("LR", "right"), ("Object", "congas"), ("LR", "middle"), ("Object", "piano")]


def test_counts_follow_their_kind_words_and_negations():
    def fits(text: str) -> set[int]:
        return {t.id for t in TEMPLATES if t.id in (2, 8, 9, 17, 18, 19, 20) and counts_fit(tokens(text), t)}
    assert fits("how many kinds of instruments are playing") == {9, 18}
    assert fits("how many instruments are playing") == {2, 8, 17, 19, 20}
    assert fits("how many different instruments are playing") == {2, 8, 9, 17, 18, 19, 20}   # either count
    assert fits("how many instruments don't play from start to finish") == {20}
    assert fits("how many instruments stay silent") == {20}
    assert counts_fit(tokens("how many kinds of instruments"), TEMPLATES[13])     # not a count: no constraint


def test_a_question_naming_one_sense_does_not_mean_a_template_of_the_other():
    def fits(text: str) -> set[int]:
        return {t.id for t in TEMPLATES if sense_fits(tokens(text), t)}
    heard = fits("how many banjos can be heard")
    assert 17 in heard and 8 not in heard and 9 not in heard and 6 not in heard and 0 in heard
    seen = fits("is a drum among the instruments you can see")
    assert 6 in seen and 0 not in seen and 19 not in seen and 21 in seen        # Audio-Visual stays possible
    assert fits("are the violin and the piano both in the video") == set(range(len(TEMPLATES)))
    assert fits("can you see and hear a violin") == set(range(len(TEMPLATES)))


def test_semantic_choice_is_the_best_score_over_every_template(und):
    """The matcher stops trying templates once no similarity left can beat the best score; the choice must be the
    one trying every template gives."""
    from mcd.task import understanding as U

    for text in ("how many kinds of instruments can you hear", "Compared with the piano, is the violin louder?",
                 "is a drum among the instruments you can see", "which one comes in after the flute"):
        words = U.matching_words(text)
        mentions = U.find_mentions(words)
        vec = U._normalise_rows(und.embed([U.delexicalise(words, mentions)]))[0]
        sims = und.matrix[:len(und.bank.phrasings)] @ vec
        ids = np.array([p.template.id for p in und.bank.phrasings])
        best = None
        for t in TEMPLATES:
            rows = np.flatnonzero(ids == t.id)
            phrasing = und.bank.phrasings[int(rows[np.argmax(sims[rows])])]
            sim = float(np.sort(sims[rows])[-und.top_k:].mean())
            values, unused = U.fill_slots(t, U.slot_order(t, phrasing.order, words, mentions), words, mentions)
            if values is None:
                continue
            c = U._Candidate(t, phrasing, sim, values, unused, not U.form_fits(U.question_form(words), t),
                             not (U.counts_fit(words, t) and U.sense_fits(words, t)))
            if best is None or (c.score, c.similarity) > (best.score, best.similarity):
                best = c
        u = und.understand(text)
        assert u.template is best.template and u.keywords == best.values, text


# --- the semantic matcher ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, understood_as", [
    ("Can you hear a fiddle?", "Is there a violin sound"),
    ("How many instruments can you hear?", "How many musical instruments were heard throughout the video"),
    ("Does the violin sound louder than the piano?", "Is the violin louder than the piano"),
    ("Is the sax on the left quieter than the drums on the right?",
     "Is the drum on the right louder than the saxophone on the left"),
    ("Does the keyboard play fewer notes than the flute?", "Is the flute more rhythmic than the piano"),
    ("What's on the far left?", "What kind of instrument is the leftest instrument"),
    ("which instrument starts first", "What is the first instrument that comes in"),
    ("What comes in right after the keys?", "Which instrument makes sounds after the piano"),
    ("how many guitars are playing", "How many sounding acoustic_guitar in the video"),
    ("Count the banjos you can see.", "How many banjo are in the entire video"),
    ("Is someone talking over the music?", "Is there a voiceover"),
    ("Is this performed indoors or outdoors?", "Where is the performance"),
    ("Where's the quietest instrument?", "Where is the lowest instrument"),
    ("Does the left instrument play first?", "Is the first sound coming from the left instrument"),
    # a side with no instrument named is the instrument at that side: not "What kind of musical instrument is it"
    ("Which instrument is on the left?", "What kind of instrument is the leftest instrument"),
    ("What is the right instrument?", "What kind of instrument is the rightest instrument"),
    ("What is the instrument on the left of the piano?", "What is the instrument on the left of piano"),
    # the instrument after "compared with" is the one measured against, wherever the comparison word stands
    ("Compared with the piano, is the violin louder?", "Is the violin louder than the piano"),
    ("Is the violin louder compared to the piano?", "Is the violin louder than the piano"),
    ("Compared to the flute, is the sax quieter?", "Is the flute louder than the saxophone"),
    ("how many kinds of instruments can you hear", "How many types of musical instruments sound in the video"),
    ("the last instrument to sound: where is it?", "Where is the last sounding instrument"),
])
def test_paraphrases_map_to_template_and_slots(und, text, understood_as):
    u = und.understand(text)
    assert u.status == ANSWERED, (text, u.note)
    assert u.understood_as == understood_as
    assert u.similarity is not None and und.threshold <= u.similarity <= 1.0
    assert u.type == u.template.type and len(u.keywords) == len(u.template.slots)


def test_a_template_whose_slots_cannot_be_filled_is_no_match(und):
    # two instruments: never the one-instrument template, and never a template with positions it does not name
    u = und.understand("Can I hear the banjo and the flute?")
    assert u.understood_as == "Are there banjo and flute sound" and u.keywords == ("banjo", "flute")


def test_a_tag_ending_names_no_side(und):
    for text, understood_as in [("How many instruments are sounding, right?", "How many instruments are sounding in the video"),
                                ("The piano is louder than the violin, isn't it?", "Is the piano louder than the violin")]:
        u = und.understand(text)
        assert u.status == ANSWERED and u.understood_as == understood_as, (text, u.note)


# --- refusals -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "is someone playing the fiddle on the right side",
    "Is the right violin always playing?",
    "Is the violin on the left louder than the piano?",
    "Is the leftmost instrument louder than the piano?",     # yes/no, and the piano has no place in the nearest
])
def test_a_side_the_matched_question_cannot_carry_is_refused_not_dropped(und, text):
    """A side picks out one player; answering a template without a side slot would answer about another one."""
    u = und.understand(text)
    assert u.status == OUT_OF_SCOPE and u.understood_as is None, (text, u.understood_as)
    assert ("cannot say" in u.note or "leaves out 'piano'" in u.note) and "try for example" in u.note
    assert u.suggestions


def test_dropped_side_needs_exactly_one_side_and_no_side_slot():
    from mcd.task.understanding import dropped_side, find_mentions, matching_words
    by_text = {t.text.strip(): t for t in TEMPLATES}
    always = by_text["Is the <Object> in the video always playing?"]
    where = by_text["Where is the <LL> instrument?"]
    which_side = by_text["What kind of instrument is the <LRer> instrument?"]
    mentions = lambda text: find_mentions(matching_words(text))   # noqa: E731
    assert dropped_side(always, mentions("is the violin on the right always playing")) == "right"
    assert dropped_side(where, mentions("where is the loudest one, left or right?")) is None   # options, not a side
    assert dropped_side(which_side, mentions("what is on the far right")) is None             # the template has it
    assert dropped_side(always, mentions("is the violin always playing, right?")) is None     # a tag



@pytest.mark.parametrize("text", [
    "hello", "Thanks!", "What is the capital of France?", "What colour is the violin?", "How old is the pianist?",
    "What brand is the guitar?", "What is the drummer wearing?", "Tell me a joke", "asdf qwer",
    "¿Cuántos instrumentos hay en el video?", "这个视频里有几种乐器？", "Сколько инструментов играет?",
])
def test_off_topic_is_refused_with_suggestions(und, text):
    u = und.understand(text)
    assert u.status == OUT_OF_SCOPE and u.understood_as is None and u.type == "unknown"
    assert "try for example" in u.note


def test_unknown_instruments_are_named_and_not_answered(und):
    for text, name in [("Is there a bassoon sound?", "bassoon"),            # a vocabulary instrument this model lacks
                       ("Is the harp louder than the piano?", "harp"),      # outside the vocabulary
                       ("Can you see a sitar?", "sitar"),
                       ("Does the bass guitar play the whole time?", "electric bass")]:
        u = und.understand(text)
        assert u.status == UNKNOWN_INSTRUMENT, text
        assert u.understood_as is not None and name in u.note
        assert "10 instruments" in u.note and "violin" in u.note and "acoustic guitar" in u.note
    # a checkpoint that knows all 22 answers the bassoon and the bass guitar
    full = QuestionUnderstander(und.embed, INSTRUMENTS, cache_key="test-minilm")
    assert full.understand("Is there a bassoon sound?").status == ANSWERED
    assert full.understand("Does the bass guitar play the whole time?").understood_as == \
        "Is the electric_bass in the video always playing"


def test_bad_input_gets_a_per_row_status_and_the_rest_is_answered(und):
    texts = ["", "   \t ", "x" * 2000, "y " * (MAX_QUESTION_CHARS // 2 + 1), "?!?", 42, "Is there a voiceover?",
             "Can you hear a trumpet?"]
    out = und.understand_all(texts)
    assert [u.status for u in out[:6]] == [INVALID] * 6
    assert "empty" in out[0].note and "empty" in out[1].note and "too long (2,000 characters" in out[2].note
    assert "no words" in out[4].note and "must be text" in out[5].note
    assert [u.status for u in out[6:]] == [ANSWERED, ANSWERED]


def test_questions_in_other_languages_are_refused_with_a_reason(und):
    out = und.understand_all(["这个视频里有几种乐器？", "Wie viele Instrumente spielen?",
                              "¿Cuántos instrumentos suenan en el vídeo?", "How many instruments are sounding?"])
    assert [u.status for u in out] == [OUT_OF_SCOPE] * 3 + [ANSWERED]
    assert "only questions in English" in out[0].note      # another script: said at once, no embedding needed
    assert all(u.understood_as is None and u.template is None for u in out[:3])


# --- the bank, its calibration and the separation of the data --------------------------------------------------------

def test_bank_is_calibrated_on_its_own_data():
    bank = PhrasingBank.load()
    data = json.loads(BANK_FILE.read_text())
    assert bank.model == "minilm-all-MiniLM-L6-v2" and 0.3 < bank.threshold < 0.95
    assert data["calibration"]["data"] == "bench/data/calibration.jsonl"
    for entry in data["templates"]:
        assert len(entry["phrasings"]) >= 5, entry["template"]
    # the test sets were written separately: no test question is a bank phrasing or a calibration question
    def norm(s: str) -> str:
        return " ".join(tokens(s))
    bank_texts = ({norm(t) for entry in data["templates"] for t in entry["phrasings"]}
                  | {norm(t) for t in data["reject"]})
    calib = {norm(json.loads(line)["text"]) for line in (BENCH_DATA / "calibration.jsonl").read_text().splitlines()[1:]}
    tests = [json.loads(line) for line in (BENCH_DATA / "paraphrases.jsonl").read_text().splitlines()[1:]]
    off = [json.loads(line) for line in (BENCH_DATA / "off_topic.jsonl").read_text().splitlines()[1:]]
    assert len(off) >= 100
    for t in TEMPLATES:
        assert sum(r["template"] == t.id for r in tests) >= 3
    assert not {norm(r["text"]) for r in tests} & bank_texts
    assert not {norm(r["text"]) for r in off} & (calib | bank_texts)


def test_threshold_maximises_balanced_accuracy():
    spec = importlib.util.spec_from_file_location("bench_paraphrases", ROOT / "bench" / "paraphrases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # None: refused whatever the threshold (no template fits, an unknown instrument, ...)
    t, stats = module.choose_threshold([0.9, 0.8, 0.7, None], [0.2, 0.5, 0.85, None])
    assert t == pytest.approx(0.6) and stats["in_scope_answered"] == 0.75 and stats["off_topic_refused"] == 0.75
    t, stats = module.choose_threshold([0.9, 0.8], [0.3, 0.4])
    assert 0.4 < t < 0.8 and stats["balanced_accuracy"] == 1.0


def test_bank_embeddings_are_computed_once(embed):
    calls = []

    def counting(texts):
        calls.append(len(texts))
        return embed(texts)

    a = QuestionUnderstander(counting, cache_key="counting")
    b = QuestionUnderstander(counting, cache_key="counting")
    assert len(calls) == 1 and calls[0] == len(a.bank.embedded) and a.matrix is b.matrix
    np.testing.assert_allclose(np.linalg.norm(a.matrix, axis=1), 1.0, atol=1e-5)
    a.understand_all(["Can you hear a flute?", "Is there a voiceover?", "Does the drum play first?"])
    assert calls[1:] == [2]        # one call per request, for the questions that are not template wording


# --- the answer contract ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pipe():
    from mcd.serving.pipeline import Pipeline

    return Pipeline(CHECKPOINT)


def test_contract_fields_in_to_json(pipe):
    questions = ["Is there a voiceover?", "How many instruments can you hear?", "hello", "Is there a bassoon sound?",
                 "", "z" * 2000]
    answers = pipe.answer(ROOT / EXAMPLE["video"], questions)
    rows = answers.to_json()["answers"]
    assert [r["question"] for r in rows] == [q.strip() for q in questions]
    # the bassoon is refused by a checkpoint whose training questions never named it (v11), answered by one that knows it
    bassoon = ANSWERED if "bassoon" in pipe.instruments else UNKNOWN_INSTRUMENT
    assert [r["status"] for r in rows] == [ANSWERED, ANSWERED, OUT_OF_SCOPE, bassoon, INVALID, INVALID]
    for r in rows:
        assert {"understood_as", "status", "type", "keywords", "similarity", "note", "answer"} <= set(r)
    assert rows[0]["understood_as"] == "Is there a voiceover" and rows[0]["similarity"] == 1.0
    assert rows[1]["understood_as"] == "How many musical instruments were heard throughout the video"
    assert rows[1]["answer"] is not None and rows[1]["clues"]["audio_seconds"]
    for r in [row for row in rows[2:] if row["status"] != ANSWERED]:
        assert r["answer"] is None and r["confidence"] is None and r["top5"] == [] and r["clues"] is None
        assert r["note"]
    assert rows[3]["understood_as"] == "Is there a bassoon sound"
    assert (rows[3]["answer"] is not None) if bassoon == ANSWERED else ("bassoon" in rows[3]["note"])
    # the answered rows are exactly what they are when asked alone
    alone = pipe.answer(ROOT / EXAMPLE["video"], ["How many musical instruments were heard throughout the video"])
    assert alone.results[0].answer == answers.results[1].answer
    assert alone.results[0].confidence == pytest.approx(answers.results[1].confidence, abs=1e-5)


def test_a_request_whose_questions_are_all_refused_is_still_answered(pipe, monkeypatch):
    calls = []
    monkeypatch.setattr(pipe.model, "forward", lambda *a, **k: calls.append(1))
    answers = pipe.answer(ROOT / EXAMPLE["video"], ["hello", "   ", "What colour is the sky?"])
    assert calls == [] and [r.status for r in answers.results] == [OUT_OF_SCOPE, INVALID, OUT_OF_SCOPE]
    payload = answers.to_json()
    assert payload["clip"]["duration_s"] > 0 and all(r["answer"] is None for r in payload["answers"])


def test_predict_cli_reports_status(tmp_path):
    from mcd.cli import main

    out = tmp_path / "p.json"
    assert main(["predict", "--checkpoint", str(CHECKPOINT), "--video", str(ROOT / EXAMPLE["video"]),
                 "--question", "Can you hear a trumpet?", "--question", "Who won the match?", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["answers"]
    assert rows[0]["status"] == ANSWERED and rows[0]["understood_as"] == "Is there a trumpet sound"
    assert rows[1]["status"] == OUT_OF_SCOPE and rows[1]["answer"] is None


def test_results_table_marks_refused_rows(pipe):
    import app

    answers = pipe.answer(ROOT / EXAMPLE["video"], ["Can you hear a trumpet?", "hello", "Is there a harp sound?"])
    table = app.results_table(answers.results)
    assert list(table.columns) == app.RESULT_COLUMNS and "understood as" in app.RESULT_COLUMNS
    assert table["understood as"].tolist() == ["Is there a trumpet sound", "", "Is there a harp sound"]
    assert table["answer"].tolist()[1:] == ["— (out of scope)", "— (unknown instrument)"]
    assert table["answer"][0] in ("yes", "no") and table["teacher"].tolist()[1:] == ["", ""]
    header = app.question_header(1, answers.results[1])
    assert "Not answered" in header and "try for example" in header


def test_demo_handler_with_a_refused_first_row(pipe):
    """The demo's /answer handler: a refused first row gets no figures and the request still succeeds."""
    import app

    demo = app.DemoApp(pipe)
    out = demo.answer(str(ROOT / EXAMPLE["video"]), "hello\nIs there a voiceover?", progress=lambda *a, **k: None)
    payload, styled, header, *figures = out[:3 + len(app.viz.FIGURE_NAMES)]
    table = styled.data                                  # the results DataFrame under its Styler
    assert [a["status"] for a in payload["answers"]] == [OUT_OF_SCOPE, ANSWERED]
    assert table["answer"].tolist()[0] == "— (out of scope)" and header.startswith("**Question 1:** hello")
    assert figures == [None] * len(app.viz.FIGURE_NAMES)
    session = out[-1]
    assert session.results[1].answer in ("yes", "no")
