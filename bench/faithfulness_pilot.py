"""Pilots for issue 31, kept so they can be re-run: fine-tune a checkpoint with an added faithfulness loss and
see whether "where it looked" becomes what the answer needs.

    python bench/faithfulness_pilot.py OUT --data DIR --cache DIR [--checkpoint checkpoints/mcd-synth]
        [--lam 1] [--lam-rand 0] [--margin 1] [--epochs 1] [--lr 1e-4] [--no-frame-features]
        [--lam-context 0] [--lam-oracle 0] [--oracle-visual-only] [--lam-audio-context 0] [--lam-audio-oracle 0]
        [--audio-baseline clip-mean|silence] [--lam-audio-rrr 0] [--referent-audio-detector]

DIR: `mcd synth --splits train=0.9,val=0.1` clips with scene graphs; its features from the checkpoint's encoders
(`mcd extract --encoders CHECKPOINT`). The loss: the top-k cells of a shown-like map (referent query maps of the
keywords, else the type words' maps, else the question tokens'; detached) are swapped with another clip's cells,
and softplus(lo_top - lo + margin) asks the gold answer's log-odds to fall by `margin` on visual and audio-visual
questions; `--lam-rand` adds KL(answer | answer with k random cells swapped). `--lam-context` and `--lam-oracle`
use the scene graphs instead of a map, on questions whose keywords name visible players: KL(answer | answer with
3-24 random cells outside those players replaced by the clip mean) teaches the answer to ignore the rest of the
picture, and softplus(lo_players - lo + margin) asks it to fall when the players' own cells are the clip mean;
`--lam-audio-*` do the same with the seconds a named source sounds in, set to the clip mean or, with
`--audio-baseline silence`, muted; `--lam-audio-rrr` penalises the answer's input gradient on the seconds no named
source sounds in (the log-odds change of setting one to that baseline, linearised, squared). `--lam 0` without the
others is the control (the same fine-tune without them). `--no-frame-features` fine-tunes the model with its visual
segment tokens emptied (MCDConfig.frame_features), so the picture reaches the answer only through the patch tokens.
Writes OUT as a checkpoint (the source's config, encoders and ood kept) for `bench/clues.py --checkpoint OUT`. Results: docs/clues.md.
"""
import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mcd.data.extract import load_encoders
from mcd.model.checkpoint import RESERVED_KEYS, load_checkpoint, save_checkpoint
from mcd.task.questions import QUESTION_TYPES
from mcd.training.recipe import load_recipe
from mcd.training.train import build_data, lr_at, scene_grounding, seed_everything
from mcd.training.scene_deletion import TEXT_INPUTS, log_odds, mean_filled, named_player_cells
from mcd.data.dataset import QADataset
from mcd.evaluation.inference import accuracy, prediction_rows

p = argparse.ArgumentParser()
p.add_argument("out", type=Path)
p.add_argument("--checkpoint", type=Path, default=Path("checkpoints/mcd-synth"))
p.add_argument("--recipe", type=Path, default=Path("configs/synth-default.json"))
p.add_argument("--data", type=Path, required=True)
p.add_argument("--cache", type=Path, required=True)
p.add_argument("--lam", type=float, default=1.0)
p.add_argument("--lam-rand", type=float, default=0.0)
p.add_argument("--lam-context", type=float, default=0.0,
               help="weight of KL(answer | answer with random cells off the named players deleted)")
p.add_argument("--lam-oracle", type=float, default=0.0,
               help="weight of the margin loss on deleting the named players' own cells")
p.add_argument("--oracle-visual-only", action="store_true",
               help="apply --lam-oracle to visual and audio-visual questions only (default: every type)")
p.add_argument("--lam-audio-context", type=float, default=0.0,
               help="weight of KL(answer | answer with the seconds no named source sounds in deleted)")
p.add_argument("--lam-audio-oracle", type=float, default=0.0,
               help="weight of the margin loss on deleting the seconds a named source sounds in")
p.add_argument("--lam-audio-rrr", type=float, default=0.0,
               help="weight of the input-gradient penalty on the seconds no named source sounds in: the gold "
                    "answer's log-odds change, linearised, when one such second becomes the --audio-baseline, squared")
p.add_argument("--audio-baseline", default="clip-mean", choices=("clip-mean", "silence"),
               help="what the --lam-audio-* terms turn deleted seconds into: the clip's mean second, or the audio "
                    "encoders' features of a silent second (bench/clues.py --sound-baseline)")
