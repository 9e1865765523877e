"""Evaluation: inference over a split and the per-type MUSIC-AVQA table (`mcd evaluate`)."""
