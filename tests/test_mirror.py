"""Left-right mirroring (train.mirror): the words, the patch grid, the batches, and that no answer is broken.

The strongest check is against the synthetic world itself: for sampled scenes, the scene seen in a mirror (players
in reverse order, sides swapped, boxes reflected) must answer every mirrored question with the mirrored answer.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from mcd.data.dataset import QADataset, VideoGroupedBatches
from mcd.data.mirror import MirrorError, grid_side, mirror_record, mirror_text, mirror_visual
from mcd.data.music_avqa import QARecord
from mcd.synth.qa import answer, candidates
from mcd.synth.scene import sample_scene
from mcd.task.vocab import answer_to_index


def test_side_words_swap_and_nothing_else():
    assert mirror_text("Is the violin on the left louder than the piano on the right?") == \
        "Is the violin on the right louder than the piano on the left?"
    assert mirror_text("What kind of instrument is the leftest instrument?") == \
        "What kind of instrument is the rightest instrument?"
    assert mirror_text("Left or Rightmost") == "Right or Leftmost"
    for unchanged in ("middle", "Where is the performance?", "leftover brightness", "What is the <LR> instrument?"):
        assert mirror_text(unchanged) == unchanged
    for text in ("left right leftest rightest leftmost rightmost", "The Right one, not the left."):
        assert mirror_text(mirror_text(text)) == text


def record(question: str, keywords: tuple[str, ...], ans: str, video: str = "v0", qid: int = 1) -> QARecord:
    return QARecord(qid, video, "Is the <Object> on the <LR> louder than the <Object> on the <LR>?", question,
                    "Audio-Visual/Comparative", "Audio-Visual", "Comparative", keywords, ans)


def test_mirror_record_swaps_question_keywords_and_answer():
    r = record("Is the violin on the left louder than the piano on the middle?", ("violin", "left", "piano", "middle"),
               "left")
    m = mirror_record(r)
    assert m.question == "Is the violin on the right louder than the piano on the middle?"
    assert m.keywords == ("violin", "right", "piano", "middle")
    assert m.answer == "right"
    assert (m.question_id, m.video_id, m.type, m.template) == (r.question_id, r.video_id, r.type, r.template)
    assert r.answer == "left"  # the original is untouched


def test_patch_grid_flips_columns_only():
    T, P, D = 3, 49, 2
    rows, cols = torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij")
    visual = torch.stack([rows.flatten(), cols.flatten()], dim=-1).float().expand(T, P, D).clone()
    out = mirror_visual(visual)
    assert torch.equal(out[..., 0], visual[..., 0])              # same row
    assert torch.equal(out[..., 1], 6 - visual[..., 1])          # column c -> 6 - c
    assert torch.equal(mirror_visual(out), visual)
    assert mirror_visual(torch.randn(5, T, P, D)).shape == (5, T, P, D)
    assert grid_side(49) == 7 and grid_side(4) == 2
    for bad in (1, 10, 50):
        with pytest.raises(MirrorError, match=f"P={bad}"):
            grid_side(bad)


def mirrored_scene(scene):
    """The same clip seen in a mirror: players right to left, sides swapped, bounding boxes reflected."""
    side = {"left": "right", "right": "left", "middle": "middle"}
    players = [dataclasses.replace(p, position=side[p.position],
                                   bbox=(scene.size - p.bbox[2], p.bbox[1], scene.size - p.bbox[0], p.bbox[3]))
               for p in reversed(scene.players)]
    return dataclasses.replace(scene, players=players).validate()


def test_mirrored_scene_answers_every_mirrored_question_with_the_mirrored_answer():
    checked = sides = 0
    for i in range(60):
        scene = sample_scene(3, i)
        mirror = mirrored_scene(scene)
        asked = [qa for qas in candidates(scene).values() for qa in qas]
        for qa in asked:
            values = tuple(mirror_text(v) for v in qa.values)
            assert answer(mirror, qa.template, values) == mirror_text(qa.answer), (scene.video_id, qa)
            sides += qa.answer in ("left", "right") or any(v in ("left", "right", "leftest", "rightest")
                                                           for v in qa.values)
        assert sum(map(len, candidates(mirror).values())) == len(asked)
        checked += len(asked)
    assert checked > 1000 and sides > 100


def test_sampler_keeps_the_batches_and_mirrors_whole_videos():
    records = [record("q", (), "yes", video=f"v{i // 3}", qid=i) for i in range(60)]
    plain = VideoGroupedBatches(records, 9, shuffle=True, seed=4)
    flip = VideoGroupedBatches(records, 9, shuffle=True, seed=4, mirror=True)
    decisions = []
    for epoch in range(6):
        plain.set_epoch(epoch)
        flip.set_epoch(epoch)
        a, b = list(plain), list(flip)
        assert [[i for i, _ in batch] for batch in b] == a
        per_video = {}
        for batch in b:
            for i, m in batch:
                per_video.setdefault(records[i].video_id, set()).add(m)
        assert all(len(s) == 1 for s in per_video.values())      # a video is mirrored as a whole
        decisions.append(tuple(per_video[v].pop() for v in sorted(per_video)))
        flip.set_epoch(epoch)
        assert [[m for _, m in batch] for batch in flip] == [[m for _, m in batch] for batch in b]  # deterministic
    share = sum(map(sum, decisions)) / sum(map(len, decisions))
    assert 0.3 < share < 0.7 and len(set(decisions)) == 6


class FakeBank:
    """Records which question strings and objects were looked up (the TextBank's interface)."""

    def __init__(self):
        self.asked = []

    def questions(self, texts):
        self.asked.append(list(texts))
        return torch.zeros(len(texts), 2, 4), torch.ones(len(texts), 2, dtype=torch.bool)

    def objects(self, objects):
        self.objects_asked = [list(p) for p, _ in objects]
        return torch.zeros(len(objects), 1, 4), torch.ones(len(objects), 1, dtype=torch.bool), \
            torch.zeros(len(objects), 1, dtype=torch.long)


def test_collate_mirrors_features_questions_and_labels_of_mirrored_videos_only():
    recs = [record("Is the violin on the left louder than the piano on the right?", ("violin", "left", "piano", "right"),
                   "yes", video="a", qid=1),
            record("Where is the loudest instrument?", (), "left", video="a", qid=2),
            record("Where is the loudest instrument?", (), "left", video="b", qid=3)]
    feats = {v: {"visual": torch.randn(10, 49, 4), "audio": torch.randn(10, 3)} for v in "ab"}
    bank = FakeBank()
    ds = QADataset(recs, lambda v: feats[v], bank)
    batch = ds.collate([ds[(0, True)], ds[(1, True)], ds[(2, False)]])
    assert torch.equal(batch.visual[0], mirror_visual(feats["a"]["visual"]))
    assert torch.equal(batch.visual[1], feats["b"]["visual"])
    assert torch.equal(batch.audio[0], feats["a"]["audio"])
    assert bank.asked[-1] == ["Is the violin on the right louder than the piano on the left?",
                              "Where is the loudest instrument?", "Where is the loudest instrument?"]
    assert bank.objects_asked[0][:4] == ["violin", "right", "piano", "left"]
    assert batch.labels.tolist() == [answer_to_index("yes"), answer_to_index("right"), answer_to_index("left")]
    assert batch.question_ids == [1, 2, 3]
    plain = ds.collate([ds[0], ds[1], ds[2]])
    assert plain.labels.tolist() == [answer_to_index("yes"), answer_to_index("left"), answer_to_index("left")]
