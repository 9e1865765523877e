"""`mcd train --config configs/NAME.json`: the plain training loop (nanoGPT-style: no framework).

Adam with linear warm-up and cosine decay, gradient clipping, the best-on-val checkpoint, a JSONL log, resume from
`OUT/last.pt`, seeds, and optionally a moving average of the weights (`train.ema`, `mcd/training/ema.py`) that is what gets
evaluated and saved.

Device (`--device`, else the recipe's `train.device`, default "auto": CUDA when present; mcd/device.py): the
model, its optimizer state and every batch live there; on CUDA the loaders pin their batches and the copies are
non-blocking, the loss sums stay on the GPU until the epoch ends (no sync per step), and `train.amp="bf16"` runs
the forward under bf16 autocast where the card supports it (float32 elsewhere, said once on stderr).

Data parallel through `torchrun`: gloo on the CPU, nccl on CUDA with one process per GPU (LOCAL_RANK picks it).
The ranks share out the clips of each batch of one process (mcd.data.dataset.VideoGroupedBatches), so a run makes
the same optimizer steps over the same questions however many processes share it; rank 0 evaluates, logs and
saves, with the other ranks' threads while they wait. `train.processes > 1` makes `mcd train` launch the ranks
itself (on CUDA: as many as GPUs to use). Why two processes on a 2-core machine: this model's operations are too
small for two threads to split well, and one single-threaded process per core makes an epoch of the shipped recipe
about a fifth faster (`README.md`, must-show 5).
"""
from __future__ import annotations

import copy

import argparse
import contextlib
import datetime
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mcd.model.config import MCDConfig, grounding_section
from mcd.task.vocab import INSTRUMENTS
from mcd.data.dataset import QADataset, record_objects
from mcd.data.features import FeatureCache
from mcd.synth.grounding import GROUNDING_INSTRUMENTS, GroundingError, SceneGrounding
from mcd.data.mirror import MirrorError, grid_side, mirror_record
from mcd.data.music_avqa import load_annotations
from mcd.data.text_bank import TextBank
from mcd.device import DeviceError, add_device_argument, autocast, configure_cuda, move, resolve_device
from mcd.training.ema import WeightAverage
from mcd.evaluation.inference import accuracy, prediction_rows
from mcd.model.mcd import MCD
from mcd.training.recipe import Recipe, RecipeError, load_recipe
from mcd.training.scene_deletion import FaithfulnessConfig, FaithfulnessError, SceneDeletion, named_player_cells


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up then cosine decay to 10% of the base rate."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class DistEnv:
    """Rank/world of this process; a no-op outside torchrun. The process group is gloo for a CPU `device` and
    nccl for a CUDA one (whose GPU, cuda:LOCAL_RANK, the caller chose with `rank_device`)."""

    def __init__(self, device: torch.device | None = None):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.enabled = self.world_size > 1
        self.device = device or torch.device("cpu")
        self.backend = "nccl" if self.device.type == "cuda" else "gloo"
        if self.enabled and not torch.distributed.is_initialized():
            # the other ranks wait at a barrier while rank 0 evaluates and saves (its first best also reads every
            # training clip's features for the OOD statistics): nccl's 10-minute default is too short for that
            torch.distributed.init_process_group(backend=self.backend, timeout=datetime.timedelta(hours=1))

    @staticmethod
    def rank_device(device: torch.device) -> torch.device:
        """The device of this rank: under torchrun on CUDA one GPU per process, cuda:LOCAL_RANK; else `device`."""
        if device.type != "cuda" or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return device
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise DeviceError(f"rank {local} of this machine has no GPU of its own ({torch.cuda.device_count()} "
                              "CUDA devices): run at most one process per GPU")
        return torch.device("cuda", local)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def union(self, names: list[str]) -> list[str]:
        """The sorted union of every rank's `names` (every rank must call it)."""
        if not self.enabled:
            return sorted(set(names))
        gathered: list = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, names)
        return sorted(set().union(*gathered))

    @contextlib.contextmanager
    def main_rank_threads(self):
        """On rank 0, for work the other ranks wait for at a barrier: their threads too (one each under torchrun)."""
        before = torch.get_num_threads()
        if self.enabled and self.is_main:
            torch.set_num_threads(before * self.world_size)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def build_data(recipe: Recipe, text_encoder, splits: tuple[str, ...]):
    """Records per split, a feature loader and one TextBank over all their questions."""
    root = Path(recipe.data.root)
    records = {s: load_annotations(root / f"avqa-{s}.json") for s in splits}
    if recipe.data.format == "cache":
        loader = FeatureCache(recipe.data.features).load
    elif recipe.data.format == "released":
        from mcd.data.released import ReleasedFeatures

        loader = ReleasedFeatures(recipe.data.audio_dir, recipe.data.visual_dir, recipe.data.spatial_dir,
                                  T=recipe.model.get("T", 10))
    else:
        raise ValueError(f"data.format must be 'cache' or 'released', not {recipe.data.format!r}")
    every = [r for rs in records.values() for r in rs]
    if recipe.train.mirror:  # the mirrored training questions are asked too, so the bank must know them
        every += [mirror_record(r) for r in records.get(recipe.data.train_split, [])]
    bank = TextBank(text_encoder, [r.question for r in every], [record_objects(r) for r in every])
    return records, loader, bank


