"""MUSIC-AVQA question templates, template filling, normalisation and free-form parsing.

`parse(text)` maps a typed question onto one of the 33 templates (one compiled regex per template over the
normalized text, slots as groups of their domain values), recovering its type and keywords (slot values); text
that matches none gets type "unknown", lexicon keywords and a note saying so.

Template filling follows the public loaders exactly (rstrip, split on spaces, drop the final '?' or '？',
replace each `<...>` token in order with the next `templ_values` item), so questions read from annotation
files are character-for-character what every published model saw.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from mcd.task.vocab import INSTRUMENTS

#: Slot domains of the template placeholders.
SLOT_DOMAINS: dict[str, tuple[str, ...]] = {
    "<LR>": ("left", "middle", "right"),
    "<LRer>": ("leftest", "rightest"),
    "<LL>": ("loudest", "lowest"),
    "<FL>": ("first", "last"),
    "<TH>": ("first", "second", "third", "fourth", "fifth"),
    "<BA>": ("before", "after"),
    # "<Object>" is the instrument vocabulary: mcd.task.vocab.INSTRUMENTS
}

MODALITIES = ("Audio", "Visual", "Audio-Visual")
#: The 9 question types as "Modality/Kind", in the order the MUSIC-AVQA table prints them.
QUESTION_TYPES: tuple[str, ...] = (
    "Audio/Counting", "Audio/Comparative",
    "Visual/Counting", "Visual/Location",
    "Audio-Visual/Existential", "Audio-Visual/Counting", "Audio-Visual/Location",
    "Audio-Visual/Comparative", "Audio-Visual/Temporal",
)

UNKNOWN_TYPE_INDEX = -1  # the type index of a question that matches no template


def per_type_table(values: dict[str, float], default: float) -> list[float]:
    """`values` by type as a list indexed like `type_index`: one entry per QUESTION_TYPES (a type not in `values`
    gets `default`), then `default` once more, so that index -1 (an unknown type) picks `default` too."""
    return [values.get(t, default) for t in QUESTION_TYPES] + [default]


def type_index(question_type: str) -> int:
    """Index of a "Modality/Kind" type in QUESTION_TYPES (the model's `question_type` input); -1 if it is none."""
    return QUESTION_TYPES.index(question_type) if question_type in QUESTION_TYPES else UNKNOWN_TYPE_INDEX


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


# ---------------------------------------------------------------------------------------------------------------
# Normalisation and free-form parsing (the demo's questions are typed by people, not filled from templates).
# ---------------------------------------------------------------------------------------------------------------

UNKNOWN_TYPE = "unknown"


class EmptyQuestionError(ValueError):
    """A question with no words in it (empty, whitespace or punctuation only)."""


@dataclass(frozen=True)
class ParsedQuestion:
    """A question matched against the 33 templates.

    `template`, `modality` and `kind` are None and `type` is "unknown" when no template matches; `keywords` are
    then the lexicon words found in the question, and `note` says why in words a person can read.
    """

    text: str
    normalized: str
    template: Template | None
    type: str
    modality: str | None
    kind: str | None
    keywords: tuple[str, ...]
    note: str | None = None


def _instrument_surface_forms() -> dict[tuple[str, ...], str]:
    """Word sequences people write for each instrument -> its canonical name.

    Covers 'acoustic guitar' / 'acoustic_guitar' (underscores become spaces before this lookup), plurals
    ('violins', 'electric basses') and 'conga' for the canonical plural 'congas'.
    """
    forms: dict[tuple[str, ...], str] = {}
    for name in INSTRUMENTS:
        words = name.split("_")
        head, last = words[:-1], words[-1]
        variants = {last, last + "s", last + "es"}
        if last.endswith("s"):  # 'congas' -> 'conga'
            variants.add(last[:-1])
        for v in variants:
            forms[tuple(head + [v])] = name
    return forms


_SURFACE = _instrument_surface_forms()
_MAX_SURFACE_LEN = max(len(k) for k in _SURFACE)
#: Single-word synonyms mapped onto the template vocabulary.
_SYNONYMS = {"leftmost": "leftest", "rightmost": "rightest"}
_APOSTROPHES = re.compile(r"['’`´]")
_NON_WORD = re.compile(r"[^\w\s]|_")
_ARTICLES = frozenset({"a", "an", "the"})

#: Words that become keywords of an "unknown" question: instrument names and every non-instrument slot value.
LEXICON: frozenset[str] = frozenset(INSTRUMENTS) | frozenset(v for vals in SLOT_DOMAINS.values() for v in vals)


def _normalize_tokens(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).casefold()  # NFKC turns the full-width '？' into '?'
    text = _NON_WORD.sub(" ", _APOSTROPHES.sub("", text))
    words = text.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        for n in range(min(_MAX_SURFACE_LEN, len(words) - i), 0, -1):  # longest instrument name first
            name = _SURFACE.get(tuple(words[i:i + n]))
            if name is not None:
                out.append(name)
                i += n
                break
        else:
            out.append(_SYNONYMS.get(words[i], words[i]))
            i += 1
    return out


def normalize(text: str) -> str:
    """Canonical form of a question for matching: lower case, no punctuation, single spaces,
    instrument names in canonical spelling and singular ('Acoustic Guitars？ ' -> 'acoustic_guitar').

    Raises TypeError for a non-string; an empty result is returned as '' (parse() rejects it).
    """
    if not isinstance(text, str):
        raise TypeError(f"question must be a str, got {type(text).__name__}")
    return " ".join(_normalize_tokens(text))


def _template_pattern(template: Template, drop_articles: bool) -> re.Pattern[str]:
    """One compiled regex per template over normalized text; each slot is a group of its domain's values."""
    parts: list[str] = []
    for tok in _template_tokens(template.text):
        if tok.startswith("<") and tok.endswith(">"):
            domain = INSTRUMENTS if tok == "<Object>" else SLOT_DOMAINS[tok]
            parts.append("(" + "|".join(re.escape(v) for v in sorted(domain, key=len, reverse=True)) + ")")
        else:
            parts.extend(re.escape(w) for w in _normalize_tokens(tok)
                         if not (drop_articles and w in _ARTICLES))
    return re.compile(" ".join(parts))


def _specificity(template: Template) -> tuple[int, int, int]:
    """Sort key among templates that match the same text: most literal words, then fewest slots, then id.

    With these slot domains no filled question of one template equals one of another (the tests check
    every possible filling), so this only decides the rare free-form text that two patterns both accept.
    """
    literals = sum(1 for tok in _template_tokens(template.text) if not tok.startswith("<"))
    return (-literals, len(template.slots), template.id)


_BY_SPECIFICITY = sorted(TEMPLATES, key=_specificity)
_EXACT = [(t, _template_pattern(t, drop_articles=False)) for t in _BY_SPECIFICITY]
_LOOSE = [(t, _template_pattern(t, drop_articles=True)) for t in _BY_SPECIFICITY]


def _match(patterns: list[tuple[Template, re.Pattern[str]]], text: str) -> tuple[Template, tuple[str, ...]] | None:
    for template, pattern in patterns:  # already in specificity order: the first match wins
        m = pattern.fullmatch(text)
        if m is not None:
            return template, m.groups()
    return None


def parse(text: str) -> ParsedQuestion:
    """Match a free-form question against the 33 templates, recovering type and keywords (slot values).

    Tries the normalized text first, then the same with articles ('a', 'an', 'the') ignored; when neither
    matches, the type is "unknown" and the keywords are the lexicon words of the question (instrument names,
    positions, orders, ...) in order of appearance, without repeats. Raises EmptyQuestionError for a question
    with no words and TypeError for a non-string.
    """
    normalized = normalize(text)
    if not normalized:
        raise EmptyQuestionError(f"the question {text!r} has no words: type a question such as "
                                 "'Where is the loudest instrument?'")
    found = _match(_EXACT, normalized)
    note = None
    if found is None:
        found = _match(_LOOSE, " ".join(w for w in normalized.split() if w not in _ARTICLES))
        if found is not None:
            note = f"matched the template {found[0].text.strip()!r} ignoring articles (a, an, the)"
    if found is not None:
        template, keywords = found
        return ParsedQuestion(text, normalized, template, template.type, template.modality, template.kind,
                              keywords, note)
    keywords = tuple(dict.fromkeys(w for w in normalized.split() if w in LEXICON))
    note = ("this question does not match any of the 33 MUSIC-AVQA question templates, so it is answered with "
            "type 'unknown'" + (f" and the keywords {', '.join(keywords)}" if keywords else " and no keywords")
            + "; answers to such questions are less reliable")
    return ParsedQuestion(text, normalized, None, UNKNOWN_TYPE, None, None, keywords, note)


def text_objects(parsed: ParsedQuestion) -> list[str]:
    """The text objects MCD attends to: the keywords, then the modality and kind (keywords only if unknown)."""
    if parsed.template is None:
        return list(parsed.keywords)
    return [*parsed.keywords, parsed.modality, parsed.kind]