p.add_argument("--epochs", type=int, default=1)
p.add_argument("--lr", type=float, default=1e-4)
p.add_argument("--k", type=int, default=3)
p.add_argument("--margin", type=float, default=1.0)
p.add_argument("--no-frame-features", action="store_true",
               help="fine-tune with MCDConfig.frame_features off: the picture reaches the answer only through "
                    "attention over the patch tokens")
p.add_argument("--referent-audio-detector", action="store_true",
               help="fine-tune with grounding.referent_audio 'detector': the referent query listens with a sigmoid "
                    "per second trained on the seconds its instrument sounds in, summed instead of averaged")
args = p.parse_args()

seed_everything(0)
torch.set_num_threads(1)
ckpt = load_checkpoint(args.checkpoint)
model = ckpt.model
if args.no_frame_features:
    model.config.frame_features = False
if args.referent_audio_detector:
    model.config.extensions.grounding.referent_audio = "detector"
    model.keywords.referent_query.audio_detector = True
recipe = load_recipe(args.recipe, [f"data.root={args.data}", f"data.features={args.cache}",
                                   f"encoders={args.checkpoint}"])
enc = load_encoders(recipe.encoders)
records, load_features, bank = build_data(recipe, enc.text, ("train", "val"))
grounding = scene_grounding(recipe, 10)
train_set = QADataset(records["train"], load_features, bank, grounding)
val_set = QADataset(records["val"], load_features, bank)
val_answers = {r.question_id: r.answer for r in val_set.records}
loader = train_set.loader(64, shuffle=True, seed=0)
val_loader = val_set.loader(64, shuffle=False)
VISUAL_TYPES = torch.tensor([not t.startswith("Audio/") for t in QUESTION_TYPES])


def named_sounding_seconds(records, grounding) -> dict[int, torch.Tensor]:
    """question id -> bool [T]: the seconds (segments) in which any source its keywords name sounds; questions
    naming no sounding source are left out."""
    out = {}
    for r in records:
        sounding = None
        for word in r.keywords:
            a = grounding.attributes(r.video_id, word)
            if a is not None and a["sounds"] > 0:
                s = a["segments"] > 0
                sounding = s if sounding is None else sounding | s
        if sounding is not None and sounding.any():
            out[r.question_id] = sounding
    return out


def scene_terms(out, inputs, idx, visual2, audio2):
    """The scene-graph terms of the batch rows `idx`, whose inputs with the context deleted and with the referent
    deleted are stacked in `visual2`/`audio2` ([2n,...]): per row, KL(answer | context deleted), the margin
    softplus(lo_deleted - lo + margin) of the gold answer's log-odds, and the log-odds drops of both deletions."""
    n = len(idx)
    rest = {key: torch.cat([v[idx], v[idx]]) for key, v in inputs.items() if key in TEXT_INPUTS}
    out2 = model(visual=visual2, audio=audio2, **rest)
    y = inputs["labels"][idx]
    ref = out.logits[idx].detach()
    kl = F.kl_div(out2.logits[:n].log_softmax(-1), ref.log_softmax(-1), log_target=True, reduction="none").sum(-1)
    lo0, lo_ctx, lo_del = log_odds(ref, y), log_odds(out2.logits[:n], y), log_odds(out2.logits[n:], y)
    return kl, F.softplus(lo_del - lo0 + args.margin), lo0 - lo_ctx, lo0 - lo_del


def scene_rows(batch, inputs, table):
    """(row indices, their masks from `table` (question id -> mask), their clips' visual and audio) for the batch
    questions `table` holds; None if it holds none."""
    rows = [i for i, q in enumerate(batch.question_ids) if q in table]
    if not rows:
        return None
    idx = torch.tensor(rows)
    clips = inputs["video_index"][idx]
    masks = torch.stack([table[batch.question_ids[i]] for i in rows])
    return idx, masks, inputs["visual"][clips], inputs["audio"][clips]


def weighted_mean(x, w):
    return (x * w).sum() / w.sum().clamp(min=1)


PLAYER_CELLS = named_player_cells(records["train"], grounding, 49) if args.lam_context or args.lam_oracle else {}
SOUNDING = (named_sounding_seconds(records["train"], grounding)
            if args.lam_audio_context or args.lam_audio_oracle or args.lam_audio_rrr else {})
