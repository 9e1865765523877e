"""Questions in a person's own words: mapped onto one of the 33 templates, shown as understood, or refused.

`QuestionUnderstander.understand_all(texts)` gives one `Understanding` per question:

1. **Bad input** (empty, whitespace or punctuation only, over `MAX_QUESTION_CHARS` characters, not text) is
   `invalid`, with a message; the other questions of the request are unaffected.
2. **Exact template match** (`mcd.task.questions.parse`: tolerant of case, punctuation, plurals, articles).
3. **Semantic match** otherwise. The slot words of the question are found with a synonym lexicon (fiddle -> violin,
   keys -> piano, far left -> leftest, earliest -> first, ...) and replaced by one fixed word per slot kind (the
   question is "delexicalised"; polite wrappers and "in the video"-like phrases are dropped); its sentence embedding
   (MiniLM token states mean-pooled and L2-normalised, through the `embed` callable the caller passes) is compared by
   cosine with a bank of phrasings per template (`phrasings.json`, embedded once and cached); a template scores the
   mean of its `top_k` nearest phrasings. A template whose slots cannot be filled from the question's words is no
   match; among those that can, the best wins, less `LEFTOVER_PENALTY` per slot word it leaves unused and
   `FORM_PENALTY` when the question's form (yes/no, how many, where, what/which) asks for another kind of answer,
   `WORDING_PENALTY` when it counts something else ("how many kinds", "... did not sound") or names only the other
   sense ("can you see" for an Audio template). Slot order follows the phrasing that matched, and for comparatives
   the comparison word ("Is B quieter than A?" is "Is A louder than B?") and a leading "compared with".
   A question nearer to one of the bank's `reject` phrasings (questions about a clip the model does not answer:
   people, looks, prices, the song, ...) than to the best template, or below the bank's calibrated threshold
   (`python bench/paraphrases.py calibrate`, written into `phrasings.json`), is `out_of_scope`, and the note names
   the nearest supported questions. Text mostly in a non-Latin script is `out_of_scope` without embedding it (the
   matcher understands English only).
4. A question whose slots (or words) name an instrument the checkpoint was not trained on is `unknown_instrument`;
   the note names the instruments it knows.

Only `answered` questions are put to the model, as `understood_as`: the template filled exactly as training filled
it (`fill_template`, no final '?').

This module imports nothing from the model, data or serving layers: the caller passes `embed(texts) -> [N, D]`.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mcd.task.questions import (
    TEMPLATES, UNKNOWN_TYPE, EmptyQuestionError, Template, fill_template, parse,
)
from mcd.task.vocab import INSTRUMENTS

BANK_FILE = Path(__file__).with_name("phrasings.json")
MAX_QUESTION_CHARS = 300
#: Score subtracted per slot word of the question that a template leaves unused (e.g. two instruments named in a
#: question matched to a template with one instrument slot).
LEFTOVER_PENALTY = 0.1
#: Used when the bank has no calibrated threshold (never in the shipped bank; tests may build banks without one).
DEFAULT_THRESHOLD = 0.75

ANSWERED = "answered"
OUT_OF_SCOPE = "out_of_scope"
UNKNOWN_INSTRUMENT = "unknown_instrument"
INVALID = "invalid"
STATUSES = (ANSWERED, OUT_OF_SCOPE, UNKNOWN_INSTRUMENT, INVALID)

Embed = Callable[[Sequence[str]], np.ndarray]

# ------------------------------------------------------------------------------------------------ the lexicon

#: Slot kinds: the template placeholder each kind fills, and the word that stands for any of its values when a
#: question is delexicalised (the bank's phrasings are filled with the same words).
SLOT_KINDS: dict[str, str] = {"Object": "<Object>", "LR": "<LR>", "LRer": "<LRer>", "LL": "<LL>", "FL": "<FL>",
                              "TH": "<TH>", "BA": "<BA>"}
_FILL_WORD = {"Object": "object", "LR": "left", "LRer": "leftmost", "LL": "loudest", "FL": "first", "TH": "first",
              "BA": "before"}

#: Instrument words -> the canonical instrument (one of the 22 answers). Plurals ('fiddles', 'drum kits') are added
#: automatically; the canonical names themselves ('acoustic guitar', 'electric bass') are too.
INSTRUMENT_SYNONYMS: dict[str, str] = {
    "fiddle": "violin", "violinist": "violin", "fiddler": "violin",
    "guitar": "acoustic_guitar", "guitarist": "acoustic_guitar", "classical guitar": "acoustic_guitar",
    "spanish guitar": "acoustic_guitar", "folk guitar": "acoustic_guitar",
    "keys": "piano", "keyboard": "piano", "pianist": "piano", "grand piano": "piano", "upright piano": "piano",
    "digital piano": "piano", "electric piano": "piano",
    "sax": "saxophone", "saxophonist": "saxophone", "alto sax": "saxophone", "tenor sax": "saxophone",
    "alto saxophone": "saxophone", "tenor saxophone": "saxophone",
    "drums": "drum", "drum kit": "drum", "drum set": "drum", "drumkit": "drum", "drumset": "drum",
    "drummer": "drum", "snare": "drum", "snare drum": "drum", "bass drum": "drum", "kick drum": "drum",
    "trumpeter": "trumpet",
    "accordionist": "accordion", "squeezebox": "accordion",
    "banjoist": "banjo",
    "conga": "congas", "conga drum": "congas", "congas": "congas",
    "flautist": "flute", "flutist": "flute",
    "cellist": "cello", "violoncello": "cello",
    "uke": "ukulele",
    "clarinetist": "clarinet", "clarinettist": "clarinet",
    "bagpipes": "bagpipe", "bagpiper": "bagpipe",
    "bassoonist": "bassoon",
    "bass": "electric_bass", "bass guitar": "electric_bass", "bassist": "electric_bass",
    "electric bass guitar": "electric_bass",
    "xylophonist": "xylophone",
    "tubist": "tuba",
    "zheng": "guzheng",
}
#: Instruments outside the 22 answers: a question about them is understood but not answered (unknown_instrument).
#: Longer names win over shorter ones ('electric guitar' is not 'guitar', 'double bass' is not 'bass').
OTHER_INSTRUMENTS: dict[str, str] = {
    **{w: w for w in (
        "harp", "sitar", "oboe", "trombone", "harmonica", "mandolin", "tabla", "organ", "synthesizer", "cymbal",
        "triangle", "tambourine", "marimba", "vibraphone", "timpani", "viola", "harpsichord", "recorder", "piccolo",
        "ocarina", "didgeridoo", "kalimba", "glockenspiel", "celesta", "lute", "zither", "koto", "shamisen",
        "balalaika", "theremin", "cajon", "djembe", "maracas", "castanets", "gong", "shakuhachi", "dizi", "sheng",
        "bouzouki", "oud", "mbira", "bodhran", "euphonium", "cornet", "flugelhorn", "sousaphone", "melodica",
        "concertina", "dulcimer", "handpan", "bongo", "bugle", "kazoo", "cowbell", "guiro", "steelpan",
        "double bass", "electric guitar", "french horn", "steel drum", "bass clarinet", "pan flute", "tin whistle",
        "hurdy gurdy", "drum machine", "turntable", "hang drum", "bell", "chimes", "keytar", "erhu fiddle")},
    "synth": "synthesizer", "synthesiser": "synthesizer", "cymbals": "cymbal", "bongos": "bongo",
    "upright bass": "double bass", "contrabass": "double bass", "string bass": "double bass",
    "harpist": "harp", "oboist": "oboe", "trombonist": "trombone", "organist": "organ", "violist": "viola",
    "pan pipes": "pan flute", "panpipes": "pan flute", "horn": "french horn", "electric guitarist": "electric guitar",
    "steel drums": "steel drum", "tubular bells": "chimes", "timpanist": "timpani",
}
OTHER_INSTRUMENTS.pop("erhu fiddle")   # 'erhu fiddle' is the erhu (below)
INSTRUMENT_SYNONYMS["erhu fiddle"] = "erhu"

#: Other slot words -> (kind, value) options; a word may fill more than one kind ('first' is <FL> or <TH>; a bare
#: side is <LR>, or <LRer> where no instrument is named: "the instrument on the left" is the leftmost one).
_LEFT, _RIGHT = (("LR", "left"), ("LRer", "leftest")), (("LR", "right"), ("LRer", "rightest"))
SLOT_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "left": _LEFT, "right": _RIGHT, "middle": (("LR", "middle"),),
    "center": (("LR", "middle"),), "centre": (("LR", "middle"),), "central": (("LR", "middle"),),
    "left hand": _LEFT, "right hand": _RIGHT, "lefthand": _LEFT, "righthand": _RIGHT,
    "leftest": (("LRer", "leftest"),), "rightest": (("LRer", "rightest"),),
    "leftmost": (("LRer", "leftest"),), "rightmost": (("LRer", "rightest"),),
    "left most": (("LRer", "leftest"),), "right most": (("LRer", "rightest"),),
    "far left": (("LRer", "leftest"),), "far right": (("LRer", "rightest"),),
    "furthest left": (("LRer", "leftest"),), "furthest right": (("LRer", "rightest"),),
    "farthest left": (("LRer", "leftest"),), "farthest right": (("LRer", "rightest"),),
    "very left": (("LRer", "leftest"),), "very right": (("LRer", "rightest"),),
    "extreme left": (("LRer", "leftest"),), "extreme right": (("LRer", "rightest"),),
    **{f"{w} to the {side}": (("LRer", side + "est"),) for w in ("furthest", "farthest", "far", "most")
       for side in ("left", "right")},
    "loudest": (("LL", "loudest"),), "lowest": (("LL", "lowest"),), "quietest": (("LL", "lowest"),),
    "softest": (("LL", "lowest"),), "faintest": (("LL", "lowest"),), "most quiet": (("LL", "lowest"),),
    "least loud": (("LL", "lowest"),), "most loud": (("LL", "loudest"),), "noisiest": (("LL", "loudest"),),
    "first": (("FL", "first"), ("TH", "first")), "1st": (("FL", "first"), ("TH", "first")),
    "earliest": (("FL", "first"), ("TH", "first")), "firstly": (("FL", "first"), ("TH", "first")),
    "last": (("FL", "last"),), "latest": (("FL", "last"),), "final": (("FL", "last"),), "finally": (("FL", "last"),),
    "lastly": (("FL", "last"),),
    "second": (("TH", "second"),), "2nd": (("TH", "second"),), "third": (("TH", "third"),), "3rd": (("TH", "third"),),
    "fourth": (("TH", "fourth"),), "4th": (("TH", "fourth"),), "fifth": (("TH", "fifth"),), "5th": (("TH", "fifth"),),
    "before": (("BA", "before"),), "after": (("BA", "after"),), "earlier than": (("BA", "before"),),
    "later than": (("BA", "after"),), "prior to": (("BA", "before"),), "following": (("BA", "after"),),
    "ahead of": (("BA", "before"),), "sooner than": (("BA", "before"),), "right before": (("BA", "before"),),
    "right after": (("BA", "after"),), "just before": (("BA", "before"),), "just after": (("BA", "after"),),
}
#: Words that, when a template needs an order (<FL>/<TH>) the question does not spell out, imply one:
#: "Which instrument starts?" is the first to come in.
_IMPLIED_FIRST = frozenset({"start", "starts", "started", "starting", "begin", "begins", "began", "beginning",
                            "opens", "open", "opening", "kicks", "leads"})
_IMPLIED_LAST = frozenset({"end", "ends", "ended", "finishes", "finish", "closes", "closing"})
#: A slot word followed by one of these is not a slot word ("right away", "last longer", "a second").
_NOT_SLOT_AFTER = {"right": frozenset({"away", "now", "here", "there", "when", "then"}),
                   "last": frozenset({"longer", "long", "for", "as", "the", "through"}),
                   "left": frozenset({"over", "out", "behind"})}
_NOT_SLOT_BEFORE = {"second": frozenset({"a", "one", "per", "every", "each"}),
                    "right": frozenset({"all", "thats"})}


_NO_SINGULAR = frozenset({"keys"})   # 'key' is not a piano


def _plural_forms(phrase: str) -> set[str]:
    words = phrase.split()
    last = words[-1]
    forms = {last, last + "s", last + "es"}
    if last.endswith("y"):
        forms.add(last[:-1] + "ies")
    if last.endswith("s") and not last.endswith("ss") and phrase not in _NO_SINGULAR:
        forms.add(last[:-1])
    return {" ".join(words[:-1] + [f]) for f in forms}


def _build_lexicon() -> dict[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """word sequence -> its (kind, value) options; instrument values are canonical (vocabulary or other)."""
    lex: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}
    instruments = {name.replace("_", " "): name for name in INSTRUMENTS}
    instruments.update(INSTRUMENT_SYNONYMS)
    others = dict(OTHER_INSTRUMENTS)
    for table in (others, instruments):          # vocabulary names win over other-instrument plurals
        for phrase, name in table.items():
            for form in sorted(_plural_forms(phrase)):
                if form not in lex or form == phrase:
                    lex[tuple(form.split())] = (("Object", name),)
    for phrase in list(instruments) + list(others):  # the written form itself always wins over a plural
        lex[tuple(phrase.split())] = (("Object", instruments.get(phrase) or others[phrase]),)
    for phrase, options in SLOT_WORDS.items():
        lex[tuple(phrase.split())] = options
    return lex


LEXICON: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = _build_lexicon()
_MAX_PHRASE = max(len(k) for k in LEXICON)
_APOSTROPHES = re.compile(r"['’`´]")
#: "the drums's rhythm": a possessive after a plural would otherwise become 'drumss' and hide the slot word.
_POSSESSIVE_AFTER_S = re.compile(r"(?<=s)['’`´]s\b")
_NON_WORD = re.compile(r"[^\w]+|_")
_PLACEHOLDER = re.compile(r"\{(Object|LRer|LR|LL|FL|TH|BA)([12]?)\}")


#: Where-in-the-media phrases every kind of template uses ("in the video", "in this clip"): they say nothing about
#: which template a question means, and left in they make short questions match on them alone.
_CONTEXT = re.compile(r"\b(?:in|of|from|during|throughout|over) (?:the|this|that) "
                      r"(?:video clip|video|clip|recording|footage|film|movie)\b")


def tokens(text: str) -> list[str]:
    """Lower-case words without punctuation ('Left-most fiddle's?' -> ['left', 'most', 'fiddles'], 'drums's' ->
    'drums')."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _POSSESSIVE_AFTER_S.sub("", text)
    return _NON_WORD.sub(" ", _APOSTROPHES.sub("", text)).split()


