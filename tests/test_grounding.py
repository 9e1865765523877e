"""Keyword grounding (model.object_grounding): what each keyword points at, the targets, the head's loss, the recipe.

The referents are checked against the synthetic world itself: for sampled scenes, every question whose answer is
"where is X" or "what is X" must be answered by the position or instrument of X's referent.
"""
from __future__ import annotations

import json

import pytest
import torch

from mcd.model.config import ConfigError, GroundingConfig, MCDConfig
from mcd.synth.grounding import GROUNDING_INSTRUMENTS, GroundingError, SceneGrounding
from mcd.model import MCD
from mcd.model.grounding import (GROUNDING_POSITIONS, GROUNDING_SCALARS, IGNORE, GroundingHead, GroundingTargets,
                                 ReferentQuery, detector_loss, grounding_loss)
from mcd.model.mcd import MCDInputError
from mcd.synth.qa import candidates, keyword_referent
from mcd.synth.scene import Player, Scene, Source, sample_scene
from tests.conftest import make_batch, small_config

# which slot value of which template names the thing whose position / instrument is the answer
WHERE = {"Where is the <FL> sounding instrument?": 0, "Where is the <LL> instrument?": 0}
WHAT = {"What is the <TH> instrument that comes in?": 0, "What kind of instrument is the <LRer> instrument? ": 0}


def player(instrument: str, position: str, intervals, loudness: float = 0.6, rate: float = 2.0) -> Player:
    return Player(instrument, loudness, rate, 60, list(intervals), position=position, bbox=(0, 0, 10, 10))


# violin left (enters 2.5 s, loud), two pianos, the right one silent; a trumpet off screen from 6 s
SCENE = Scene("hand", "indoor", [player("violin", "left", [(2.5, 10.0)], loudness=0.9, rate=4.0),
                                 player("piano", "middle", [(0.0, 10.0)], loudness=0.3, rate=1.0),
                                 player("piano", "right", [])],
              offscreen=Source("trumpet", 0.5, 2.0, 70, [(6.0, 9.0)])).validate()


def test_referents_answer_the_generators_own_questions():
    """keyword_referent is the sense the answers use: on 200 sampled scenes, every "where is the first / loudest"
    answer is its referent's position and every "what is the third / leftest" answer its referent's instrument."""
    checked = 0
    for i in range(200):
        scene = sample_scene(7, i)
        for qas in candidates(scene).values():
            for qa in qas:
                text = qa.template.text
                if text in WHERE:
                    assert keyword_referent(scene, qa.values[WHERE[text]]).position == qa.answer
                elif text in WHAT:
                    assert keyword_referent(scene, qa.values[WHAT[text]]).instrument == qa.answer
                else:
                    continue
                checked += 1
    assert checked > 300


def test_referents_of_a_hand_built_scene():
    ref = {w: keyword_referent(SCENE, w) for w in ("left", "right", "leftest", "rightest", "violin", "piano",
                                                   "trumpet", "flute", "first", "second", "third", "last",
                                                   "loudest", "lowest", "before")}
    assert ref["left"] is ref["leftest"] is ref["violin"] is SCENE.players[0]
    assert ref["right"] is ref["rightest"] is SCENE.players[2]
    assert ref["piano"] is None            # two pianos: ambiguous
    assert ref["flute"] is None            # not in the clip
    assert ref["trumpet"] is SCENE.offscreen
    assert ref["first"] is SCENE.players[1] and ref["second"] is SCENE.players[0]
    assert ref["third"] is ref["last"] is SCENE.offscreen
    assert ref["loudest"] is SCENE.players[0]
    assert ref["lowest"] is SCENE.players[1]  # the sounding piano, 0.2 below the trumpet
    assert ref["before"] is None