def model_config(model: dict, dims: dict) -> MCDConfig:
    """A recipe's `model` section with the feature dims of the encoders, and the grounding head's class count
    when the section switches keyword grounding on (the instruments it names come from the data)."""
    data = copy.deepcopy(model)
    if grounding_section(model).get("enabled"):
        data["extensions"]["grounding"].setdefault("classes", len(GROUNDING_INSTRUMENTS))
    return MCDConfig.from_dict({**data, **dims})


def known_instruments(records, grounding) -> dict:
    """What the checkpoint records about instruments: those its training questions named or answered (the
    demo refuses questions about any other), and the grounding head's classes in head order when it has one."""
    seen = {w for r in records for w in (*r.keywords, r.answer)}
    out = {"instruments": [i for i in INSTRUMENTS if i in seen]}
    if grounding is not None:
        out["grounding_instruments"] = list(GROUNDING_INSTRUMENTS)
    return out


def scene_grounding(recipe: Recipe, T: int) -> SceneGrounding | None:
    """The scene graphs that teach keywords their referents (model.extensions.grounding.enabled), else None.
    T: segments per clip of the features (`feature_dims`)."""
    if not grounding_section(recipe.model).get("enabled"):
        return None
    if recipe.train.mirror:
        raise RecipeError("model.extensions.grounding and train.mirror cannot be combined: the scene graphs "
                          "describe the clips unmirrored")
    try:
        return SceneGrounding.from_benchmark(recipe.data.root, T)
    except GroundingError as exc:
        raise RecipeError(f"model.extensions.grounding: {exc}") from None


def scene_deletion(recipe: Recipe, records, grounding: SceneGrounding | None, P: int) -> SceneDeletion | None:
    """The faithfulness terms of `train.faithfulness` over the training `records`, else None. They delete the
    players the scene graphs place, so they need the grounding extension's graphs."""
    if recipe.train.faithfulness is None:
        return None
    try:
        config = FaithfulnessConfig.from_dict(recipe.train.faithfulness)
        if grounding is None:
            raise FaithfulnessError("train.faithfulness needs the scene graphs of model.extensions.grounding "
                                    "(enabled: true)")
        return SceneDeletion(config, named_player_cells(records, grounding, P))
    except FaithfulnessError as exc:
        raise RecipeError(str(exc)) from None