#: Polite wrappers around a question ("Could you tell me which ...", "... please"): no template is in them.
_WRAPPER = re.compile(r"^(?:(?:please|could you(?: please)? tell me|can you(?: please)? tell me|tell me|do you know|"
                      r"i wonder|i would like to know|id like to know|i want to know|would you say|let me know|"
                      r"could you(?: please)?|would you(?: please)?) )+|(?: please)+$")


#: A tag after a comma at the end ("..., right?", "..., isn't it?"): it asks for agreement, it names no side.
_TAG = re.compile(r",\s*(?:right|correct|yes|no|ok|okay|isn['’]?t it|aren['’]?t they|don['’]?t they|"
                  r"didn['’]?t it|is it|am i right)\s*[?.!]*\s*$", re.IGNORECASE)


def matching_words(text: str) -> list[str]:
    """`tokens` without a tag ending (`_TAG`), polite wrappers (`_WRAPPER`) and where-in-the-media phrases
    (`_CONTEXT`): what the semantic matcher compares."""
    return _WRAPPER.sub("", _CONTEXT.sub(" ", " ".join(tokens(_TAG.sub("", text)))).strip()).split()


@dataclass(frozen=True)
class Mention:
    """A slot word found in a question: where (token span), its options (kind, value) and its words."""

    start: int
    end: int
    options: tuple[tuple[str, str], ...]
    surface: str

    def value(self, kind: str) -> str | None:
        return next((v for k, v in self.options if k == kind), None)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.options)


