"""MCD model: shapes, masking, gradient wiring, teacher/student separation, clues, ablations, overfitting."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from mcd.model.config import ConfigError, MCDConfig
from mcd.model import MCD, MCDInputError
from mcd.model.association import ClipGroups, MultiHeadAttention, info_nce
from tests.conftest import SMALL, make_batch, small_config

pytestmark = pytest.mark.usefixtures("one_thread")

def run(model: MCD, batch: dict):
    return model(**batch)


# --- shapes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("B,T,P,L,K", [(1, 4, 4, 1, 0), (3, 2, 9, 5, 2), (5, 6, 1, 7, 4), (2, 10, 49, 3, 3)])
def test_output_shapes(B, T, P, L, K):
    cfg = small_config(T=T, P=P)
    model = MCD(cfg).eval()
    out = run(model, make_batch(cfg, B, L, K))
    C = cfg.num_answers
    assert out.logits.shape == (B, C) and out.teacher_logits.shape == (B, C)
    assert out.z_q.shape == out.z_v.shape == out.z_a.shape == (B, cfg.d_z)
    shapes = {k: tuple(v.shape) for k, v in out.clues.items()}
    assert shapes == {"association": (B, 2 * T, 2 * T), "visual_low": (B, T, P), "audio_low": (B, T),
                      "visual_high": (B, T), "audio_high": (B, T), "objects": (B, K)}
    assert out.loss.shape == () and torch.isfinite(out.loss)
    assert set(out.losses) == {"ce_student", "ce_teacher", "contrastive", "kd", "logit_kd"}


def test_no_labels_means_no_loss():
    cfg = small_config()
    out = run(MCD(cfg), make_batch(cfg, labels=False))
    assert out.loss is None and out.losses == {}


def test_objects_are_optional():
    cfg = small_config()
    batch = make_batch(cfg)
    for key in ("objects", "objects_mask", "objects_kind"):
        batch.pop(key)
    out = run(MCD(cfg), batch)
    assert out.clues["objects"].shape == (4, 0)


# --- padding and masking -----------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides", [{}, {"clue_gate": True, "object_clues": True, "object_readout": True}],
                         ids=["design", "extended"])
def test_padding_changes_nothing(overrides):
    """Extra masked question tokens and masked objects, filled with garbage, leave every output unchanged
    (with question blocks too: padded tokens are masked out as keys, so real tokens never read them)."""
    cfg = small_config(**overrides)
    model = MCD(cfg).eval()
    batch = make_batch(cfg, B=3, L=4, K=2)
    ref = run(model, batch)

    padded = dict(batch)
    B = 3
    padded["question"] = torch.cat([batch["question"], 100 * torch.randn(B, 3, cfg.text_dim)], dim=1)
    padded["question_mask"] = torch.cat([batch["question_mask"], torch.zeros(B, 3, dtype=torch.bool)], dim=1)
    # also scramble the values under already-masked positions
    padded["question"][~padded["question_mask"]] = 7.0
    padded["objects"] = torch.cat([batch["objects"], -50 * torch.randn(B, 2, cfg.text_dim)], dim=1)
    padded["objects_mask"] = torch.cat([batch["objects_mask"], torch.zeros(B, 2, dtype=torch.bool)], dim=1)
    padded["objects_kind"] = torch.cat([batch["objects_kind"], torch.ones(B, 2, dtype=torch.long)], dim=1)
    padded["objects"][~padded["objects_mask"]] = -3.0
    out = run(model, padded)

    for name in ("logits", "teacher_logits", "z_q", "z_v", "z_a", "loss"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=1e-5, rtol=1e-5)
    for name, clue in ref.clues.items():
        got = out.clues[name][:, :2] if name == "objects" else out.clues[name]
        torch.testing.assert_close(got, clue, atol=1e-6, rtol=1e-5)
    assert torch.all(out.clues["objects"][:, 2:] == 0)


def test_masked_objects_get_no_attention():
    cfg = small_config()
    batch = make_batch(cfg, B=2, K=3)
    batch["objects_mask"][0] = torch.tensor([True, False, True])
    out = run(MCD(cfg).eval(), batch)
    assert out.clues["objects"][0, 1] == 0
    assert out.clues["objects"][0, [0, 2]].min() > 0


# --- gradients and separation ------------------------------------------------------------------------------
def test_gradients_reach_every_parameter():
    cfg = small_config()
    model = MCD(cfg)
    out = run(model, make_batch(cfg))
    out.loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []


def test_teacher_head_weights_do_not_touch_student_logits():
    for overrides in ({}, {"decision_fusion": True}):
        cfg = small_config(**overrides)
        model = MCD(cfg).eval()
        batch = make_batch(cfg, labels=False)
        ref = run(model, batch)
        with torch.no_grad():
            for p in model.teacher_head.parameters():
                p.add_(torch.randn_like(p))
        out = run(model, batch)
        assert torch.equal(out.logits, ref.logits)
        assert not torch.allclose(out.teacher_logits, ref.teacher_logits)


def test_student_logits_see_no_teacher_gradient_path():
    """The student CE alone must not put gradient into the teacher head (no decision-level path)."""
    cfg = small_config()
    model = MCD(cfg)
    out = run(model, make_batch(cfg))
    out.losses["ce_student"].backward()
    assert all(p.grad is None for p in model.teacher_head.parameters())


# --- clues ---------------------------------------------------------------------------------------------------
def test_clues_are_distributions():
    cfg = small_config()
    out = run(MCD(cfg).eval(), make_batch(cfg, B=3, L=5, K=3))
    for name, clue in out.clues.items():
        assert torch.all(clue >= 0), name
        sums = clue.sum(dim=-1) if name == "association" else clue.flatten(1).sum(dim=1)
        torch.testing.assert_close(sums, torch.ones_like(sums), msg=name)


def test_clue_follows_the_question():
    """Different questions about the same clip look at different places (clues are question-dependent)."""
    cfg = small_config()
    model = MCD(cfg).eval()
    batch = make_batch(cfg, B=2, labels=False)
    batch["visual"] = batch["visual"][:1].expand(2, -1, -1, -1)
    batch["audio"] = batch["audio"][:1].expand(2, -1, -1)
    out = run(model, batch)
    assert not torch.allclose(out.clues["visual_low"][0], out.clues["visual_low"][1])
    assert torch.equal(out.clues["association"][0], out.clues["association"][1])  # question-free


@pytest.mark.parametrize("overrides,zero", [({"hierarchy": "high"}, ["visual_low", "audio_low"]),
                                            ({"hierarchy": "low"}, ["visual_high", "audio_high"]),
                                            ({"text_objects": "none"}, ["objects"])])
def test_switched_off_levels_give_zero_clues(overrides, zero):
    cfg = small_config(**overrides)
    out = run(MCD(cfg).eval(), make_batch(cfg, labels=False))
    for name, clue in out.clues.items():
        assert torch.all(clue == 0) == (name in zero), name


# --- shared clip batching ----------------------------------------------------------------------------------
def test_shared_clip_matches_repeated_clip():
    """B questions about one clip: batch-1 or expanded AV inputs give the same outputs as materialised copies."""
    cfg = small_config()
    model = MCD(cfg).eval()
    batch = make_batch(cfg, B=4)
    batch.pop("video_index")
    v1, a1 = batch["visual"][:1], batch["audio"][:1]
    repeated = dict(batch, visual=v1.repeat(4, 1, 1, 1), audio=a1.repeat(4, 1, 1),
                    video_index=torch.zeros(4, dtype=torch.long))
    ref = run(model, repeated)
    for visual, audio in ((v1, a1), (v1.expand(4, -1, -1, -1), a1.expand(4, -1, -1))):
        out = run(model, dict(batch, visual=visual, audio=audio))
        for name in ("logits", "teacher_logits", "z_q", "z_v", "z_a", "loss"):
            torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.clues["visual_low"], ref.clues["visual_low"])


def test_per_clip_features_match_per_question_copies():
    """Training batches pass each clip once ([V,...]) with video_index: same outputs, clues and gradients-bearing
    losses (except the contrastive term, which is then taken over clips) as one copy per question."""
    cfg = small_config()
    model = MCD(cfg).eval()
    batch = make_batch(cfg, B=6)
    clips_v, clips_a = batch["visual"][:3], batch["audio"][:3]
    video_index = torch.tensor([2, 0, 0, 1, 2, 2])
    per_question = dict(batch, visual=clips_v[video_index], audio=clips_a[video_index], video_index=video_index)
    per_clip = dict(batch, visual=clips_v, audio=clips_a, video_index=video_index)
    ref, out = run(model, per_question), run(model, per_clip)
    for name in ("logits", "teacher_logits", "z_q", "z_v", "z_a"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=1e-5, rtol=1e-5)
    for name in ("association", "visual_low", "audio_low", "visual_high", "audio_high", "objects"):
        torch.testing.assert_close(out.clues[name], ref.clues[name], atol=1e-5, rtol=1e-5)
    for name in ("ce_student", "ce_teacher", "kd"):
        torch.testing.assert_close(out.losses[name], ref.losses[name], atol=1e-5, rtol=1e-5)
    with pytest.raises(MCDInputError, match="index"):
        run(model, dict(per_clip, video_index=torch.tensor([0, 1, 2, 3, 0, 0])))


@pytest.mark.parametrize("index", [[0, 0, 1, 1, 1, 2], [2, 0, 0, 1, 2, 2], [1, 1, 1, 1, 1, 1]])
def test_attention_per_clip_matches_gathered_keys(index):
    """MultiHeadAttention with context_index folds each clip's questions into one attention over that clip's keys:
    outputs, weights and gradients equal those of every question reading its own copy of its clip's context, with
    a per-clip key mask, for sorted rows (training batches), unsorted rows and one clip shared by all."""
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4).eval()
    index = torch.tensor(index)
    x = torch.randn(6, 3, 16, requires_grad=True)
    context = torch.randn(3, 7, 16, requires_grad=True)
    key_mask = torch.ones(3, 7, dtype=torch.bool)
    key_mask[1, 4:] = False
    out, weights = attn(x, context, key_mask, context_index=index)
    (out.square().sum() + weights.sum()).backward()
    grads = x.grad.clone(), context.grad.clone()
    x.grad, context.grad = None, None
    ref_out, ref_weights = attn(x, context[index], key_mask[index])
    (ref_out.square().sum() + ref_weights.sum()).backward()
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights, ref_weights, atol=1e-6, rtol=1e-5)
    assert weights[index == 1][..., 4:].eq(0).all()
    torch.testing.assert_close(grads[0], x.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grads[1], context.grad, atol=1e-5, rtol=1e-5)


def test_folded_attention_drops_the_weights_of_the_per_question_layout():
    """In training, one clip's questions folded into one attention drop exactly the attention weights that each
    question reading its own copy of the keys drops, from the same random state: the dropout mask is drawn in the
    per-question [B,h,Lq,N] order whatever layout the scores are kept in, so the folded path trains the recipe the
    shipped checkpoint was trained with (with another mask the outputs differ by whole dropped weights)."""
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4, dropout=0.5).train()
    x = torch.randn(5, 3, 16)
    context = torch.randn(1, 9, 16)
    torch.manual_seed(1)
    out, weights = attn(x, context)                                   # [1,N,d] context: the folded path
    torch.manual_seed(1)
    ref_out, ref_weights = attn(x, context.expand(5, -1, -1).contiguous())   # one copy per question
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights, ref_weights, atol=1e-6, rtol=1e-5)
    torch.manual_seed(2)
    other, _ = attn(x, context)
    assert not torch.allclose(other, ref_out, atol=1e-3)             # the mask matters: another draw differs


@pytest.mark.parametrize("layout", ["folded", "per-clip", "per-question"])
def test_padded_query_rows_are_skipped_and_real_rows_unchanged(layout):
    """With query_mask, the real rows get what the unmasked call gives them, dropout included (same draw), and
    the padded rows get no weights and a zero attention output (out_proj's bias alone), in every layout: one
    clip's questions folded together, several clips through context_index, and one context row per question."""
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4, dropout=0.5).train()
    x = torch.randn(6, 5, 16)
    query_mask = torch.rand(6, 5) > 0.4
    query_mask[:, 0] = True
    query_mask[2] = False                                            # a question with no real row at all
    kwargs = {"folded": dict(context=torch.randn(1, 9, 16)),
              "per-clip": dict(context=torch.randn(3, 9, 16), context_index=torch.tensor([0, 0, 2, 1, 1, 2])),
              "per-question": dict(context=torch.randn(6, 9, 16))}[layout]
    torch.manual_seed(1)
    ref_out, ref_weights = attn(x, **kwargs)
    torch.manual_seed(1)
    out, weights = attn(x, **kwargs, query_mask=query_mask)
    torch.testing.assert_close(out[query_mask], ref_out[query_mask], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights[query_mask], ref_weights[query_mask], atol=1e-6, rtol=1e-5)
    assert weights[~query_mask].eq(0).all()
    torch.testing.assert_close(out[~query_mask], attn.out_proj.bias.expand(int((~query_mask).sum()), -1))
    assert not torch.allclose(ref_out[~query_mask], out[~query_mask])   # the padded rows were really skipped
    out.sum().backward()                                             # and the skip is differentiable
    assert attn.q_proj.weight.grad is not None


