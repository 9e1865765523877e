"""The MCD model: association, aggregator, semantic approximation, heads."""
from mcd.model.mcd import KEYWORD, MCD, TYPE_WORD, MCDInputError, MCDOutput

__all__ = ["MCD", "MCDOutput", "MCDInputError", "KEYWORD", "TYPE_WORD"]