def find_mentions(words: Sequence[str]) -> list[Mention]:
    """The slot words of a tokenised question, longest phrase first, left to right."""
    out: list[Mention] = []
    i = 0
    while i < len(words):
        for n in range(min(_MAX_PHRASE, len(words) - i), 0, -1):
            key = tuple(words[i:i + n])
            options = LEXICON.get(key)
            if options is None:
                continue
            if n == 1:
                word = key[0]
                after = words[i + 1] if i + 1 < len(words) else ""
                before = words[i - 1] if i > 0 else ""
                if after in _NOT_SLOT_AFTER.get(word, ()) or before in _NOT_SLOT_BEFORE.get(word, ()):
                    continue
            out.append(Mention(i, i + n, options, " ".join(key)))
            i += n
            break
        else:
            i += 1
    return out


def delexicalise(words: Sequence[str], mentions: Sequence[Mention]) -> str:
    """The question with each slot word replaced by its kind's fill word (what the bank's phrasings hold)."""
    out: list[str] = []
    i = 0
    for m in mentions:
        out.extend(words[i:m.start])
        out.append(_FILL_WORD[m.options[0][0]])
        i = m.end
    out.extend(words[i:])
    return " ".join(out)


# ------------------------------------------------------------------------------------------------ the bank

def _template_slot_names(template: Template) -> list[str]:
    """The template's slots as numbered kind names in order: <Object> <LR> <Object> <LR> -> Object1 LR1 Object2 LR2."""
    kind_of = {v: k for k, v in SLOT_KINDS.items()}
    seen: dict[str, int] = {}
    names = []
    for slot in template.slots:
        kind = kind_of[slot]
        seen[kind] = seen.get(kind, 0) + 1
        names.append(f"{kind}{seen[kind]}")
    return names


