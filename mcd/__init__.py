"""MCD-AVQA: Mutual Correlation Distillation for audio-visual question answering.

The public API is two names: `Pipeline` (a checkpoint -> answers with clues for a clip) and `load_checkpoint`
(a checkpoint folder -> model, encoders and metadata). They are imported on first use, so `import mcd` stays
cheap and `mcd synth` never pays for torch models it does not run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["Pipeline", "load_checkpoint"]

if TYPE_CHECKING:
    from mcd.model.checkpoint import load_checkpoint
    from mcd.serving.pipeline import Pipeline


def __getattr__(name: str) -> Any:
    if name == "Pipeline":
        from mcd.serving.pipeline import Pipeline
        return Pipeline
    if name == "load_checkpoint":
        from mcd.model.checkpoint import load_checkpoint
        return load_checkpoint
    raise AttributeError(f"module 'mcd' has no attribute {name!r}")