def test_clip_groups_split_and_merge_restore_row_order():
    index = torch.tensor([2, 0, 0, 1, 2, 0])
    groups = ClipGroups(index)
    rows = torch.arange(6) * 10
    parts = groups.split(rows)
    assert groups.clips == [0, 1, 2] and [p.tolist() for p in parts] == [[10, 20, 50], [30], [0, 40]]
    assert groups.merge([p + 1 for p in parts]).tolist() == (rows + 1).tolist()
    assert ClipGroups(torch.tensor([0, 0, 3])).order is None     # sorted rows: plain slicing, no permutation


# --- modality switches and text-object kinds -------------------------------------------------------------
@pytest.mark.parametrize("overrides,ignored", [({"use_visual": False}, ["visual"]),
                                               ({"use_audio": False}, ["audio"]),
                                               ({"question_only": True}, ["visual", "audio"])])
def test_removed_modality_is_ignored(overrides, ignored):
    cfg = small_config(**overrides)
    model = MCD(cfg).eval()
    batch = make_batch(cfg)
    ref = run(model, batch)
    changed = dict(batch, **{k: torch.randn_like(batch[k]) for k in ignored})
    out = run(model, changed)
    assert torch.equal(out.logits, ref.logits) and torch.equal(out.teacher_logits, ref.teacher_logits)
    # and the modality that is kept does matter
    kept = [k for k in ("visual", "audio") if k not in ignored]
    for k in kept:
        assert not torch.allclose(run(model, dict(batch, **{k: torch.randn_like(batch[k])})).logits, ref.logits)
    if cfg.question_only:
        assert out.losses["contrastive"] == 0