if SOUNDING:
    print(f"{len(SOUNDING)} of {len(records['train'])} training questions name a sounding source", flush=True)
SILENT = (enc.audio.encode(torch.zeros(1, 16000)).float()[None] if args.audio_baseline == "silence" else None)
AUDIO_TYPES = torch.tensor([not t.startswith("Visual/") for t in QUESTION_TYPES])
if PLAYER_CELLS:
    print(f"{len(PLAYER_CELLS)} of {len(records['train'])} training questions name a visible player", flush=True)


def val_acc():
    model.eval()
    acc = accuracy(prediction_rows(model, val_loader), val_answers)
    model.train()
    return acc


def shown_like(out, inputs):
    """[B,P] the map the demo would show, approximately: referent query maps of the real keywords, else the type
    words' own maps, else the question tokens' visual_low; summed over time."""
    oc = out.object_clues
    B = inputs["question"].shape[0]
    kind, mask = inputs["objects_kind"], inputs["objects_mask"]
    kw = (mask & (kind == 0)).float()
    tw = (mask & (kind == 1)).float()
    ref = oc["referent_visual"].sum(2)            # [B,K,P]
    own = oc["visual_low"].sum(2)
    m_kw = (ref * kw[..., None]).sum(1)
    m_tw = (own * tw[..., None]).sum(1)
    m_q = out.clues["visual_low"].sum(1)
    has_kw, has_tw = kw.sum(1) > 0, tw.sum(1) > 0
    return torch.where(has_kw[:, None], m_kw, torch.where(has_tw[:, None], m_tw, m_q)).detach()


def swapped(visual_q, donor, cells):
    """visual_q [B,T,P,D] with `cells` [B,k] of every frame replaced by the same cells of `donor` (another clip)."""
    B = visual_q.shape[0]
    mask = torch.zeros(B, visual_q.shape[2], dtype=torch.bool)
    mask[torch.arange(B)[:, None], cells] = True
    return torch.where(mask[:, None, :, None], donor, visual_q)