@dataclass(frozen=True)
class Phrasing:
    template: Template
    text: str                                   # with placeholders, as written in the bank
    filled: str                                 # delexicalised, as embedded
    order: dict[str, tuple[str, ...]]           # kind -> the slot names in the order the phrasing names them


def _phrasing(template: Template, text: str) -> Phrasing:
    names = _template_slot_names(template)
    order: dict[str, list[str]] = {}
    for m in _PLACEHOLDER.finditer(text):
        name = m.group(1) + (m.group(2) or "1")
        if name not in names:
            raise ValueError(f"phrasing {text!r} of template {template.id} names {{{m.group(0)}}}, which the "
                             f"template {template.text!r} has no slot for")
        order.setdefault(m.group(1), []).append(name)
    used = [n for names_ in order.values() for n in names_]
    if sorted(used) != sorted(names):
        raise ValueError(f"phrasing {text!r} must name each slot of template {template.id} ({', '.join(names)}) "
                         f"exactly once")
    plain = _PLACEHOLDER.sub(lambda m: _FILL_WORD[m.group(1)], text)
    words = matching_words(plain)
    return Phrasing(template, text, delexicalise(words, find_mentions(words)),
                    {k: tuple(v) for k, v in order.items()})


@dataclass
class PhrasingBank:
    """The phrasings per template and the calibrated threshold (`phrasings.json`)."""

    phrasings: list[Phrasing]
    threshold: float | None = None
    model: str | None = None
    calibration: dict | None = None
    reject: list[str] = field(default_factory=list)   # delexicalised questions the model does not answer

    @classmethod
    def load(cls, path: str | Path = BANK_FILE) -> "PhrasingBank":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        by_id = {t.id: t for t in TEMPLATES}
        phrasings = []
        for entry in data["templates"]:
            template = by_id[int(entry["id"])]
            # each template's own wording is a phrasing too
            texts = [_template_as_phrasing(template)] + list(entry["phrasings"])
            phrasings.extend(_phrasing(template, t) for t in dict.fromkeys(texts))
        missing = sorted(set(by_id) - {p.template.id for p in phrasings})
        if missing:
            raise ValueError(f"the phrasing bank {path} has no phrasings for templates {missing}")
        plain = (_PLACEHOLDER.sub(lambda m: _FILL_WORD[m.group(1)], t) for t in data.get("reject", []))
        reject = [delexicalise(w, find_mentions(w)) for w in map(matching_words, plain)]
        return cls(phrasings, data.get("threshold"), data.get("model"), data.get("calibration"), reject)

    @property
    def embedded(self) -> list[str]:
        """What is embedded: every phrasing, then every reject phrasing."""
        return [p.filled for p in self.phrasings] + self.reject

    @property
    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.embedded).encode()).hexdigest()[:16]


def _template_as_phrasing(template: Template) -> str:
    names = iter(_template_slot_names(template))
    return re.sub(r"<[A-Za-z]+>", lambda m: "{" + next(names) + "}", template.text.strip())


# ------------------------------------------------------------------------------------------------ results

@dataclass(frozen=True)
class Understanding:
    """What a question was understood as.

    `understood_as` is the filled template the model is asked (None when no template fits); `type` is the
    template's "Modality/Kind" ("unknown" when none fits); `keywords` its slot values; `similarity` the matched
    template's similarity (the mean cosine of its nearest phrasings; 1.0 for an exact template match, None when
    not computed);
    `status` one of STATUSES; `note` says in words why a question is not answered (or how it was matched).
    """

    text: str
    status: str
    understood_as: str | None = None
    template: Template | None = None
    keywords: tuple[str, ...] = ()
    similarity: float | None = None
    note: str | None = None
    suggestions: tuple[str, ...] = ()

    @property
    def answered(self) -> bool:
        return self.status == ANSWERED

    @property
    def type(self) -> str:
        return self.template.type if self.template is not None else UNKNOWN_TYPE

    @property
    def modality(self) -> str | None:
        return self.template.modality if self.template is not None else None

    @property
    def kind(self) -> str | None:
        return self.template.kind if self.template is not None else None