@pytest.mark.parametrize("mode,ignored_kind", [("keywords", 1), ("types", 0), ("none", None)])
def test_text_object_kinds(mode, ignored_kind):
    cfg = small_config(text_objects=mode)
    model = MCD(cfg).eval()
    batch = make_batch(cfg, K=4)
    ref = run(model, batch)
    kind = batch["objects_kind"]
    noisy = batch["objects"].clone()
    sel = torch.ones_like(kind, dtype=torch.bool) if ignored_kind is None else kind == ignored_kind
    noisy[sel] = torch.randn_like(noisy[sel])
    out = run(model, dict(batch, objects=noisy))
    torch.testing.assert_close(out.logits, ref.logits, atol=1e-6, rtol=1e-5)
    if ignored_kind is not None:
        assert torch.all(out.clues["objects"][sel] == 0)
        # the other kind is used
        other = batch["objects"].clone()
        other[~sel] = torch.randn_like(other[~sel])
        assert not torch.allclose(run(model, dict(batch, objects=other)).logits, ref.logits)


# --- losses ----------------------------------------------------------------------------------------------------
def test_kl_distillation_does_not_move_teachers_but_mutual_does():
    for mode, teachers_move in (("kl", False), ("cos", False), ("nce", False), ("mutual", True)):
        cfg = small_config(kd_mode=mode)
        model = MCD(cfg)
        out = run(model, make_batch(cfg))
        assert torch.isfinite(out.losses["kd"]) and out.losses["kd"] > 0, mode
        out.losses["kd"].backward()
        teacher_grad = [p.grad for p in model.approximation.proj_v.parameters()]
        moved = any(g is not None and torch.any(g != 0) for g in teacher_grad)
        assert moved == teachers_move, mode
        assert torch.any(model.approximation.proj_q[0].weight.grad != 0), mode


