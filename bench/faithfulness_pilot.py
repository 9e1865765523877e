"""Pilot for issue 31 (a negative result, kept so it can be re-run): fine-tune a checkpoint with an added
faithfulness loss and see whether "where it looked" becomes what the answer needs.

    python bench/faithfulness_pilot.py OUT --data DIR --cache DIR [--checkpoint checkpoints/mcd-synth]
        [--lam 1] [--lam-rand 0] [--margin 1] [--epochs 1] [--lr 1e-4] [--no-frame-features]

DIR: `mcd synth --splits train=0.9,val=0.1` clips with scene graphs; its features from the checkpoint's encoders
(`mcd extract --encoders CHECKPOINT`). The loss: the top-k cells of a shown-like map (referent query maps of the
keywords, else the type words' maps, else the question tokens'; detached) are swapped with another clip's cells,
and softplus(lo_top - lo + margin) asks the gold answer's log-odds to fall by `margin` on visual and audio-visual
questions; `--lam-rand` adds KL(answer | answer with k random cells swapped). `--lam 0 --lam-rand 0` is the
control (the same fine-tune without it). `--no-frame-features` fine-tunes the model with its visual segment
tokens emptied (MCDConfig.frame_features), so the picture reaches the answer only through the patch tokens.
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
p.add_argument("--epochs", type=int, default=1)
p.add_argument("--lr", type=float, default=1e-4)
p.add_argument("--k", type=int, default=3)
p.add_argument("--margin", type=float, default=1.0)
p.add_argument("--no-frame-features", action="store_true",
               help="fine-tune with MCDConfig.frame_features off: the picture reaches the answer only through "
                    "attention over the patch tokens")
args = p.parse_args()

seed_everything(0)
torch.set_num_threads(1)
ckpt = load_checkpoint(args.checkpoint)
model = ckpt.model
if args.no_frame_features:
    model.config.frame_features = False
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


def val_acc():
    model.eval()
    acc = accuracy(prediction_rows(model, val_loader), val_answers)
    model.train()
    return acc


def log_odds(logits, y):
    lp = logits.log_softmax(-1)
    pick = lp.gather(1, y[:, None])[:, 0]
    rest = lp.masked_fill(F.one_hot(y, lp.shape[-1]).bool(), float("-inf")).logsumexp(-1)
    return pick - rest


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