def readable_template(template: Template) -> str:
    """A template as a person reads it: 'Is the <Object> louder than the <Object>?' ->
    'Is the [instrument] louder than the [instrument]?'."""
    words = {"<Object>": "[instrument]", "<LR>": "[left/middle/right]", "<LRer>": "[leftmost/rightmost]",
             "<LL>": "[loudest/quietest]", "<FL>": "[first/last]", "<TH>": "[first/second/...]",
             "<BA>": "[before/after]"}
    text = template.text.strip().replace("？", "?")
    for slot, word in words.items():
        text = text.replace(slot, word)
    return text


# ------------------------------------------------------------------------------------------------ the matcher

_BANK_CACHE: dict[tuple[str, str], np.ndarray] = {}
_BANK_LOCK = threading.Lock()


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _non_latin_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum("LATIN" not in unicodedata.name(c, "") for c in letters) / len(letters)


#: What each template's answer is: yes/no, a count, or something else (an instrument, a place, a side).
YES_NO_TEMPLATES = frozenset({0, 1, 3, 4, 5, 6, 7, 14, 15, 16, 23, 25, 26, 27, 28})
COUNT_TEMPLATES = frozenset({2, 8, 9, 17, 18, 19, 20})
#: Count templates that count kinds of instrument ("How many types ...?"), not instruments: the two answers differ
#: when two players hold the same instrument, and only these words say which count is meant.
TYPE_COUNT_TEMPLATES = frozenset({9, 18})
_KIND_WORDS = frozenset({"type", "types", "kind", "kinds", "sort", "sorts", "variety", "varieties"})
#: "how many different instruments" means either count, so these words leave the choice to the similarity.
_EITHER_COUNT_WORDS = frozenset({"different", "distinct"})
#: "How many instruments did not sound from beginning to end?": the one count of what does not (always) sound.
NOT_SOUNDING_COUNT_TEMPLATE = 20
_NOT_SOUNDING_WORDS = frozenset({"not", "dont", "doesnt", "didnt", "arent", "isnt", "wasnt", "werent", "never",
                                 "silent", "quiet"})
#: Counts of what is seen; the other counts are of what sounds (`sense_fits`).
VISUAL_COUNT_TEMPLATES = frozenset({8, 9})
_HEARING_WORDS = frozenset({"hear", "hears", "heard", "hearing", "audible", "audibly", "listen", "listening",
                            "sound", "sounds", "sounding", "noise", "noises", "audio", "soundtrack", "ear", "ears"})
_SEEING_WORDS = frozenset({"see", "sees", "seen", "seeing", "visible", "visibly", "shown", "shows", "showing",
                           "appear", "appears", "appeared", "appearing", "screen", "onscreen", "spot", "watch",
                           "camera", "picture", "look", "looks", "view", "eye", "eyes"})
#: Templates answered with a place or a side ("Where is the performance?", "Which violin plays first?": left).
PLACE_TEMPLATES = frozenset({11, 22, 30, 32})
#: Comparatives: "Is A louder than B?" One of `_REVERSED_COMPARISON` in the question ("Is B quieter than A?",
#: "Does B play fewer notes?") means its instruments/positions are named in the opposite order.
COMPARATIVE_TEMPLATES = frozenset({3, 4, 5, 25, 26, 27, 28})
_REVERSED_COMPARISON = frozenset({"quieter", "softer", "weaker", "fainter", "shorter", "fewer", "slower", "less",
                                  "lower", "sparser", "quietly", "softly", "slowly", "lesser"})
#: Score subtracted when the question's form asks for another kind of answer than the template gives (a yes/no
#: question matched to a "How many" template, ...).
FORM_PENALTY = 0.1
#: Score subtracted when the question counts something else than the template (`counts_fit`) or names only the
#: other sense (`sense_fits`).
WORDING_PENALTY = 0.2
_AUXILIARIES = frozenset({"is", "are", "does", "do", "did", "was", "were", "can", "could", "has", "have", "will",
                          "would", "should", "isnt", "arent", "doesnt", "dont", "didnt", "wasnt", "cant"})
_WH = frozenset({"what", "which", "where", "who", "whats", "wheres", "whos", "name", "identify"})


#: "In which spot ...?", "On what side ...?", "Which side ...?": a place asked for without "where".
_PLACE_ASKED = re.compile(r"^(?:(?:in|on|at|from) )?(?:which|what) (?:spot|place|position|location|side|part)\b")


def question_form(words: Sequence[str]) -> str | None:
    """'count', 'yes_no', 'where' or 'wh' (what/which/...) when the wording says which kind of answer it asks for;
    None when unclear."""
    text = " ".join(words)
    if "how many" in text or "number of" in text or (words and words[0] == "count"):
        return "count"
    head = list(words[:4])
    for lead in (["tell", "me"], ["can", "you", "tell", "me"], ["could", "you", "tell", "me"], ["please"],
                 ["do", "you", "know"], ["i", "wonder"], ["check"], ["listen"]):
        if head[:len(lead)] == lead:
            words = words[len(lead):]
            break
    if not words:
        return None
    first = words[0]
    if first in ("if", "whether"):
        return "yes_no"
    if first in ("where", "wheres") or _PLACE_ASKED.match(" ".join(words)):
        return "where"
    if first in _WH:
        return "wh"
    if first in _AUXILIARIES:
        # "Is the performance indoors or outdoors?" asks to choose, not yes or no
        return None if "or" in words and "or not" not in text else "yes_no"
    return None


_CLAUSE_BREAK = re.compile(r"[:;,?!]")


def fronted_topic_form(text: str) -> str | None:
    """'where' or 'wh' when a question names its topic first and asks about it in a later clause ("the instrument
    heard first: where is it?"); None otherwise (a trailing "..., do you think?" says nothing about the form)."""
    for clause in _CLAUSE_BREAK.split(text)[1:]:
        form = question_form(matching_words(clause))
        if form is not None:
            return form if form in ("where", "wh") else None
    return None