print("val acc before", val_acc(), flush=True)
opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=args.lr, weight_decay=1e-4)
total = args.epochs * len(loader)
step = 0
model.train()
t0 = time.time()
for epoch in range(args.epochs):
    loader.batch_sampler.set_epoch(epoch)
    sums = {}
    for batch in loader:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, 20, args.lr)
        inputs = batch.model_inputs()
        out = model(**inputs)
        loss = out.loss
        if args.lam > 0 or args.lam_rand > 0:
            B = inputs["question"].shape[0]
            vi = inputs["video_index"]
            visual_q = inputs["visual"][vi]
            audio_q = inputs["audio"][vi]
            m = shown_like(out, inputs)
            top = m.topk(args.k, dim=1).indices
            rnd = torch.stack([torch.randperm(m.shape[1])[:args.k] for _ in range(B)])
            V = inputs["visual"].shape[0]
            donor = inputs["visual"][(vi + 1) % V]
            vis2 = torch.cat([swapped(visual_q, donor, top), swapped(visual_q, donor, rnd)])
            rest = {k: torch.cat([v, v]) for k, v in inputs.items()
                    if k in ("question", "question_mask", "objects", "objects_mask", "objects_kind", "question_type")}
            out2 = model(visual=vis2, audio=torch.cat([audio_q, audio_q]), **rest)
            y = inputs["labels"]
            lo0 = log_odds(out.logits, y).detach()
            lo_top, lo_rnd = log_odds(out2.logits[:B], y), log_odds(out2.logits[B:], y)
            vis_q = VISUAL_TYPES[inputs["question_type"].clamp(min=0)].float()
            l_top = (F.softplus(lo_top - lo0 + args.margin) * vis_q).sum() / vis_q.sum().clamp(min=1)
            l_rnd = F.kl_div(out2.logits[B:].log_softmax(-1), out.logits.detach().log_softmax(-1),
                             log_target=True, reduction="batchmean")
            loss = loss + args.lam * l_top + args.lam_rand * l_rnd
            for k, v in (("top", l_top), ("rnd", l_rnd), ("drop_top", (lo0 - lo_top).mean()),
                         ("drop_rnd", (lo0 - lo_rnd).mean())):
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        if args.lam_context > 0 or args.lam_oracle > 0:
            found = scene_rows(batch, inputs, PLAYER_CELLS)
            if found:
                idx, players, visual_q, audio_q = found   # players [n,P]
                n, P = players.shape
                # context: 3-24 random cells off the players
                score = torch.rand(n, P).masked_fill(players, 2.0)
                k = torch.randint(3, 25, (n, 1))
                context = (score.argsort(1).argsort(1) < k) & ~players
                kl, margin, drop_ctx, drop_del = scene_terms(
                    out, inputs, idx, torch.cat([mean_filled(visual_q, context), mean_filled(visual_q, players)]),
                    torch.cat([audio_q, audio_q]))
                qt = inputs["question_type"][idx].clamp(min=0)
                w = VISUAL_TYPES[qt].float() if args.oracle_visual_only else torch.ones(n)
                l_ctx, l_or = kl.mean(), weighted_mean(margin, w)
                loss = loss + args.lam_context * l_ctx + args.lam_oracle * l_or
                for key, v in (("ctx", l_ctx), ("oracle", l_or), ("drop_players", drop_del.mean()),
                               ("drop_context", drop_ctx.mean())):
                    sums[key] = sums.get(key, 0.0) + float(v.detach())
        if args.lam_audio_context > 0 or args.lam_audio_oracle > 0:
            found = scene_rows(batch, inputs, SOUNDING)
            if found:
                idx, sounding, visual_q, audio_q = found   # sounding [n,T]
                filler = audio_q.mean(dim=1, keepdim=True) if SILENT is None else SILENT.expand_as(audio_q)
                kl, margin, _, drop_del = scene_terms(
                    out, inputs, idx, torch.cat([visual_q, visual_q]),
                    torch.cat([torch.where(~sounding[..., None], filler, audio_q),
                               torch.where(sounding[..., None], filler, audio_q)]))
                silent = (~sounding).any(1).float()   # a context to delete exists
                qt = inputs["question_type"][idx].clamp(min=0)
                l_actx, l_aor = weighted_mean(kl, silent), weighted_mean(margin, AUDIO_TYPES[qt].float())
                loss = loss + args.lam_audio_context * l_actx + args.lam_audio_oracle * l_aor
                for key, v in (("actx", l_actx), ("aoracle", l_aor), ("drop_sounding", drop_del.mean())):
                    sums[key] = sums.get(key, 0.0) + float(v.detach())
        if args.lam_audio_rrr > 0:
            found = scene_rows(batch, inputs, SOUNDING)
            if found:
                idx, sounding, visual_q, audio_q = found
                keep = AUDIO_TYPES[inputs["question_type"][idx].clamp(min=0)]
                idx, sounding, visual_q, audio_q = idx[keep], sounding[keep], visual_q[keep], audio_q[keep]
            if found and len(idx):
                audio_in = audio_q.detach().clone().requires_grad_(True)
                rest = {key: v[idx] for key, v in inputs.items() if key in TEXT_INPUTS}
                lo = log_odds(model(visual=visual_q, audio=audio_in, **rest).logits, inputs["labels"][idx])
                grad, = torch.autograd.grad(lo.sum(), audio_in, create_graph=True)
                # the log-odds drop of setting second t to the baseline (clip mean or silence), linearised: [n,T]
                base = audio_in.mean(dim=1, keepdim=True) if SILENT is None else SILENT
                drop = (grad * (audio_in - base)).sum(-1)
                silent = (~sounding).float()
                l_rrr = ((drop ** 2) * silent).sum() / silent.sum().clamp(min=1)
                loss = loss + args.lam_audio_rrr * l_rrr
                share = (drop.clamp(min=0) * sounding).sum(1) / drop.clamp(min=0).sum(1).clamp(min=1e-6)
                for key, v in (("rrr", l_rrr), ("drop_in", (drop * sounding).sum(1).mean()),
                               ("share_in", share.mean()), ("base_in", sounding.float().mean())):
                    sums[key] = sums.get(key, 0.0) + float(v.detach())
        sums["loss"] = sums.get("loss", 0.0) + float(out.loss.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            print(step, {k: round(v / 50, 3) for k, v in sums.items()}, round(time.time() - t0), flush=True)
            sums = {}
    print("epoch", epoch + 1, "val acc", val_acc(), round(time.time() - t0), flush=True)

model.eval()
extra = {k: v for k, v in ckpt.config.items() if k not in RESERVED_KEYS}
save_checkpoint(args.out, model, extra_config=extra, extra_tensors=ckpt.extra_tensors, metrics=ckpt.metrics)
print("saved", args.out)
