"""Where the tensors live: one `--device auto|cpu|cuda|cuda:N` option for every command, and the CUDA settings.

`resolve_device` turns the option into a `torch.device`. `auto` picks CUDA when torch sees a GPU and says which it
chose (one line on stderr); `cuda` without a usable GPU is a `DeviceError`, which the CLI prints as one line and
exits 2 (it is a CLIError). The model layer never imports this module: moving tensors is the callers' job (the
training loop, inference, the serving pipeline, extraction).

CUDA settings (`configure_cuda`), chosen deliberately:
- TF32 matmuls and convolutions ON (`torch.set_float32_matmul_precision("high")`, cudnn.allow_tf32): on Ampere
  and newer a float32 matmul runs on the tensor cores with a 10-bit mantissa, several times faster. MCD's layers are
  small attention blocks and linear maps whose training is already robust to bf16 (7-bit mantissa, `train.amp`),
  so TF32 costs no accuracy we can measure and "amp off" stays float32 storage and accumulation. Set
  MCD_CUDA_TF32=0 for strict float32 (e.g. to compare a GPU run with a CPU run number for number).
- cudnn.benchmark OFF for training and serving: video-grouped batches change shape every step (clips per batch,
  question lengths), and benchmark mode would re-time its kernels for every new shape; the model has no
  convolutions anyway. ON for feature extraction (`configure_cuda(fixed_shapes=True)`), whose CNN inputs are
  resized to one size and batched in equal chunks.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
from typing import Any, Callable

import torch

from mcd.cli import CLIError

CHOICES = "auto, cpu, cuda or cuda:N"
_SPEC = re.compile(r"(auto|cpu|cuda)(?::(\d+))?")


class DeviceError(CLIError, ValueError):
    """A device the option names that this machine does not have (or an option that names none)."""


def resolve_device(spec: str | torch.device | None = "auto", announce: bool = False,
                   what: str = "--device") -> torch.device:
    """`auto` (or None) -> cuda when available, else cpu; `cpu`; `cuda` (the current GPU); `cuda:N`.

    `announce`: print the choice of `auto` to stderr (`device: cpu (auto: CUDA is not available)`); `what`: the
    option's name in error messages (a recipe's `train.device`).
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    match = _SPEC.fullmatch(text)
    if not match or (match.group(2) is not None and match.group(1) != "cuda"):
        raise DeviceError(f"{what} {spec!r}: expected {CHOICES}")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if kind == "auto":
        device = torch.device("cuda", torch.cuda.current_device()) if available else torch.device("cpu")
        if announce:
            why = f"auto: {torch.cuda.get_device_name(device)}" if available else "auto: CUDA is not available"
            print(f"device: {device} ({why})", file=sys.stderr, flush=True)
        return device
    if not available:
        raise DeviceError(f"{what} {text}: CUDA is not available on this machine (torch {torch.__version__}, "
                          f"{'a CUDA build' if torch.version.cuda else 'a CPU-only build'}); use --device cpu or auto")
    n = torch.cuda.device_count()
    i = torch.cuda.current_device() if index is None else int(index)
    if i >= n:
        raise DeviceError(f"{what} {text}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    return torch.device("cuda", i)


def add_device_argument(parser, default: str | None = "auto", help_extra: str = "") -> None:
    """The one `--device` option (argparse)."""
    parser.add_argument("--device", default=default, metavar="auto|cpu|cuda[:N]",
                        help=f"where the model and encoders run (default: {default or 'the recipe'}; auto = CUDA "
                             f"when present){help_extra}")


def configure_cuda(device: torch.device, fixed_shapes: bool = False) -> None:
    """TF32 and cudnn.benchmark as the module docstring explains; nothing on the CPU."""
    if device.type != "cuda":
        return
    tf32 = os.environ.get("MCD_CUDA_TF32", "1") != "0"
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = fixed_shapes
    torch.cuda.set_device(device)


def autocast(device: torch.device, amp: str = "off", announce: bool = False):
    """The forward's mixed-precision context: bf16 autocast for `amp == "bf16"` on a CUDA device that supports
    bf16; otherwise none (float32). `announce` says on stderr when bf16 was asked for but is not used."""
    if amp not in ("off", "bf16"):
        raise DeviceError(f"train.amp must be 'off' or 'bf16', not {amp!r}")
    if amp == "off":
        return contextlib.nullcontext()
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    if announce:
        where = "the CPU" if device.type != "cuda" else f"{torch.cuda.get_device_name(device)} (no bf16)"
        print(f"train.amp=bf16: autocast is used on CUDA with bf16 only; training in float32 on {where}",
              file=sys.stderr, flush=True)
    return contextlib.nullcontext()


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """`obj` with `fn` applied to every tensor inside it: tensors, dicts, lists, tuples, named tuples and
    dataclasses (a Batch, a GroundingTargets, an MCDOutput), recursively; anything else is returned as it is."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and not isinstance(obj, str):
        items = [map_tensors(v, fn) for v in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: map_tensors(getattr(obj, f.name), fn)
                                           for f in dataclasses.fields(obj) if f.init})
    return obj


def move(obj: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """`obj` with every tensor inside it on `device` (`map_tensors`). A tensor already there is returned as it is
    (no copy), so on the CPU this changes nothing."""
    return map_tensors(obj, lambda t: t.to(device, non_blocking=non_blocking))


def pin(obj: Any) -> Any:
    """`obj` with every CPU tensor inside it in pinned (page-locked) memory, for non-blocking copies to CUDA."""
    return map_tensors(obj, lambda t: t.pin_memory() if t.device.type == "cpu" else t)


def detach(obj: Any) -> Any:
    """`obj` with every tensor inside it cut from the autograd graph (a grad-enabled forward's outputs, kept)."""
    return map_tensors(obj, torch.Tensor.detach)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (the CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))