def initial_weights(model: MCD, path: str) -> None:
    """Load `train.init`, a checkpoint whose model must have exactly this recipe's architecture (a fine-tune)."""
    from mcd.model.checkpoint import CheckpointError, load_checkpoint

    try:
        source = load_checkpoint(path).model
    except CheckpointError as exc:
        raise RecipeError(f"train.init: {exc}") from None
    try:
        model.load_state_dict(source.state_dict(), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise RecipeError(f"train.init: {path} is not a checkpoint of this recipe's model "
                          f"({first[1].strip() if len(first) > 1 else first[0]})") from None


def feature_dims(load_features, video_id: str, text_dim: int) -> dict:
    """Feature widths and T read off one cached video, so the model always matches its data (released MUSIC-AVQA
    features and our encoders differ in width)."""
    feats = load_features(video_id)
    T, P, Dv = feats["visual"].shape
    return {"visual_dim": Dv, "audio_dim": feats["audio"].shape[-1], "text_dim": text_dim, "T": T, "P": P}


def unused_parameters(model: torch.nn.Module, loader, device: torch.device | None = None) -> list[str]:
    """Names of the trainable parameters that a training step of the loader's first batch leaves without a gradient
    (a variant's idle layers: with `model.lambda_kd=0`, the approximation layers that learn only from the
    distillation). The probe runs on a fork of the random state (starting a DataLoader iterator draws from it too)
    and its gradients are dropped, so the run that follows is the one it would have been."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        inputs = next(iter(loader)).model_inputs()
        model(**(move(inputs, device) if device is not None else inputs)).loss.backward()
    names = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    model.zero_grad(set_to_none=True)
    return names


def evaluated_weights(model: torch.nn.Module, average: WeightAverage | None):
    """The block in which `model` holds the weights training evaluates and saves: the moving average when the
    recipe keeps one (`train.ema`), else the optimizer's own."""
    return average.applied(model) if average is not None else contextlib.nullcontext()


def train(recipe: Recipe, resume: bool = False, progress: bool = True, device: str | None = None) -> dict:
    """Train per `recipe`; returns the best val metrics. Writes OUT/best (checkpoint), OUT/last.pt, OUT/log.jsonl.
    `device` (auto, cpu, cuda, cuda:N) overrides the recipe's `train.device`."""
    from mcd.model.checkpoint import save_checkpoint
    from mcd.data.extract import load_encoders

    cfg = recipe.train
    main_rank = int(os.environ.get("RANK", "0")) == 0
    device = DistEnv.rank_device(resolve_device(device or cfg.device, announce=main_rank,
                                                what="--device" if device else "train.device"))
    configure_cuda(device)
    on_cuda = device.type == "cuda"
    forward_context = lambda: autocast(device, cfg.amp)   # noqa: E731 (a fresh context per step)
    autocast(device, cfg.amp, announce=main_rank)         # checks the value; says when bf16 is not used
    dist = DistEnv(device)
    seed_everything(cfg.seed)
    out = Path(recipe.out)
    encoders = load_encoders(recipe.encoders, device)   # the text encoder encodes every question there
    records, load_features, bank = build_data(recipe, encoders.text, (recipe.data.train_split, recipe.data.val_split))
    dims = feature_dims(load_features, records[recipe.data.train_split][0].video_id, encoders.text.dim)
    grounding = scene_grounding(recipe, dims["T"])
    train_set = QADataset(records[recipe.data.train_split], load_features, bank, grounding)
    val_set = QADataset(records[recipe.data.val_split], load_features, bank)
    val_answers = {r.question_id: r.answer for r in val_set.records}

    config = model_config(recipe.model, dims)
    if cfg.mirror:
        try:
            grid_side(config.P)
        except MirrorError as exc:
            raise RecipeError(f"train.mirror: {exc}") from exc
    faithfulness = scene_deletion(recipe, train_set.records, grounding, dims["P"])
    model = MCD(config)
    if cfg.init is not None:
        initial_weights(model, cfg.init)
    model = model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel for every parameter's update; the per-tensor loop was 10% of a CPU step of the recipe
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    # each rank takes its share of the clips of every batch of one process
    train_loader = train_set.loader(cfg.batch_size, shuffle=True, seed=cfg.seed, num_workers=cfg.num_workers,
                                    rank=dist.rank, world_size=dist.world_size, mirror=cfg.mirror,
                                    pin_memory=on_cuda)
    val_loader = val_set.loader(cfg.batch_size, shuffle=False, num_workers=cfg.num_workers, pin_memory=on_cuda)
    total_steps = cfg.epochs * len(train_loader)
    try:
        average = WeightAverage(model, cfg.ema) if cfg.ema is not None else None
    except ValueError as exc:
        raise RecipeError(str(exc)) from exc

    state = {"epoch": 0, "step": 0, "best_acc": -1.0, "best": None, "stale": 0}
    last_path = out / "last.pt"
    resumed = resume and last_path.exists()
    if resumed:
        saved = torch.load(last_path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = json.loads(saved["state"])
        torch.set_rng_state(saved["rng"])
        if on_cuda and "cuda_rng" in saved:
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        if average is None and "ema" in saved:
            raise RecipeError(f"{last_path} was saved with train.ema={saved['ema']['decay']}; resume it with the same "
                              "value, or start afresh")
        if average is not None:
            if "ema" not in saved:
                raise RecipeError(f"{last_path} was saved without train.ema; resume it without, or start afresh")
            try:
                average.load_state_dict(saved["ema"])
            except ValueError as exc:
                raise RecipeError(f"{last_path}: {exc}") from exc
    ddp_model = model
    if dist.enabled:
        # Layers no step trains are frozen, which is how one process leaves them (AdamW skips a parameter without
        # a gradient). DDP's own search (`find_unused_parameters`) cannot see them: they feed the forward's
        # outputs, not the loss, so DDP waited for their gradients and failed at the second step. It also walked
        # the autograd graph every step, 5% of a step of the shipped recipe (119.7 against 113.8 s an epoch).
        # `static_graph=True` was 5-8% faster still but changed the training (summed loss after 60 steps of the
        # shipped recipe 1306.7 against 1293.75 for every other setting, which agree to the last digit).
        train_loader.batch_sampler.set_epoch(state["epoch"])
        for name in dist.union(unused_parameters(model, train_loader, device)):
            model.get_parameter(name).requires_grad_(False)
        ddp_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if on_cuda else None,
                                                              gradient_as_bucket_view=True)
    if dist.is_main:   # only now: a recipe refused above leaves no folder behind
        out.mkdir(parents=True, exist_ok=True)
    # a fresh run starts its own log: appending would splice an older run's epochs into this one's
    log = open(out / "log.jsonl", "a" if resumed else "w") if dist.is_main else None
    started = time.perf_counter()
    for epoch in range(state["epoch"], cfg.epochs):
        train_loader.batch_sampler.set_epoch(epoch)
        if dist.enabled:
            # each rank its own dropout stream (the same seed would drop the same elements of every rank's clips),
            # and a resumed run the stream it would have had (last.pt holds rank 0's state only)
            torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1_009 + dist.rank)
        model.train()
        # float64 sums, on the device: the same additions as Python floats, without a GPU sync every step
        sums: dict[str, torch.Tensor] = {}
        n_batches = 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not (progress and dist.is_main), leave=False)
        for batch in bar:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(state["step"], total_steps, cfg.warmup_steps, cfg.lr)
            if on_cuda:
                batch = batch.to(device, non_blocking=True)
            inputs = batch.model_inputs()
            with forward_context():
                out_ = ddp_model(**inputs)
                loss, extra = out_.loss, {}
                if faithfulness is not None:
                    # the edited copies go through the module itself: DDP allows one forward per backward, and
                    # the shared parameters' gradients are summed before its hooks reduce them
                    term, extra = faithfulness.loss(model, out_, batch, inputs)
                    loss = loss + term
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            if average is not None:
                average.update(model)
            state["step"] += 1
            n_batches += 1
            for k, v in {"loss": loss, **out_.losses, **extra}.items():
                v = v.detach().double()
                sums[k] = sums[k] + v if k in sums else v
            if not bar.disable and (n_batches % 10 == 1 or not on_cuda):
                bar.set_postfix(loss=f"{float(sums['loss']) / n_batches:.3f}")
        sums = {k: float(v) for k, v in sums.items()}
        state["epoch"] = epoch + 1
        with dist.main_rank_threads():  # the other ranks wait at the barrier below
            if dist.is_main:
                raw_acc = None
                if average is not None:  # the raw weights' score too, so the log shows what the average adds
                    raw_acc = accuracy(prediction_rows(model, val_loader, head=cfg.head), val_answers)
                with evaluated_weights(model, average):
                    rows = prediction_rows(model, val_loader, head=cfg.head)
                val_acc = accuracy(rows, val_answers)
                teacher_acc = accuracy(rows, val_answers, key="teacher_pred")
                entry = {"epoch": epoch + 1, "step": state["step"], "lr": optimizer.param_groups[0]["lr"],
                         **{f"train_{k}": v / max(1, n_batches) for k, v in sums.items()},
                         "val_acc": val_acc, "val_teacher_acc": teacher_acc,
                         **({"val_acc_raw": raw_acc} if raw_acc is not None else {}),
                         "elapsed_s": round(time.perf_counter() - started, 1)}
                log.write(json.dumps(entry) + "\n")
                log.flush()
                if progress:
                    print(f"epoch {epoch + 1}: loss {entry['train_loss']:.4f} val acc {val_acc:.4f} "
                          f"(teacher {teacher_acc:.4f})" + (f" raw weights {raw_acc:.4f}" if raw_acc is not None
                                                             else ""), flush=True)
                if val_acc > state["best_acc"]:
                    state.update(best_acc=val_acc, best=entry, stale=0)
                    with evaluated_weights(model, average):
                        save_checkpoint(out / "best", model,
                                        extra_config={"encoders": encoders.specs(), "T": config.T,
                                                      **known_instruments(train_set.records, grounding),
                                                      "provenance": {"recipe": recipe.to_dict(), "epoch": epoch + 1,
                                                                     "val_acc": val_acc, "head": cfg.head}},
                                        extra_tensors=encoders.state_tensors(),
                                        metrics={"val": {"acc": val_acc, "teacher_acc": teacher_acc,
                                                         "epoch": epoch + 1}})
                else:
                    state["stale"] += 1
                tmp = last_path.with_suffix(".tmp")
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "state": json.dumps(state), "rng": torch.get_rng_state(),
                            **({"cuda_rng": torch.cuda.get_rng_state(device)} if on_cuda else {}),
                            **({"ema": average.state_dict()} if average is not None else {})}, tmp)
                os.replace(tmp, last_path)
        stop = torch.tensor([int(cfg.patience is not None and state["stale"] >= cfg.patience)],
                            device=device if dist.backend == "nccl" else "cpu")
        if dist.enabled:
            torch.distributed.broadcast(stop, 0)
        dist.barrier()
        if stop.item():
            break
    if log:
        log.close()
    result = {"best_val_acc": state["best_acc"], "best": state["best"], "steps": state["step"],
              "seconds": round(time.perf_counter() - started, 1), "world_size": dist.world_size,
              "device": str(device)}
    dist.close()
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="recipe JSON (configs/*.json)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe field, e.g. --set train.epochs=5 --set model.d=128")
    p.add_argument("--out", help="output folder (default: the recipe's `out`)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_argument(p, default=None, help_extra="; overrides train.device")


def launch(processes: int, args: argparse.Namespace) -> int:
    """Run this same `mcd train` as `processes` torchrun ranks on this machine and return their exit status. The
    cores are shared out (OMP_NUM_THREADS, unless set): one rank per core is what makes the processes pay."""
    argv = ["--config", str(args.config), *(f"--set={item}" for item in args.set)]
    argv += [f"--out={args.out}"] if args.out else []
    argv += ["--resume"] if args.resume else []
    argv += ["--quiet"] if args.quiet else []
    argv += [f"--device={args.device}"] if getattr(args, "device", None) else []
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "mcd", "train", *argv]
    return subprocess.run(command, env=env).returncode