def test_targets_line_up_with_the_object_slots():
    g = SceneGrounding([SCENE], T=10)
    t = g.targets(["hand", "hand"], [["violin", "right", "piano"], ["flute", "before"]], K=5)
    assert t.position.shape == (2, 5) and t.scalars.shape == (2, 5, len(GROUNDING_SCALARS))
    assert t.has_referent.tolist() == [[True, True, False, False, False], [True, False, False, False, False]]
    assert t.instrument[0, 0] == GROUNDING_INSTRUMENTS.index("violin")
    assert t.position[0, :2].tolist() == [GROUNDING_POSITIONS.index("left"), GROUNDING_POSITIONS.index("right")]
    # violin: 2.5-10 s -> segment 2 half, then full
    assert t.segments[0, 0].tolist() == [0.0, 0.0, 0.5] + [1.0] * 7
    assert t.scalars[0, 0].tolist() == pytest.approx([0.9, torch.tensor(4.0).log().item(), 0.25, 0.75])
    assert t.sounds[0, :2].tolist() == [1.0, 0.0]      # the right piano never sounds
    # an instrument named but not in the clip: absent, silent, its own class
    assert t.position[1, 0] == GROUNDING_POSITIONS.index("absent")
    assert t.instrument[1, 0] == GROUNDING_INSTRUMENTS.index("flute") and t.sounds[1, 0] == 0
    assert t.segments[1, 0].sum() == 0 and bool((t.instrument[:, 2:] == IGNORE).all())


def test_targets_name_missing_clips_and_scenes(tmp_path):
    with pytest.raises(GroundingError, match="nope has no scene graph"):
        SceneGrounding([SCENE], T=10).targets(["nope"], [["left"]], K=1)
    with pytest.raises(GroundingError, match="MUSIC-AVQA has none"):
        SceneGrounding.from_benchmark(tmp_path, T=10)
    (tmp_path / "scenes.jsonl").write_text('{"video_id": "x"}\n')
    with pytest.raises(GroundingError, match="malformed"):
        SceneGrounding.from_benchmark(tmp_path, T=10)


def targets_for(cfg: MCDConfig, B: int, K: int, seed: int = 0) -> GroundingTargets:
    g = torch.Generator().manual_seed(seed)
    position = torch.randint(0, len(GROUNDING_POSITIONS), (B, K), generator=g)
    position[:, -1] = IGNORE
    instrument = torch.randint(0, cfg.ext.grounding.classes, (B, K), generator=g).masked_fill(position == IGNORE, IGNORE)
    return GroundingTargets(instrument, position, torch.rand(B, K, len(GROUNDING_SCALARS), generator=g),
                            torch.rand(B, K, cfg.T, generator=g), (torch.rand(B, K, generator=g) > 0.5).float())


def test_model_adds_the_grounding_loss_only_with_targets_and_the_flag():
    cfg = small_config(object_clues=True, object_grounding=True, grounding_classes=5)
    torch.manual_seed(0)
    model = MCD(cfg)
    inputs = make_batch(cfg)
    K = inputs["objects"].shape[1]
    plain = model(**inputs)
    assert "grounding" not in plain.losses
    out = model(**inputs, grounding=targets_for(cfg, 4, K))
    assert out.losses["grounding"] > 0
    assert torch.allclose(out.loss, plain.loss + cfg.ext.grounding.loss_weight * out.losses["grounding"])
    out.loss.backward()
    assert model.keywords.grounding.proj.weight.grad.abs().sum() > 0
    with pytest.raises(MCDInputError, match="grounding targets must be"):
        model(**inputs, grounding=targets_for(cfg, 4, K + 1))


