"""The 42 MUSIC-AVQA answers in their canonical order.

The order is fixed here and never rebuilt from a training file: the public MUSIC-AVQA checkpoints index their
classifier rows in exactly this order, so rebuilding it from data would silently scramble a loaded model.
"""
from __future__ import annotations

ANSWERS: tuple[str, ...] = (
    "two", "cello", "congas", "zero", "no", "pipa", "six", "yes", "one", "four",
    "three", "seven", "five", "ukulele", "right", "piano", "left", "accordion", "clarinet", "guzheng",
    "more than ten", "nine", "indoor", "saxophone", "drum", "violin", "middle", "outdoor", "bagpipe", "bassoon",
    "acoustic_guitar", "banjo", "electric_bass", "ten", "eight", "flute", "simultaneously", "trumpet", "erhu",
    "xylophone", "tuba", "suona",
)
NUM_ANSWERS = len(ANSWERS)
_INDEX = {a: i for i, a in enumerate(ANSWERS)}

#: The instruments among the answers (the `<Object>` slot domain of the templates).
INSTRUMENTS: tuple[str, ...] = (
    "cello", "congas", "pipa", "ukulele", "piano", "accordion", "clarinet", "guzheng", "saxophone", "drum",
    "violin", "bagpipe", "bassoon", "acoustic_guitar", "banjo", "electric_bass", "flute", "trumpet", "erhu",
    "xylophone", "tuba", "suona",
)

#: The instruments of the first synthetic world, in the grounding head's class order: what checkpoints that
#: predate the "instruments" entry of config.json (format 1) were trained on.
FORMAT1_SYNTH_INSTRUMENTS: tuple[str, ...] = (
    "violin", "acoustic_guitar", "piano", "trumpet", "saxophone", "drum", "accordion", "banjo", "congas", "flute",
)

#: Number words as MUSIC-AVQA spells counting answers, by value.
NUMBER_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "more than ten",
)


class UnknownAnswerError(ValueError):
    """An answer string that is not one of the 42 classes."""


def answer_to_index(answer: str) -> int:
    """Index of `answer` in the canonical order; raises UnknownAnswerError naming the bad answer."""
    try:
        return _INDEX[answer]
    except KeyError:
        raise UnknownAnswerError(
            f"answer {answer!r} is not one of the {NUM_ANSWERS} MUSIC-AVQA answers") from None




def count_word(n: int) -> str:
    """The counting answer for `n` (0..10, 'more than ten' above)."""
    if n < 0:
        raise ValueError(f"negative count {n}")
    return NUMBER_WORDS[min(n, 11)]