def counts_fit(words: Sequence[str], template: Template) -> bool:
    """Whether a count template counts what the question counts: kinds of instrument or instruments."""
    if template.id not in COUNT_TEMPLATES:
        return True
    if _NOT_SOUNDING_WORDS.intersection(words) and template.id != NOT_SOUNDING_COUNT_TEMPLATE:
        return False
    if _KIND_WORDS.intersection(words):
        return template.id in TYPE_COUNT_TEMPLATES
    return template.id not in TYPE_COUNT_TEMPLATES or bool(_EITHER_COUNT_WORDS.intersection(words))


def sense_fits(words: Sequence[str], template: Template) -> bool:
    """Whether the sense a question names (hearing or seeing, not both) can be the template's: MUSIC-AVQA's Audio
    templates ask about the sound alone and its Visual ones about the picture alone; among the counts, what is
    seen (8, 9) and what sounds (2, 17-20) split the same way although 17-20 are typed Audio-Visual."""
    hearing, seeing = bool(_HEARING_WORDS.intersection(words)), bool(_SEEING_WORDS.intersection(words))
    if hearing == seeing:
        return True
    counts = template.id in COUNT_TEMPLATES
    seen_only = template.modality == "Visual" or template.id in VISUAL_COUNT_TEMPLATES
    heard_only = template.modality == "Audio" or (counts and template.id not in VISUAL_COUNT_TEMPLATES)
    return not (seen_only if hearing else heard_only)


def form_fits(form: str | None, template: Template) -> bool:
    """Whether a question of this form can mean the template (an unclear form fits every template)."""
    if form is None:
        return True
    if form == "yes_no":
        return template.id in YES_NO_TEMPLATES
    if form == "count":
        return template.id in COUNT_TEMPLATES
    if form == "where":
        return template.id in PLACE_TEMPLATES
    return template.id not in YES_NO_TEMPLATES and template.id not in COUNT_TEMPLATES


_SIDE_KINDS = ("LR", "LRer")


def dropped_side(template: Template, mentions: Sequence[Mention]) -> str | None:
    """The side word ('right', 'leftmost', ...) a question uses to pick out one player when the template has no
    side slot to carry it, else None. Why: "is the fiddle on the right playing?" matched to "Is the violin in the
    video always playing?" answers about whichever violin, which is a confident answer to another question. A
    question naming both sides offers them as options ("the loudest, left or right?") and drops nothing."""
    if any(SLOT_KINDS[k] in template.slots for k in _SIDE_KINDS):
        return None
    sides = [m for m in mentions if any(k in _SIDE_KINDS for k in m.kinds)]
    values = {m.value("LR") or m.value("LRer") for m in sides}
    return sides[0].surface if len(values) == 1 else None


@dataclass
class _Candidate:
    template: Template
    phrasing: Phrasing
    similarity: float
    values: tuple[str, ...] | None      # None: the question's words cannot fill the template's slots
    unused: tuple[Mention, ...] = ()    # the question's slot words the template leaves out
    form_mismatch: bool = False
    wording_mismatch: bool = False      # counts or names a sense the template does not (counts_fit, sense_fits)

    @property
    def leftover(self) -> int:
        return len(self.unused)

    @property
    def score(self) -> float:
        return (self.similarity - LEFTOVER_PENALTY * self.leftover - FORM_PENALTY * self.form_mismatch
                - WORDING_PENALTY * self.wording_mismatch)


_SLOT_NAMES: dict[int, list[str]] = {t.id: _template_slot_names(t) for t in TEMPLATES}
#: Words that introduce what a comparison is measured against ("compared with the piano").
_REFERENCE_PHRASES = (("compared", "with"), ("compared", "to"), ("comparison", "with"), ("comparison", "to"),
                      ("relative", "to"))


def _reference_first(words: Sequence[str], mentions: Sequence[Mention]) -> bool:
    """Whether the question opens with the comparison's reference: a reference phrase before every slot word."""
    if not mentions:
        return False
    first = min(m.start for m in mentions)
    return any(tuple(words[i:i + len(p)]) == p for p in _REFERENCE_PHRASES for i in range(first - len(p) + 1))


def slot_order(template: Template, phrasing_order: dict[str, tuple[str, ...]], words: Sequence[str],
               mentions: Sequence[Mention] = ()) -> dict[str, tuple[str, ...]]:
    """Which slot each kind's words fill, in the order they appear in the question.

    Comparatives follow the comparison word ('quieter' reverses the template's order) and a leading reference
    ("Compared with A, is B louder?" names the template's second instrument first); other templates follow the
    phrasing that matched."""
    if template.id not in COMPARATIVE_TEMPLATES:
        return phrasing_order
    reverse = bool(_REVERSED_COMPARISON.intersection(words)) != _reference_first(words, mentions)
    return {kind: tuple(sorted(names, reverse=reverse)) for kind, names in phrasing_order.items()}