def test_grounding_head_learns_and_ignores_keywords_without_referent():
    torch.manual_seed(0)
    head = GroundingHead(8, classes=3, T=4)
    clue_v, clue_a = torch.randn(16, 2, 8), torch.randn(16, 2, 8)
    t = GroundingTargets(torch.randint(0, 3, (16, 2)), torch.randint(0, 5, (16, 2)), torch.rand(16, 2, 4),
                         torch.rand(16, 2, 4), torch.ones(16, 2))
    t.position[:, 1] = IGNORE
    before = grounding_loss(head(clue_v, clue_a), t)
    # what a keyword without referent holds has no say
    assert torch.allclose(grounding_loss(head(clue_v, clue_a.index_fill(1, torch.tensor([1]), 9.0)), t), before)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        grounding_loss(head(clue_v, clue_a), t).backward()
        opt.step()
    assert grounding_loss(head(clue_v, clue_a), t) < 0.5 * before
    none = GroundingTargets(*(torch.full_like(x, IGNORE) if x.dtype == torch.long else x
                              for x in (t.instrument, t.position, t.scalars, t.segments, t.sounds)))
    zero = grounding_loss(head(clue_v.requires_grad_(), clue_a), none)
    assert zero.item() == 0.0 and zero.requires_grad


def test_grounded_answer_reads_the_head_and_only_the_keywords():
    """With grounded_answer the logits move when the grounding head's weights do (without it they do not), and a
    type-word object's read-out has no say, nor has a padded keyword's."""
    base = dict(object_clues=True, object_grounding=True, grounding_classes=5, dropout=0.0)
    for on in (False, True):
        torch.manual_seed(0)
        model = MCD(small_config(**base, grounded_answer=on)).eval()
        inputs = make_batch(model.config, labels=False)
        before = model(**inputs).logits
        with torch.no_grad():
            # one instrument's logit, for every object (all five at once would leave their softmax unchanged:
            # the test then passed or failed on float rounding alone, depending on the CPU's kernels)
            model.keywords.grounding.proj.bias[0] += 3.0
        assert torch.allclose(model(**inputs).logits, before) is not on
    # objects: keyword, type word, keyword (padded in odd rows). Changing the type word's read-out alone...
    torch.manual_seed(0)
    model = MCD(small_config(**base, grounded_answer=True)).eval()
    inputs = make_batch(model.config, labels=False)
    with torch.no_grad():
        before = model(**inputs).logits
        model.keywords.referent_readout[1].normal_()                 # slot 1 is the type word in every row
        assert torch.allclose(model(**inputs).logits, before, atol=1e-6)
        model.keywords.referent_readout[2].normal_()                 # slot 2: a real keyword in even rows, padded in odd
        after = model(**inputs).logits
    assert not torch.allclose(after[0::2], before[0::2]) and torch.allclose(after[1::2], before[1::2], atol=1e-6)


@pytest.mark.parametrize("detector", [False, True])
def test_referent_query_reads_each_questions_own_clip(detector):
    """Questions over several clips (clip_index) read the same as each question with its clip alone."""
    torch.manual_seed(0)
    query = ReferentQuery(8, classes=3, audio_detector=detector)
    instrument = torch.softmax(torch.randn(5, 2, 3), dim=-1)
    visual, audio = torch.randn(3, 12, 8), torch.randn(3, 4, 8)
    index = torch.tensor([2, 0, 0, 1, 2])
    r_v, r_a = query(instrument, visual, audio, index)
    for i, clip in enumerate(index.tolist()):
        one_v, one_a = query(instrument[i:i + 1], visual[clip:clip + 1], audio[clip:clip + 1])
        assert torch.allclose(r_v[i], one_v[0], atol=1e-6) and torch.allclose(r_a[i], one_a[0], atol=1e-6)
    # one shared clip broadcasts to every question
    shared_v, _ = query(instrument, visual[:1], audio[:1])
    alone_v, _ = query(instrument[3:4], visual[:1], audio[:1])
    assert torch.allclose(shared_v[3], alone_v[0], atol=1e-6)


