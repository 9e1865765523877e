"""Released MUSIC-AVQA features: fake per-video .npy files in the released shapes, read through ReleasedFeatures,
QADataset + TextBank (real MiniLM) and one training step of MCD.

The fake rows encode where they came from, so the tests can check which seconds and patches were picked:
channel 0 = the second (row index), channel 1 = the video's number, channel 2 (spatial maps) = the grid position
h * W + w; every other channel is seeded noise.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mcd.data.dataset import QADataset, record_objects
from mcd.data.music_avqa import load_annotations
from mcd.data.released import MissingFeatureError, ReleasedFeatureError, ReleasedFeatures, segment_rows

FIXTURE = Path(__file__).parent / "fixtures" / "released" / "avqa-excerpt.json"
SECONDS, DA, DV = 60, 128, 512
# T = 10 segments of 6 s; the row covering each centre (3.0, 9.0, ..., 57.0).
ROWS_T10 = [3, 9, 15, 21, 27, 33, 39, 45, 51, 57]


def fake_rows(rng: np.random.Generator, video_no: int, *shape: int) -> np.ndarray:
    """`[60, *shape]` noise whose channel 0 is the second and channel 1 the video number (channel axis = 1)."""
    x = rng.standard_normal((SECONDS, *shape)).astype(np.float32)
    x[:, 0] = np.arange(SECONDS, dtype=np.float32).reshape(-1, *([1] * (len(shape) - 1)))
    x[:, 1] = video_no
    return x


def write_features(root: Path, video_ids: list[str], spatial: str | None = None, seed: int = 0) -> dict:
    """Write audio [60,128] and frame [60,512] files (and spatial maps in layout `spatial`); return the arrays."""
    rng = np.random.default_rng(seed)
    folders = {k: root / k for k in ("audio", "visual", "spatial")}
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, dict[str, np.ndarray]] = {"audio": {}, "visual": {}, "spatial": {}}
    for no, vid in enumerate(video_ids):
        arrays["audio"][vid] = fake_rows(rng, no, DA)
        arrays["visual"][vid] = fake_rows(rng, no, DV)
        if spatial == "DHW":    # [60, D, 14, 14], as res18_14x14
            maps = fake_rows(rng, no, 16, 14, 14)
            maps[:, 2] = np.arange(14 * 14, dtype=np.float32).reshape(14, 14)
            arrays["spatial"][vid] = maps
        elif spatial == "PD":   # [60, P, D] patch tokens
            maps = rng.standard_normal((SECONDS, 16, 24)).astype(np.float32)
            maps[:, :, 0] = np.arange(SECONDS, dtype=np.float32)[:, None]
            maps[:, :, 1] = no
            maps[:, :, 2] = np.arange(16, dtype=np.float32)[None, :]
            arrays["spatial"][vid] = maps
        for kind in ("audio", "visual", "spatial"):
            if vid in arrays[kind]:
                np.save(folders[kind] / f"{vid}.npy", arrays[kind][vid])
    return arrays


@pytest.fixture()
def feats(tmp_path):
    arrays = write_features(tmp_path, ["00000001", "00000002"])
    return tmp_path, arrays


# ---------------------------------------------------------------------------------------------------------------
# time subsampling
# ---------------------------------------------------------------------------------------------------------------

def test_segment_rows_are_segment_centres():
    assert segment_rows(60, 10).tolist() == ROWS_T10
    assert segment_rows(60, 60).tolist() == list(range(60))
    assert segment_rows(60, 1).tolist() == [30]
    assert segment_rows(60, 4).tolist() == [7, 22, 37, 52]        # centres 7.5, 22.5, 37.5, 52.5
    assert segment_rows(5, 10).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]   # short clip: rows repeat
    for n, t in [(60, 7), (59, 10), (3, 3), (100, 13)]:
        rows = segment_rows(n, t)
        assert len(rows) == t and rows.min() >= 0 and rows.max() < n
        assert np.all(np.diff(rows) >= 0)
        centres = (np.arange(t) + 0.5) * n / t
        assert np.all((rows <= centres) & (centres < rows + 1))       # the row covers the centre
    with pytest.raises(ValueError):
        segment_rows(0, 10)


def test_frame_features_subsampled_to_T(feats):
    root, arrays = feats
    reader = ReleasedFeatures(root / "audio", root / "visual", T=10)
    out = reader("00000002")
    assert out["audio"].shape == (10, DA) and out["audio"].dtype == torch.float32
    assert out["visual"].shape == (10, 1, DV) and out["visual"].dtype == torch.float32
    assert out["audio"][:, 0].tolist() == ROWS_T10
    assert out["visual"][:, 0, 0].tolist() == ROWS_T10
    assert torch.all(out["audio"][:, 1] == 1) and torch.all(out["visual"][:, 0, 1] == 1)
    np.testing.assert_array_equal(out["audio"].numpy(), arrays["audio"]["00000002"][ROWS_T10])
    np.testing.assert_array_equal(out["visual"][:, 0].numpy(), arrays["visual"]["00000002"][ROWS_T10])
    out4 = ReleasedFeatures(root / "audio", root / "visual", T=4)("00000001")
    assert out4["audio"][:, 0].tolist() == [7, 22, 37, 52] and out4["visual"].shape == (4, 1, DV)


def test_spatial_maps_channels_first_become_row_major_patches(tmp_path):
    arrays = write_features(tmp_path, ["a", "b"], spatial="DHW")
    out = ReleasedFeatures(tmp_path / "audio", tmp_path / "visual", tmp_path / "spatial", T=10)("b")
    assert out["visual"].shape == (10, 196, 16)
    assert out["visual"][:, 0, 0].tolist() == ROWS_T10
    assert torch.all(out["visual"][..., 1] == 1)
    assert out["visual"][0, :, 2].tolist() == list(range(196))      # patch p = h * 14 + w
    src = arrays["spatial"]["b"]
    np.testing.assert_array_equal(out["visual"][3, 14 * 5 + 9].numpy(), src[ROWS_T10[3], :, 5, 9])

    pooled = ReleasedFeatures(tmp_path / "audio", None, tmp_path / "spatial", T=10, spatial_grid=7)("b")
    assert pooled["visual"].shape == (10, 49, 16)
    assert pooled["visual"][:, 0, 0].tolist() == ROWS_T10
    # each 7x7 cell (i, j) averages the 2x2 block of 14x14 positions h in {2i, 2i+1}, w in {2j, 2j+1}
    expected = [(2 * i + 0.5) * 14 + 2 * j + 0.5 for i in range(7) for j in range(7)]
    assert np.allclose(pooled["visual"][5, :, 2].numpy(), expected)
    np.testing.assert_allclose(pooled["visual"][2, 7 * 1 + 3].numpy(),
                               src[ROWS_T10[2], :, 2:4, 6:8].mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_spatial_patch_tokens_kept_or_pooled(tmp_path):
    arrays = write_features(tmp_path, ["a"], spatial="PD")
    out = ReleasedFeatures(tmp_path / "audio", tmp_path / "visual", tmp_path / "spatial", T=10)("a")
    assert out["visual"].shape == (10, 16, 24)
    np.testing.assert_array_equal(out["visual"].numpy(), arrays["spatial"]["a"][ROWS_T10])
    pooled = ReleasedFeatures(tmp_path / "audio", None, tmp_path / "spatial", T=10, spatial_grid=2)("a")
    assert pooled["visual"].shape == (10, 4, 24)
    # 16 tokens = a 4x4 grid; cell (0, 1) of the 2x2 result averages tokens 2, 3, 6, 7
    assert np.allclose(pooled["visual"][:, 1, 2].numpy(), np.mean([2, 3, 6, 7]))
    assert pooled["visual"][:, 0, 0].tolist() == ROWS_T10


# ---------------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------------

def test_missing_file_names_video_and_folder(feats):
    root, _ = feats
    reader = ReleasedFeatures(root / "audio", root / "visual")
    with pytest.raises(MissingFeatureError) as err:
        reader("00000099")
    assert "00000099" in str(err.value) and str(root / "audio") in str(err.value)
    (root / "visual" / "00000002.npy").unlink()
    with pytest.raises(MissingFeatureError, match=r"visual.*'00000002'") as err:
        reader("00000002")
    assert str(root / "visual") in str(err.value)
    with pytest.raises(MissingFeatureError, match="spatial"):
        ReleasedFeatures(root / "audio", None, root / "visual")("00000002")


def test_bad_construction(feats):
    root, _ = feats
    with pytest.raises(ReleasedFeatureError, match="does not exist"):
        ReleasedFeatures(root / "nope", root / "visual")
    with pytest.raises(ValueError, match="visual_dir"):
        ReleasedFeatures(root / "audio", None)
    for bad_t in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="T must be"):
            ReleasedFeatures(root / "audio", root / "visual", T=bad_t)
    with pytest.raises(ValueError, match="spatial_grid"):
        ReleasedFeatures(root / "audio", root / "visual", spatial_grid=0)


@pytest.mark.parametrize("kind, array, message", [
    ("audio", np.zeros((60,), np.float32), r"audio features .* shape \(60,\).*\[seconds, Da\]"),
    ("audio", np.zeros((60, 128, 1), np.float32), r"shape \(60, 128, 1\)"),
    ("visual", np.zeros((60, 512, 7, 7), np.float32), r"frame features .*spatial_dir"),
    ("audio", np.zeros((0, 128), np.float32), "empty"),
    ("audio", np.full((60, 128), np.nan, np.float32), "7680 NaN/Inf"),
    ("visual", np.where(np.eye(60, 512) > 0, np.inf, 0).astype(np.float32), "60 NaN/Inf"),
    ("audio", np.array(["a"] * 60), "not a real-valued array"),
    ("audio", np.zeros((60, 64), np.float32), "64-d but 128-d"),
    ("visual", np.zeros((60, 256), np.float32), "256-d but 512-d"),
])
def test_bad_arrays(feats, kind, array, message):
    root, _ = feats
    reader = ReleasedFeatures(root / "audio", root / "visual")
    reader("00000001")                       # pins the widths: 128 audio, 512 visual
    np.save(root / kind / "00000002.npy", array)
    with pytest.raises(ReleasedFeatureError, match=message) as err:
        reader("00000002")
    assert "'00000002'" in str(err.value)


def test_pinned_widths_and_spatial_rank(feats):
    root, _ = feats
    with pytest.raises(ReleasedFeatureError, match="128-d but 96-d"):
        ReleasedFeatures(root / "audio", root / "visual", audio_dim=96)("00000001")
    np.save(root / "spatial" / "00000001.npy", np.zeros((60, 512), np.float32))
    with pytest.raises(ReleasedFeatureError, match=r"\[seconds, D, H, W\]"):
        ReleasedFeatures(root / "audio", None, root / "spatial")("00000001")
    np.save(root / "spatial" / "00000001.npy", np.zeros((60, 50, 512), np.float32))   # CLS + 7x7
    with pytest.raises(ReleasedFeatureError, match="50 patches, not a square grid"):
        ReleasedFeatures(root / "audio", None, root / "spatial", spatial_grid=7)("00000001")


def test_unreadable_files(feats):
    root, _ = feats
    reader = ReleasedFeatures(root / "audio", root / "visual")
    path = root / "audio" / "00000001.npy"
    np.save(path, np.array([{"a": 1}], dtype=object))             # pickled objects are never loaded
    with pytest.raises(ReleasedFeatureError, match="cannot read audio"):
        reader("00000001")
    np.save(path, np.zeros((60, 128), np.float32))
    path.write_bytes(path.read_bytes()[:200])                   # truncated
    with pytest.raises(ReleasedFeatureError, match="cannot read audio"):
        reader("00000001")
    path.write_text("not numpy")
    with pytest.raises(ReleasedFeatureError, match=r"cannot read audio features of video '00000001'"):
        reader("00000001")


# ---------------------------------------------------------------------------------------------------------------
# real MUSIC-AVQA records -> QADataset + TextBank (MiniLM) -> one training step of MCD
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def text_encoder():
    from mcd.encoders.text import MiniLMTextEncoder
    return MiniLMTextEncoder()


@pytest.fixture(scope="module")
def records():
    recs = load_annotations(FIXTURE)
    assert len(recs) == len(json.loads(FIXTURE.read_text())) == 13
    assert len({r.type for r in recs}) == 9
    return recs


def build_dataset(records, reader, text_encoder):
    from mcd.data.text_bank import TextBank
    bank = TextBank(text_encoder, [r.question for r in records], [record_objects(r) for r in records])
    return QADataset(records, reader, bank)


def train_step(config_kwargs: dict, batch) -> tuple:
    from mcd.model.config import MCDConfig
    from mcd.model.mcd import MCD
    torch.manual_seed(0)
    model = MCD(MCDConfig(text_dim=384, d=32, d_z=16, n_heads=4, n_blocks=1, T=10, **config_kwargs))
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    out = model(**batch.model_inputs())
    assert out.loss is not None and torch.isfinite(out.loss)
    opt.zero_grad()
    out.loss.backward()
    opt.step()
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    return model, out, changed


def test_excerpt_through_dataset_and_one_training_step(tmp_path, records, text_encoder):
    from mcd.task.vocab import answer_to_index
    video_ids = sorted({r.video_id for r in records})
    write_features(tmp_path, video_ids, seed=1)
    video_no = {v: i for i, v in enumerate(video_ids)}
    ds = build_dataset(records, ReleasedFeatures(tmp_path / "audio", tmp_path / "visual", T=10), text_encoder)
    by_id = {r.question_id: r for r in records}
    batches = list(ds.loader(batch_size=8, shuffle=False))
    assert len(batches) == 2
    seen = []
    for batch in batches:
        recs = [by_id[q] for q in batch.question_ids]
        B = len(recs)
        seen += batch.question_ids
        V = len({r.video_id for r in recs})  # each clip's features appear once per batch
        assert batch.visual.shape == (V, 10, 1, DV) and batch.audio.shape == (V, 10, DA)
        for b, r in enumerate(recs):
            # the T subsampling picked the segment-centre seconds of this record's own video
            clip = int(batch.video_index[b])
            assert batch.visual[clip, :, 0, 0].tolist() == ROWS_T10
            assert batch.audio[clip, :, 0].tolist() == ROWS_T10
            assert torch.all(batch.visual[clip, :, 0, 1] == video_no[r.video_id])
            assert torch.all(batch.audio[clip, :, 1] == video_no[r.video_id])
            for c, other in enumerate(recs):
                assert (batch.video_index[b] == batch.video_index[c]) == (r.video_id == other.video_id)
            # question padding: exactly the question's own tokens are real, the rest is zero padding
            tokens, mask = text_encoder.encode_questions([r.question])
            n = int(mask.sum())
            assert int(batch.question_mask[b].sum()) == n and bool(batch.question_mask[b, :n].all())
            assert torch.allclose(batch.question[b, :n], tokens[0, :n], atol=1e-5)
            assert torch.all(batch.question[b, n:] == 0)
            # text objects: keywords then the two type words, then padding
            k = len(r.keywords)
            assert batch.objects_mask[b].tolist() == [True] * (k + 2) + [False] * (batch.objects.shape[1] - k - 2)
            assert batch.objects_kind[b, :k + 2].tolist() == [0] * k + [1, 1]
            phrases, _ = record_objects(r)
            assert torch.allclose(batch.objects[b, :k + 2], text_encoder.encode_phrases(phrases), atol=1e-5)
            assert torch.all(batch.objects[b, k + 2:] == 0)
            assert int(batch.labels[b]) == answer_to_index(r.answer)
        # padding is real in this batch: questions of different lengths and 0..4 keywords
        assert batch.question_mask.sum(1).unique().numel() > 1
    assert sorted(seen) == sorted(r.question_id for r in records)
    all_k = {len(r.keywords) for r in records}
    assert {0, 1, 2, 4} <= all_k

    batch = batches[0]
    model, out, changed = train_step(dict(visual_dim=DV, audio_dim=DA, P=1), batch)
    B = batch.labels.shape[0]
    assert out.logits.shape == (B, 42) and out.teacher_logits.shape == (B, 42)
    assert out.clues["visual_low"].shape == (B, 10, 1) and out.clues["objects"].shape == batch.objects_mask.shape
    # the features reached the model: the projections of both modalities were trained
    assert any(n.startswith("visual_proj.") for n in changed) and any(n.startswith("audio_proj.") for n in changed)
    assert len(changed) > 0.5 * len(list(model.parameters()))

    # masks are right: in eval mode a question's answer does not depend on the padding its batch-mates caused
    model.eval()
    with torch.no_grad():
        full = model(**{**batch.model_inputs(), "labels": None}).logits
        for b in range(B):
            nq, nk = int(batch.question_mask[b].sum()), int(batch.objects_mask[b].sum())
            c = int(batch.video_index[b])  # the row of this question's clip
            alone = model(visual=batch.visual[c:c + 1], audio=batch.audio[c:c + 1],
                          question=batch.question[b:b + 1, :nq], question_mask=batch.question_mask[b:b + 1, :nq],
                          objects=batch.objects[b:b + 1, :nk], objects_mask=batch.objects_mask[b:b + 1, :nk],
                          objects_kind=batch.objects_kind[b:b + 1, :nk]).logits
            assert torch.allclose(full[b], alone[0], atol=1e-4), b


def test_spatial_maps_through_dataset_and_one_training_step(tmp_path, records, text_encoder):
    video_ids = sorted({r.video_id for r in records})
    write_features(tmp_path, video_ids, spatial="DHW", seed=2)
    reader = ReleasedFeatures(tmp_path / "audio", tmp_path / "visual", tmp_path / "spatial", T=10, spatial_grid=7)
    ds = build_dataset(records, reader, text_encoder)
    batch = next(iter(ds.loader(batch_size=16, shuffle=False)))
    B, V = len(records), len(video_ids)
    assert batch.visual.shape == (V, 10, 49, 16) and batch.audio.shape == (V, 10, DA)
    assert torch.all(batch.visual[:, :, :, 0] == torch.tensor(ROWS_T10, dtype=torch.float32)[None, :, None])
    _, out, changed = train_step(dict(visual_dim=16, audio_dim=DA, P=49), batch)
    assert out.logits.shape == (B, 42) and out.clues["visual_low"].shape == (B, 10, 49)
    assert any(n.startswith("visual_proj.") for n in changed) and any(n.startswith("audio_proj.") for n in changed)
