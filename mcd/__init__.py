"""MCD-AVQA: Mutual Correlation Distillation for audio-visual question answering."""
__version__ = "0.1.0"