def test_referent_query_finds_the_named_instruments_patch():
    """The query learns to look where the named instrument is: each clip hides one patch per instrument class at
    a random place, and the target is the position of the patch of the instrument the keyword names."""
    torch.manual_seed(0)
    d, C, N = 16, 3, 9
    codes = torch.randn(C, d)                                  # what each instrument's patch looks like
    places = torch.randn(N, d)                                 # a position code per patch
    query, read = ReferentQuery(d, C), torch.nn.Linear(d, N)
    opt = torch.optim.Adam([*query.parameters(), *read.parameters()], lr=0.01)

    def batch(n: int):
        where = torch.stack([torch.randperm(N)[:C] for _ in range(n)])               # [n, C] patch per class
        visual = 0.1 * torch.randn(n, N, d) + places
        visual[torch.arange(n)[:, None], where] += codes
        named = torch.randint(0, C, (n,))
        return visual, torch.nn.functional.one_hot(named, C).float()[:, None], where[torch.arange(n), named]

    for _ in range(300):
        visual, instrument, target = batch(64)
        r_v, _ = query(instrument, visual, torch.zeros(64, 2, d))
        loss = torch.nn.functional.cross_entropy(read(r_v[:, 0]), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    visual, instrument, target = batch(256)
    with torch.no_grad():
        r_v, _ = query(instrument, visual, torch.zeros(256, 2, d))
    assert (read(r_v[:, 0]).argmax(-1) == target).float().mean() > 0.9   # chance: 1/9


def test_referent_audio_detector_learns_the_seconds_its_instrument_sounds_in():
    """`referent_audio` "detector": each second gets its own sigmoid, trained by `detector_loss` on the seconds the
    named instrument sounds in, and what the query gathers is their weighted sum over T, so it shrinks when those
    seconds are taken away (attention would re-normalise onto the seconds left)."""
    torch.manual_seed(0)
    d, C, T = 16, 3, 8
    codes = torch.randn(C, d)                                  # what each instrument sounds like
    query = ReferentQuery(d, C, audio_detector=True)
    opt = torch.optim.Adam(query.parameters(), lr=0.01)

    def batch(n: int):
        sounding = torch.rand(n, C, T) < 0.5                                         # [n, C, T]
        audio = 0.1 * torch.randn(n, T, d) + torch.einsum("nct,cd->ntd", sounding.float(), codes)
        named = torch.randint(0, C, (n,))
        instrument = torch.nn.functional.one_hot(named, C).float()[:, None]
        segments = sounding[torch.arange(n), named].float()[:, None]                # [n, 1, T]
        targets = GroundingTargets(instrument=named[:, None], position=torch.zeros(n, 1, dtype=torch.long),
                                   scalars=torch.zeros(n, 1, len(GROUNDING_SCALARS)), segments=segments,
                                   sounds=segments.amax(-1))
        return audio, instrument, targets

    mask = torch.ones(64, 1, dtype=torch.bool)
    for _ in range(300):
        audio, instrument, targets = batch(64)
        _, _, _, w_a = query(instrument, torch.zeros(64, 2, d), audio, return_weights=True)
        loss = detector_loss(w_a, targets, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    audio, instrument, targets = batch(256)
    with torch.no_grad():
        _, r_a, _, w_a = query(instrument, torch.zeros(256, 2, d), audio, return_weights=True)
        assert ((w_a > 0.5) == (targets.segments > 0.5)).float().mean() > 0.9   # chance: 0.5
        assert not torch.allclose(w_a.sum(-1), torch.ones(256, 1))              # not a distribution
        # gathered = gate * Σ_t w_t audio_t / T
        g_a = (w_a @ audio) / T
        assert torch.allclose(r_a, g_a * query.gate_audio(instrument), atol=1e-5)
        # silencing the seconds it fires on (zeros) shrinks what it gathers more than silencing as many others
        fired = w_a[:, 0] > 0.5
        quiet = torch.where(fired[..., None], 0.0, audio)
        others = torch.stack([torch.randperm(T) for _ in range(256)]).argsort(1) < fired.sum(1, keepdim=True)
        random_quiet = torch.where(others[..., None], 0.0, audio)
        _, r_fired = query(instrument, torch.zeros(256, 2, d), quiet)
        _, r_random = query(instrument, torch.zeros(256, 2, d), random_quiet)
        drop_fired = (r_a - r_fired).norm(dim=-1)
        drop_random = (r_a - r_random).norm(dim=-1)
        assert (drop_fired > drop_random).float().mean() > 0.9


def test_referent_audio_detector_config_and_loss():
    """The option needs the referent query, refuses unknown values, and adds `detector_loss` to the grounding
    loss, which then reaches the query's audio projection."""
    with pytest.raises(ConfigError, match="referent_audio must be one of"):
        GroundingConfig(enabled=True, classes=5, referent_query=True, referent_audio="max").validate()
    with pytest.raises(ConfigError, match="referent_audio needs grounding.referent_query"):
        GroundingConfig(enabled=True, classes=5, referent_audio="detector").validate()
    losses = {}
    for mode in ("attention", "detector"):
        cfg = small_config(object_clues=True, object_grounding=True, grounding_classes=5, referent_query=True)
        cfg.extensions.grounding.referent_audio = mode
        torch.manual_seed(0)
        model = MCD(cfg)
        assert model.keywords.referent_query.audio_detector == (mode == "detector")
        model.eval()
        inputs = make_batch(cfg)
        t = targets_for(cfg, 4, inputs["objects"].shape[1])
        out = model(**inputs, grounding=t)
        losses[mode] = out.losses["grounding"]
        if mode == "detector":
            w_a = out.object_clues["referent_audio"]
            expected = sum(grounding_loss(r, t) for r in head_outputs(model, inputs))
            assert torch.allclose(losses[mode], expected + detector_loss(w_a, t, inputs["objects_mask"]), atol=1e-5)
            out.loss.backward()
            assert model.keywords.referent_query.q_audio.weight.grad.abs().sum() > 0
    assert not torch.allclose(losses["attention"], losses["detector"])


def test_referent_query_adds_a_second_reading():
    """Both readings are taught (the loss counts two head losses) and `referents` shows their mean."""
    cfg = small_config(object_clues=True, object_grounding=True, grounding_classes=5, referent_query=True)
    torch.manual_seed(0)
    model = MCD(cfg)
    inputs = make_batch(cfg)
    t = targets_for(cfg, 4, inputs["objects"].shape[1])
    out = model(**inputs, grounding=t)
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.keywords.referent_query.parameters())
    model.eval()
    with torch.no_grad():
        out = model(**inputs, grounding=t)
        raw = head_outputs(model, inputs)
    first = grounding_loss(raw[0], t)
    assert out.losses["grounding"] > first
    assert out.referents["position"].shape == (4, inputs["objects"].shape[1], len(GROUNDING_POSITIONS))
    readings = [GroundingHead.read(r) for r in raw]
    assert len(readings) == 2 and not torch.allclose(readings[0]["position"], readings[1]["position"])
    assert torch.allclose(out.referents["position"], (readings[0]["position"] + readings[1]["position"]) / 2)


def test_grounded_expert_joins_the_answer_and_learns_apart():
    """With grounded_expert the prediction is log_softmax(student) + expert_weight · log_softmax(expert); the expert's
    CE trains the expert alone, and every other weight starts and learns as it would without the flag."""
    base = dict(object_clues=True, object_grounding=True, grounding_classes=5, referent_query=True)
    torch.manual_seed(0)
    plain = MCD(small_config(**base))
    torch.manual_seed(0)
    model = MCD(small_config(**base, grounded_expert=True, expert_weight=1.5))
    plain_weights = dict(plain.named_parameters())
    for name, p in model.named_parameters():
        assert name.startswith("keywords.expert.") or torch.equal(p, plain_weights[name]), name
    inputs = make_batch(model.config)
    t = targets_for(model.config, 4, inputs["objects"].shape[1])
    model.eval()
    with torch.no_grad():
        student = []
        hook = model.header.register_forward_hook(lambda m, args, out: student.append(out))
        out = model(**inputs, grounding=t)
        hook.remove()
        assert torch.equal(plain.eval()(**inputs, grounding=t).logits, student[0])
    assert out.expert_logits.shape == out.logits.shape
    assert torch.allclose(out.logits, student[0].log_softmax(-1) + 1.5 * out.expert_logits.log_softmax(-1))
    assert out.losses["ce_student"] == torch.nn.functional.cross_entropy(student[0], inputs["labels"])
    assert torch.allclose(out.loss, plain(**inputs, grounding=t).loss + out.losses["ce_expert"])
    model.train()
    model.zero_grad()
    model(**inputs, grounding=t).losses["ce_expert"].backward()
    for name, p in model.named_parameters():
        moved = p.grad is not None and bool(p.grad.abs().sum() > 0)
        assert moved == name.startswith("keywords.expert."), name


def test_grounding_flags_build_nothing_without_text_objects():
    """The text_objects="none" ablation of a grounded recipe (bench/ablations.py `no-text-objects`) builds and runs:
    no keyword gathers a clue, so there is no head, no read-out and no expert, and the answer is the student's."""
    cfg = small_config(object_clues=True, object_grounding=True, grounding_classes=5, referent_query=True,
                       grounded_answer=True, grounded_expert=True, text_objects="none")
    model = MCD(cfg)
    assert model.keywords is None and model.expert is None
    out = model(**make_batch(cfg))
    assert out.expert_logits is None and "ce_expert" not in out.losses and not out.referents


def head_outputs(model: MCD, inputs: dict) -> list[tuple[torch.Tensor, ...]]:
    """The grounding head's raw output for each of its calls in one forward (one per reading)."""
    seen = []
    hook = model.keywords.grounding.register_forward_hook(lambda m, args, out: seen.append(out))
    try:
        model(**{k: v for k, v in inputs.items() if k != "labels"})
    finally:
        hook.remove()
    return seen


def test_config_needs_object_clues_and_classes():
    with pytest.raises(ConfigError, match="needs object_clues"):
        small_config(object_grounding=True, grounding_classes=3)
    with pytest.raises(ConfigError, match="grounding.classes"):
        small_config(object_clues=True, object_grounding=True)
    for flag, name in (("grounded_answer", "grounded_answer"), ("referent_query", "referent_query"),
                       ("grounded_expert", "expert")):
        with pytest.raises(ConfigError, match=f"grounding.{name} needs grounding.enabled"):
            small_config(object_clues=True, **{flag: True})


def test_config_refuses_a_negative_expert_weight():
    with pytest.raises(ConfigError, match="expert_weight must be >= 0"):
        small_config(object_clues=True, object_grounding=True, grounding_classes=3, grounded_expert=True,
                     expert_weight=-1.0)


def test_train_refuses_grounding_without_scenes_or_with_mirror(tmp_path):
    from mcd.training.recipe import Recipe, RecipeError
    from mcd.training.train import scene_grounding

    def recipe(mirror: bool) -> Recipe:
        return Recipe.from_dict({"name": "g", "data": {"root": str(tmp_path), "features": str(tmp_path)},
                                 "encoders": str(tmp_path), "out": str(tmp_path / "out"),
                                 "model": {"object_clues": True, "object_grounding": True},
                                 "train": {"mirror": mirror}})

    with pytest.raises(RecipeError, match="scenes.jsonl does not exist"):
        scene_grounding(recipe(False), 10)
    with pytest.raises(RecipeError, match="cannot be combined"):
        scene_grounding(recipe(True), 10)
    (tmp_path / "scenes.jsonl").write_text(json.dumps(SCENE.to_dict()) + "\n")
    assert scene_grounding(recipe(False), 10).scenes["hand"].players[0].instrument == "violin"


def test_answers_carry_what_each_keyword_points_at():
    """With object_grounding the forward also reads the head (probabilities), and the pipeline names the likeliest
    instrument and position per keyword; without it there is nothing to read."""
    from mcd.serving.pipeline import describe_referents

    cfg = small_config(object_clues=True, object_grounding=True, grounding_classes=len(GROUNDING_INSTRUMENTS))
    torch.manual_seed(0)
    inputs = make_batch(cfg, labels=False)
    read = MCD(cfg).eval()(**inputs).referents
    B, K = inputs["objects"].shape[:2]
    assert read["instrument"].shape == (B, K, len(GROUNDING_INSTRUMENTS)) and read["segments"].shape == (B, K, cfg.T)
    assert torch.allclose(read["position"].sum(-1), torch.ones(B, K))
    assert bool(((read["sounds"] > 0) & (read["sounds"] < 1)).all())
    assert MCD(small_config(object_clues=True)).eval()(**inputs).referents == {}

    inst = torch.zeros(2, len(GROUNDING_INSTRUMENTS))
    inst[0, GROUNDING_INSTRUMENTS.index("flute")] = inst[1, GROUNDING_INSTRUMENTS.index("drum")] = 1.0
    pos = torch.tensor([[0.1, 0.7, 0.1, 0.05, 0.05], [0.0, 0.0, 0.0, 0.0, 1.0]])
    seg = torch.tensor([[0.9, 0.2, 0.6, 0.1], [0.0, 0.0, 0.0, 0.0]])
    got = describe_referents(["middle", "drum"], {"instrument": inst.numpy(), "position": pos.numpy(),
                                                  "sounds": torch.tensor([0.8, 0.1]).numpy(), "segments": seg.numpy(),
                                                  "scalars": torch.zeros(2, 4).numpy()}, GROUNDING_INSTRUMENTS)
    assert [got["middle"]["instrument"], got["middle"]["position"], got["drum"]["position"]] == \
        ["flute", "middle", "absent"]
    assert got["middle"]["position_p"] == pytest.approx(0.7) and got["drum"]["sounds_p"] == pytest.approx(0.1)
    assert describe_referents(["left"], {}, GROUNDING_INSTRUMENTS) == {}


def test_object_clues_return_where_each_object_and_its_referent_query_looked():
    """MCDOutput.object_clues (the demo's spatial and audio clues) are per-object distributions over the patches
    and seconds, zero on padding, and returning them changes nothing the referent query computes."""
    cfg = small_config(object_clues=True, object_grounding=True, grounding_classes=5, referent_query=True)
    torch.manual_seed(0)
    model = MCD(cfg).eval()
    inputs = make_batch(cfg, labels=False)
    inputs["objects_mask"][0, -1] = False
    with torch.no_grad():
        out = model(**inputs)
    B, K = inputs["objects"].shape[:2]
    assert out.object_clues["referent_visual"].shape == (B, K, cfg.T, cfg.P)
    assert out.object_clues["visual_low"].shape == (B, K, cfg.T, cfg.P)
    assert out.object_clues["referent_audio"].shape == out.object_clues["audio_high"].shape == (B, K, cfg.T)
    real = inputs["objects_mask"]
    for name in ("referent_visual", "referent_audio"):
        sums = out.object_clues[name].flatten(2).sum(-1)
        torch.testing.assert_close(sums, torch.ones_like(sums))       # the look-up runs for every row
    for name in ("visual_low", "audio_high"):
        sums = out.object_clues[name].flatten(2).sum(-1)
        torch.testing.assert_close(sums[real], torch.ones_like(sums[real]))
        assert torch.all(sums[~real] == 0)
    query = model.keywords.referent_query
    inst = torch.rand(2, 3, 5).softmax(-1)
    vis, aud = torch.randn(1, 6, cfg.d), torch.randn(1, cfg.T, cfg.d)
    with torch.no_grad():
        plain = query(inst, vis, aud)
        with_weights = query(inst, vis, aud, return_weights=True)
    assert all(torch.equal(a, b) for a, b in zip(plain, with_weights[:2]))
    assert with_weights[2].shape == (2, 3, 6) and with_weights[3].shape == (2, 3, cfg.T)
