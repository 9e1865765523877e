"""MUSIC-AVQA question templates, template filling, normalisation and free-form parsing.

Template filling follows the public loaders exactly (rstrip, split on spaces, drop the final '?' or '？',
replace each `<...>` token in order with the next `templ_values` item), so questions read from annotation
files are character-for-character what every published model saw.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Slot domains of the template placeholders (DESIGN §4).
SLOT_DOMAINS: dict[str, tuple[str, ...]] = {
    "<LR>": ("left", "middle", "right"),
    "<LRer>": ("leftest", "rightest"),
    "<LL>": ("loudest", "lowest"),
    "<FL>": ("first", "last"),
    "<TH>": ("first", "second", "third", "fourth", "fifth"),
    "<BA>": ("before", "after"),
    # "<Object>" is the instrument vocabulary: mcd.vocab.INSTRUMENTS
}

MODALITIES = ("Audio", "Visual", "Audio-Visual")
#: The 9 question types as "Modality/Kind", in the order the MUSIC-AVQA table prints them.
QUESTION_TYPES: tuple[str, ...] = (
    "Audio/Counting", "Audio/Comparative",
    "Visual/Counting", "Visual/Location",
    "Audio-Visual/Existential", "Audio-Visual/Counting", "Audio-Visual/Location",
    "Audio-Visual/Comparative", "Audio-Visual/Temporal",
)


@dataclass(frozen=True)
class Template:
    """One of the 33 MUSIC-AVQA question templates, spelled exactly as in the annotation files."""

    id: int
    text: str
    modality: str
    kind: str

    @property
    def type(self) -> str:
        return f"{self.modality}/{self.kind}"

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(tok for tok in _template_tokens(self.text) if tok.startswith("<") and tok.endswith(">"))


_RAW_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    # Audio / Counting
    ("Is there a <Object> sound?", "Audio", "Counting"),
    ("Are there <Object> and <Object> sound? ", "Audio", "Counting"),
    ("How many musical instruments were heard throughout the video?", "Audio", "Counting"),
    # Audio / Comparative
    ("Is the <Object> louder than the <Object>?", "Audio", "Comparative"),
    ("Is the <Object> more rhythmic than the <Object>?", "Audio", "Comparative"),
    ("Is the <Object> playing longer than the <Object>?", "Audio", "Comparative"),
    # Visual / Counting
    ("Is there a <Object> in the entire video?", "Visual", "Counting"),
    ("Are there <Object> and <Object> instruments in the video?", "Visual", "Counting"),
    ("How many <Object> are in the entire video?", "Visual", "Counting"),
    ("How many types of musical instruments appeared in the entire video?", "Visual", "Counting"),
    # Visual / Location
    ("What is the instrument on the <LR> of <Object>?", "Visual", "Location"),
    ("Where is the performance?", "Visual", "Location"),
    ("What kind of instrument is the <LRer> instrument? ", "Visual", "Location"),
    ("What kind of musical instrument is it?", "Visual", "Location"),
    # Audio-Visual / Existential
    ("Is the <Object> in the video always playing?", "Audio-Visual", "Existential"),
    ("Is there a voiceover?", "Audio-Visual", "Existential"),
    ("Is this sound from the instrument in the video?", "Audio-Visual", "Existential"),
    # Audio-Visual / Counting
    ("How many sounding <Object> in the video？", "Audio-Visual", "Counting"),
    ("How many types of musical instruments sound in the video?", "Audio-Visual", "Counting"),
    ("How many instruments are sounding in the video?", "Audio-Visual", "Counting"),
    ("How many instruments in the video did not sound from beginning to end?", "Audio-Visual", "Counting"),
    # Audio-Visual / Location
    ("Which is the musical instrument that sounds at the same time as the <Object>?", "Audio-Visual", "Location"),
    ("Where is the <LL> instrument?", "Audio-Visual", "Location"),
    ("Is the <FL> sound coming from the <LR> instrument?", "Audio-Visual", "Location"),
    ("What is the <LR> instrument of the <FL> sounding instrument?", "Audio-Visual", "Location"),
    # Audio-Visual / Comparative
    ("Is the instrument on the <LR> louder than the instrument on the <LR>?", "Audio-Visual", "Comparative"),
    ("Is the instrument on the <LR> more rhythmic than the instrument on the <LR>?", "Audio-Visual", "Comparative"),
    ("Is the <Object> on the <LR> louder than the <Object> on the <LR>?", "Audio-Visual", "Comparative"),
    ("Is the <Object> on the <LR> more rhythmic than the <Object> on the <LR>?", "Audio-Visual", "Comparative"),
    # Audio-Visual / Temporal
    ("What is the <TH> instrument that comes in?", "Audio-Visual", "Temporal"),
    ("Where is the <FL> sounding instrument?", "Audio-Visual", "Temporal"),
    ("Which instrument makes sounds <BA> the <Object>?", "Audio-Visual", "Temporal"),
    ("Which <Object> makes the sound <FL>?", "Audio-Visual", "Temporal"),
)

TEMPLATES: tuple[Template, ...] = tuple(Template(i, t, m, k) for i, (t, m, k) in enumerate(_RAW_TEMPLATES))
TEMPLATE_BY_TEXT: dict[str, Template] = {t.text: t for t in TEMPLATES}


def _template_tokens(template: str) -> list[str]:
    """The loaders' tokenisation: rstrip, split on spaces, drop the final '?' / '？' of the last token."""
    tokens = template.rstrip().split(" ")
    last = tokens[-1]
    if last.endswith("?") or last.endswith("？"):
        tokens[-1] = last[:-1]
    return tokens


def fill_template(template: str, values: list[str] | tuple[str, ...]) -> str:
    """Fill `template` with `values` exactly as the public MUSIC-AVQA loaders do.

    The result has no final question mark (the loaders drop it); raises ValueError when the number of values
    does not match the number of `<...>` slots, which the loaders would silently get wrong.
    """
    tokens = _template_tokens(template)
    n_slots = sum(1 for tok in tokens if tok.startswith("<") and tok.endswith(">"))
    if n_slots != len(values):
        raise ValueError(f"template {template!r} has {n_slots} slots but {len(values)} values were given: {list(values)}")
    it = iter(values)
    return " ".join(next(it) if tok.startswith("<") and tok.endswith(">") else tok for tok in tokens)
