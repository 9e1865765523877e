"""Frozen basic encoders: one interface per modality, rebuilt from a JSON spec.

Backends live in their own modules and are imported only when built (see `base.REGISTRY`).
"""
from mcd.encoders.base import (
    AudioEncoder,
    Encoder,
    EncoderError,
    EncoderInputError,
    EncoderLoadError,
    EncoderSpecError,
    TextEncoder,
    VisualEncoder,
    build_encoder,
)

__all__ = [
    "AudioEncoder", "Encoder", "EncoderError", "EncoderInputError", "EncoderLoadError", "EncoderSpecError",
    "TextEncoder", "VisualEncoder", "build_encoder",
]