def run(args: argparse.Namespace) -> int:
    from mcd.cli import CLIError

    overrides = list(args.set) + ([f"out={args.out}"] if args.out else [])
    try:
        recipe = load_recipe(args.config, overrides)
        processes = recipe.train.processes
        if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
            raise RecipeError(f"train.processes must be a whole number of at least 1, got {processes!r}")
        if recipe.train.amp not in ("off", "bf16"):
            raise RecipeError(f"train.amp must be 'off' or 'bf16', got {recipe.train.amp!r}")
        if recipe.train.faithfulness is not None:
            try:
                FaithfulnessConfig.from_dict(recipe.train.faithfulness)
            except FaithfulnessError as exc:
                raise RecipeError(str(exc)) from None
        if recipe.train.init is not None and not Path(recipe.train.init).is_dir():
            raise RecipeError(f"train.init: checkpoint folder not found: {recipe.train.init}")
        device = getattr(args, "device", None)
        # a bad or absent device fails here, before any work (and before torchrun starts ranks)
        resolve_device(device or recipe.train.device, what="--device" if device else "train.device")
        if processes > 1 and "WORLD_SIZE" not in os.environ:
            return launch(processes, args)
        result = train(recipe, resume=args.resume, progress=not args.quiet, device=device)
    except (RecipeError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from exc
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result))
    return 0