def fill_slots(template: Template, order: dict[str, tuple[str, ...]], words: Sequence[str],
               mentions: Sequence[Mention]) -> tuple[tuple[str, ...] | None, tuple[Mention, ...]]:
    """The template's slot values from the question's slot words, and the slot words left unused.

    Each kind's slot words fill that kind's slots in `order` (see `slot_order`); (None, ()) when a slot cannot be
    filled. A template needing an order (<FL>/<TH>) that the question does not spell out takes 'first' from words
    like 'starts'/'begins' ('last' from 'ends'/'finishes').
    """
    names = _SLOT_NAMES[template.id]
    values: dict[str, str] = {}
    used: set[int] = set()
    for kind, slot_names in order.items():
        found = [(i, m) for i, m in enumerate(mentions) if i not in used and kind in m.kinds]
        if len(found) < len(slot_names) and kind in ("FL", "TH") and len(slot_names) == 1:
            implied = ("first" if _IMPLIED_FIRST.intersection(words) else
                       "last" if kind == "FL" and _IMPLIED_LAST.intersection(words) else None)
            if implied is None:
                return None, ()
            values[slot_names[0]] = implied
            continue
        if len(found) < len(slot_names):
            return None, ()
        for name, (i, m) in zip(slot_names, found):
            values[name] = m.value(kind)  # type: ignore[assignment]
            used.add(i)
    return tuple(values[n] for n in names), tuple(m for i, m in enumerate(mentions) if i not in used)