def test_info_nce_masks_same_video_negatives():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    video = torch.tensor([0, 0, 1, 2])
    got = info_nce(a, b, 0.1, video, symmetric=False)
    sims = torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).t() / 0.1
    allowed = [[0, 2, 3], [1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]
    expect = torch.stack([torch.logsumexp(sims[i, allowed[i]], 0) - sims[i, i] for i in range(4)]).mean()
    torch.testing.assert_close(got, expect)
    assert info_nce(a, b, 0.1, torch.zeros(4, dtype=torch.long)) == 0  # one clip: no negatives, no loss


def test_total_loss_is_the_weighted_sum():
    cfg = small_config(lambda_con=0.3, lambda_kd=2.0, teacher_logit_kd=True, lambda_logit_kd=0.5)
    out = run(MCD(cfg), make_batch(cfg))
    l = out.losses
    assert l["logit_kd"] > 0 and l["contrastive"] > 0
    expect = l["ce_student"] + l["ce_teacher"] + 0.3 * l["contrastive"] + 2.0 * l["kd"] + 0.5 * l["logit_kd"]
    torch.testing.assert_close(out.loss, expect)


# --- ablations -------------------------------------------------------------------------------------------------
ABLATIONS = [
    {"association_residual": False}, {"n_blocks": 0}, {"n_blocks": 3}, {"contrastive": False},
    {"hierarchy": "low"}, {"hierarchy": "high"}, {"hints": False}, {"frame_features": False},
    {"text_objects": "keywords"}, {"text_objects": "types"}, {"text_objects": "none"},
    {"shared_aggregator": False}, {"kd_mode": "mutual"}, {"kd_mode": "cos"}, {"kd_mode": "nce"},
    {"lambda_kd": 0.0}, {"decision_fusion": True}, {"teacher_logit_kd": True},
    {"use_visual": False}, {"use_audio": False}, {"question_only": True}, {"dropout": 0.2},
    {"clue_gate": True}, {"clue_gate": True, "hints": False},
    {"object_clues": True}, {"object_clues": True, "clue_gate": True, "hierarchy": "low"},
    {"object_clues": True, "text_objects": "none"}, {"object_clues": True, "object_readout": True},
    {"object_clues": True, "object_readout": True, "shared_aggregator": False},
]


@pytest.mark.parametrize("overrides", ABLATIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_every_ablation_builds_runs_and_trains(overrides):
    torch.manual_seed(0)
    cfg = small_config(**overrides)
    model = MCD(cfg).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = make_batch(cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = run(model, batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    unused = {"approximation.proj_q"} if cfg.lambda_kd == 0 else set()
    no_grad = [n for n, p in model.named_parameters()
               if p.grad is None and not any(n.startswith(u) for u in unused)]
    assert no_grad == []  # every module that the config builds is used
    opt.step()
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    if not cfg.shared_aggregator:
        assert model.aggregator.attn_low.q_proj.weight is not model.aggregator_audio.attn_low.q_proj.weight


def test_clue_gate_multiplies_what_each_token_gathered():
    """The gate is multiplicative per token: a zero gate lets no clue through (the clip stops mattering), and a
    gate that keeps some channels makes the answer depend on the clip again."""
    torch.manual_seed(0)
    cfg = small_config(clue_gate=True)
    gated = MCD(cfg).eval()
    batch = make_batch(cfg)
    other = dict(batch, visual=torch.randn_like(batch["visual"]), audio=torch.randn_like(batch["audio"]))
    assert not torch.allclose(run(gated, batch).logits, run(gated, other).logits)
    with torch.no_grad():
        gated.aggregator.gate[1].weight.zero_()
        gated.aggregator.gate[1].bias.zero_()
    closed = run(gated, batch)
    blind = MCD(small_config(clue_gate=True, question_only=True)).eval()
    blind.load_state_dict(gated.state_dict())
    torch.testing.assert_close(closed.logits, run(blind, batch).logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(closed.logits, run(gated, other).logits, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        gated.aggregator.gate[1].bias[:4] = 1.0
    assert not torch.allclose(run(gated, batch).logits, run(gated, other).logits)


def test_object_clues_bind_slot_order_and_the_clip():
    """Without object clues the objects are an unordered set and carry no clip information; with them, swapping
    two keywords changes the answer ("X louder than Y" is not "Y louder than X") and so does the audio that only
    the objects listen to."""
    def swapped(batch):
        b = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in batch.items()}
        b["objects"][:, [0, 1]] = b["objects"][:, [1, 0]]
        b["objects_kind"][:, [0, 1]] = b["objects_kind"][:, [1, 0]]
        return b
    for object_clues in (False, True):
        torch.manual_seed(0)
        cfg = small_config(object_clues=object_clues)
        model = MCD(cfg).eval()
        batch = make_batch(cfg, B=2, K=3)
        batch["objects_mask"][:] = True
        same = torch.allclose(run(model, batch).logits, run(model, swapped(batch)).logits, atol=1e-6)
        assert same is not object_clues


# --- overfitting --------------------------------------------------------------------------------------------
def test_overfits_32_random_samples():
    """Random features and labels: reaching 100% train accuracy shows losses and gradients are wired."""
    torch.manual_seed(0)
    cfg = small_config(d=32, T=4, P=4)
    model = MCD(cfg)
    batch = make_batch(cfg, B=32, L=4, K=2, seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    accuracy, step = 0.0, 0
    for step in range(1, 301):
        out = run(model, batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if step % 10 == 0:
            with torch.no_grad():
                model.eval()
                accuracy = (run(model, batch).logits.argmax(-1) == batch["labels"]).float().mean().item()
                model.train()
            if accuracy == 1.0:
                break
    assert accuracy == 1.0, f"student train accuracy {accuracy:.2f} after {step} steps"


# --- input validation -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("change,message", [
    (lambda b, c: b.update(visual=torch.randn(2, c.T + 1, c.P, c.visual_dim)), "visual must be"),
    (lambda b, c: b.update(audio=torch.randn(2, c.T, c.audio_dim + 1)), "audio must be"),
    (lambda b, c: b.update(question=torch.randn(2, 5, c.text_dim - 1)), "question must be"),
    (lambda b, c: b.update(visual=torch.randn(3, c.T, c.P, c.visual_dim)), "must be 1, the question batch"),
    (lambda b, c: b["question_mask"].fill_(False), "at least one real token"),
    (lambda b, c: b.update(question_mask=torch.ones(2, 4, dtype=torch.bool)), "question_mask must have shape"),
    (lambda b, c: b.update(question_mask=torch.ones(2, 5)), "bool"),
    (lambda b, c: b.update(objects_kind=torch.full((2, 3), 2)), "objects_kind values"),
    (lambda b, c: b.update(labels=torch.tensor([0, c.num_answers])), "labels must be answer indices"),
    (lambda b, c: b.update(labels=torch.tensor([0.0, 1.0])), "labels must be an integer tensor"),
    (lambda b, c: b.update(video_index=torch.zeros(3, dtype=torch.long)), "video_index must be"),
])
def test_bad_inputs_raise_clear_errors(change, message):
    cfg = small_config()
    batch = make_batch(cfg, B=2)
    change(batch, cfg)
    with pytest.raises(MCDInputError, match=message):
        run(MCD(cfg), batch)


# --- config -------------------------------------------------------------------------------------------------------
def test_config_json_round_trip(tmp_path):
    cfg = small_config(hierarchy="low", kd_mode="nce", use_audio=False, lambda_kd=2)
    assert isinstance(cfg.lambda_kd, float)
    assert MCDConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    cfg.save_json(tmp_path / "m.json")
    assert MCDConfig.load_json(tmp_path / "m.json") == cfg
    assert MCDConfig.from_dict({}) == MCDConfig()  # missing keys take defaults
    assert {f.name for f in dataclasses.fields(MCDConfig)} == set(cfg.to_dict())


def test_flat_extension_switches_of_format1_configs_are_nested():
    """Format-1 checkpoints and older recipes hold extension switches at the top level; reading them gives the
    nested config, which round-trips, and an extension left on by a removed switch cannot be read silently."""
    flat = {"d": 32, "n_heads": 4, "clue_gate": True, "object_clues": True, "object_grounding": True,
            "grounding_classes": 3, "grounded_expert": True, "expert_type_weights": {"Audio/Counting": 0.5},
            "hops": 1, "question_blocks": 0, "sounding_patches": False}
    cfg = MCDConfig.from_dict(flat)
    assert cfg.extensions.clue_gate and cfg.extensions.object_clues and not cfg.extensions.object_readout
    g = cfg.extensions.grounding
    assert (g.enabled, g.classes, g.expert, g.expert_type_weights) == (True, 3, True, {"Audio/Counting": 0.5})
    assert MCDConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.extensions.any and not MCDConfig().extensions.any
    with pytest.raises(ConfigError, match="sounding_patches=True is no longer supported"):
        MCDConfig.from_dict({"sounding_patches": True})


@pytest.mark.parametrize("data,message", [
    ({"d": 256, "hiden": 3}, "unknown MCDConfig key.*hiden"),
    ({"d": "256"}, "d must be int"),
    ({"hints": 1}, "hints must be bool"),
    ({"d": 30, "n_heads": 4}, "divisible by n_heads"),
    ({"kd_mode": "l2"}, "kd_mode must be one of"),
    ({"hierarchy": "middle"}, "hierarchy must be one of"),
    ({"frame_features": False, "hierarchy": "high"}, "frame_features=false needs the patch tokens"),
    ({"text_objects": "all"}, "text_objects must be one of"),
    ({"dropout": 1.0}, "dropout must be in"),
    ({"T": 0}, "T must be >= 1"),
    ({"hops": 2}, "hops=2 is no longer supported"),
    ({"question_blocks": 1}, "question_blocks=1 is no longer supported"),
    ({"object_readout": True}, "object_readout needs object_clues"),
    ({"extensions": {"object_readout": True}}, "object_readout needs object_clues"),
    ({"extensions": {"grounding": {"expert": True}}}, "grounding.expert needs grounding.enabled"),
    ({"extensions": {"gate": True}}, "unknown ExtensionConfig key.*gate"),
])
def test_config_rejects_bad_values(data, message):
    with pytest.raises(ConfigError, match=message):
        MCDConfig.from_dict(data)


def test_config_load_json_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        MCDConfig.load_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        MCDConfig.load_json(tmp_path / "bad.json")