class QuestionUnderstander:
    """Maps free text onto templates (see the module docstring). Thread-compatible: `understand_all` calls `embed`
    on the caller's thread (the pipeline calls it on its text thread, where the tokenizer lives).

    `embed(texts) -> [N, D]` sentence embeddings (normalised here); None understands exact template wording only.
    `instruments`: the instruments the checkpoint knows (others make a question `unknown_instrument`).
    `cache_key` names the embedding model: banks embedded with it are kept for the process's lifetime.
    """

    #: A template's similarity to a question: the mean cosine of its `top_k` nearest phrasings (one lucky phrasing
    #: sharing a few words with the question counts less than several that mean the same).
    top_k = 2

    def __init__(self, embed: Embed | None, instruments: Sequence[str] = INSTRUMENTS,
                 bank: PhrasingBank | None = None, threshold: float | None = None, cache_key: str | None = None):
        self.embed = embed
        self.instruments = tuple(instruments)
        self.bank = bank or PhrasingBank.load()
        self.threshold = float(threshold if threshold is not None else
                               self.bank.threshold if self.bank.threshold is not None else DEFAULT_THRESHOLD)
        ids = np.array([p.template.id for p in self.bank.phrasings])
        rows = [np.flatnonzero(ids == t.id) for t in TEMPLATES]
        if min(len(r) for r in rows) < self.top_k:
            thin = [t.id for t, r in zip(TEMPLATES, rows) if len(r) < self.top_k]
            raise ValueError(f"the phrasing bank needs at least {self.top_k} phrasings per template; "
                             f"templates {thin} have fewer")
        # every template's phrasing rows, padded to one matrix, so a question's similarity to all 33 templates is
        # a few array operations rather than a Python loop
        self._rows = np.zeros((len(TEMPLATES), max(len(r) for r in rows)), dtype=np.int64)
        self._rows_real = np.zeros(self._rows.shape, dtype=bool)
        for i, r in enumerate(rows):
            self._rows[i, :len(r)] = r
            self._rows_real[i, :len(r)] = True
        self.matrix: np.ndarray | None = None
        if embed is not None:
            key = (cache_key, self.bank.digest) if cache_key else None
            with _BANK_LOCK:
                matrix = _BANK_CACHE.get(key) if key else None
                if matrix is None:
                    matrix = _normalise_rows(embed(self.bank.embedded))
                    if key:
                        _BANK_CACHE[key] = matrix
            self.matrix = matrix

    # -- public ---------------------------------------------------------------------------------------------
    def understand(self, text: str) -> Understanding:
        return self.understand_all([text])[0]

    def understand_all(self, texts: Sequence[str]) -> list[Understanding]:
        """One Understanding per text, in order; the texts needing the semantic matcher are embedded in one call."""
        out: list[Understanding | None] = []
        pending: list[tuple[int, list[str], list[Mention], str]] = []
        for i, text in enumerate(texts):
            done, words, mentions = self._before_embedding(text)
            out.append(done)
            if done is None:
                pending.append((i, words, mentions, delexicalise(words, mentions)))
        if pending:
            vectors = _normalise_rows(self.embed([d for *_, d in pending]))  # type: ignore[misc]
            for (i, words, mentions, _), vec in zip(pending, vectors):
                out[i] = self._semantic(texts[i], words, mentions, vec)
        return out  # type: ignore[return-value]

    def scores(self, texts: Sequence[str]) -> list[dict]:
        """Calibration read-outs per text: the best fillable template's similarity (None if none fits) and the
        status the text would get at a threshold of -inf (refusals that do not depend on the threshold)."""
        saved = self.threshold
        self.threshold = -np.inf
        try:
            results = self.understand_all(texts)
        finally:
            self.threshold = saved
        return [{"similarity": u.similarity, "status": u.status,
                 "template": u.template.id if u.template is not None else None, "keywords": list(u.keywords)}
                for u in results]

    # -- steps ----------------------------------------------------------------------------------------------
    def _before_embedding(self, text) -> tuple[Understanding | None, list[str], list[Mention]]:
        if not isinstance(text, str):
            return Understanding(str(text), INVALID, note=f"a question must be text, not {type(text).__name__}"), [], []
        stripped = text.strip()
        if not stripped:
            return Understanding(text, INVALID, note="empty question: type a question such as "
                                                     "'Where is the loudest instrument?'"), [], []
        if len(stripped) > MAX_QUESTION_CHARS:
            return Understanding(text, INVALID, note=f"question too long ({len(stripped):,} characters; at most "
                                                     f"{MAX_QUESTION_CHARS}): ask one short question per line"), [], []
        try:
            parsed = parse(stripped)
        except EmptyQuestionError:
            return Understanding(text, INVALID, note="this question has no words: type a question such as "
                                                     "'Where is the loudest instrument?'"), [], []
        if parsed.template is not None:
            return self._finish(text, parsed.template, tuple(parsed.keywords), 1.0, parsed.note), [], []
        if _non_latin_share(stripped) > 0.3:
            return Understanding(text, OUT_OF_SCOPE, note="only questions in English are understood; "
                                 + self._suggestion_text(())), [], []
        if self.embed is None:
            return Understanding(text, OUT_OF_SCOPE, note="this question is not worded as one of the 33 supported "
                                 "questions (this checkpoint understands only their exact wording)"), [], []
        words = matching_words(stripped)
        return None, words, find_mentions(words)

    def _semantic(self, text: str, words: list[str], mentions: list[Mention], vec: np.ndarray) -> Understanding:
        all_sims = self.matrix @ vec  # type: ignore[operator]
        sims = all_sims[:len(self.bank.phrasings)]
        reject_sim = float(all_sims[len(self.bank.phrasings):].max(initial=-1.0))
        form = question_form(words) or fronted_topic_form(text)
        per_row = np.where(self._rows_real, sims[self._rows], -np.inf)             # [templates, phrasings]
        nearest = self._rows[np.arange(len(TEMPLATES)), per_row.argmax(axis=1)]
        template_sims = np.sort(per_row, axis=1)[:, -self.top_k:].mean(axis=1)

        def candidate(i: int) -> _Candidate:
            template, phrasing = TEMPLATES[i], self.bank.phrasings[int(nearest[i])]
            values, unused = fill_slots(template, slot_order(template, phrasing.order, words, mentions), words,
                                        mentions)
            return _Candidate(template, phrasing, float(template_sims[i]), values, unused,
                              not form_fits(form, template),
                              not (counts_fit(words, template) and sense_fits(words, template)))

        # Penalties only lower a score below its similarity, so templates are tried from the most similar down and
        # the search stops once no similarity left can reach the best score found (same result as trying all).
        by_similarity = np.argsort(-template_sims, kind="stable")
        candidates: list[_Candidate] = []
        best_score = -np.inf
        for i in by_similarity:
            if template_sims[i] < best_score:
                break
            c = candidate(int(i))
            candidates.append(c)
            if c.values is not None:
                best_score = max(best_score, c.score)
        candidates.sort(key=lambda c: c.template.id)       # an exact tie goes to the lower template id
        fillable = [c for c in candidates if c.values is not None]
        best_c = max(fillable, key=lambda c: (c.score, c.similarity)) if fillable else None

        def refuse(why: str) -> Understanding:
            """Not answered, saying why, with the nearest supported questions as suggestions."""
            suggestions = self._suggestions([candidate(int(i)) for i in by_similarity[:3]], mentions)
            return Understanding(text, OUT_OF_SCOPE, similarity=None if best_c is None else round(best_c.similarity, 4),
                                 note=f"not answered: {why}; " + self._suggestion_text(suggestions),
                                 suggestions=tuple(suggestions))

        if best_c is not None and reject_sim > best_c.similarity:
            return refuse("it is nearer to questions the model does not answer (about people, looks, names, prices, "
                          "the song, ...) than to a supported one")
        if best_c is None:
            return refuse("no supported question fits the words it uses")
        if best_c.similarity < self.threshold:
            return refuse("it does not look like one of the supported questions about the clip (only questions in "
                          "English are understood)")
        dropped = dropped_side(best_c.template, mentions)
        if dropped is not None:
            return refuse(f"the nearest supported question cannot say '{dropped}', so its answer would be about "
                          "another player")
        if best_c.form_mismatch and best_c.unused:
            # asked in another form (yes/no, how many, where) and leaving a slot word out: another question
            return refuse(f"the nearest supported question asks something else and leaves out "
                          f"'{best_c.unused[0].surface}'")
        unknown = [m.value("Object") for m in mentions
                   if m.value("Object") is not None and m.value("Object") not in self.instruments]
        return self._finish(text, best_c.template, best_c.values,  # type: ignore[arg-type]
                            round(best_c.similarity, 4), None, extra_unknown=unknown)

    def _finish(self, text: str, template: Template, values: tuple[str, ...], similarity: float,
                note: str | None, extra_unknown: Sequence[str] = ()) -> Understanding:
        understood = fill_template(template.text, list(values))
        unknown = list(dict.fromkeys([v for s, v in zip(template.slots, values)
                                      if s == "<Object>" and v not in self.instruments] + list(extra_unknown)))
        if unknown:
            known = ", ".join(i.replace("_", " ") for i in self.instruments)
            names = ", ".join(u.replace("_", " ") for u in unknown)
            return Understanding(text, UNKNOWN_INSTRUMENT, understood, template, values, similarity,
                                 note=f"not answered: this model was not trained on the {names}; it knows "
                                      f"{len(self.instruments)} instruments: {known}")
        return Understanding(text, ANSWERED, understood, template, values, similarity, note)

    def _suggestions(self, candidates: list[_Candidate], mentions: Sequence[Mention], k: int = 3) -> list[str]:
        ranked = sorted(candidates, key=lambda c: -c.similarity)[:k]
        out = []
        for c in ranked:
            if c.values is not None and all(v in self.instruments or s != "<Object>"
                                            for s, v in zip(c.template.slots, c.values)):
                out.append(fill_template(c.template.text, list(c.values)) + "?")
            else:
                out.append(readable_template(c.template))
        return out

    @staticmethod
    def _suggestion_text(suggestions: Sequence[str]) -> str:
        if not suggestions:
            suggestions = [readable_template(TEMPLATES[i]) for i in (19, 22, 29)]
        return "try for example: " + " / ".join(f"'{s}'" for s in suggestions)

