"""Questions and answers from scene graphs, and their balancing.

Every one of the 33 MUSIC-AVQA templates has an answer function here that reads the scene graph and returns the
answer, or None when the question does not apply to the scene (its object is not there) or would be ambiguous
(two sources start 0.3 s apart: which was first is not a fair question). Ambiguity margins are explicit
constants so a question is only asked when a person could answer it from the clip.

Conventions follow the MUSIC-AVQA annotations: counts are number words, locations left/middle/right,
"Where is the performance?" indoor/outdoor, "Which <Object> makes the sound first?" answers a position or
"simultaneously". Comparatives need both sources sounding and a clear difference.

Balancing (`select_questions`) is what keeps a question-only model near chance: for each video it asks the
templates asked least so far, picks per template the candidate whose answer is rarest so far within the
template (yes/no: within the template and its first slot value), and finally caps majority answers.
It needs no rendering, so benchmarks and tests can generate and check thousands of questions in seconds.
"""
from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from mcd.synth.scene import POSITIONS, WORLD_INSTRUMENTS, Player, Scene, Source
from mcd.synth.world import VISIBLE_INSTRUMENTS
from mcd.task.questions import SLOT_DOMAINS, TEMPLATES, TEMPLATE_BY_TEXT, Template, fill_template
from mcd.task.vocab import ANSWERS, count_word

LOUDNESS_MARGIN = 0.2   # loudness units (6 dB) between two sources compared for loudness
RATE_RATIO = 1.6        # note-rate ratio between two sources compared for rhythm
LENGTH_MARGIN = 1.5     # seconds of sounding time between two sources compared for "playing longer"
ONSET_GAP = 1.0         # seconds between entries for an order ("first", "after") to be asked
SAME_TIME = 0.05        # entries closer than this are simultaneous
OVERLAP_MIN = 1.0       # seconds two sources must overlap to "sound at the same time"

YES_NO = ("yes", "no")
_ANSWER_SET = frozenset(ANSWERS)


class QAError(ValueError):
    """A question that cannot be asked at all: unknown template, wrong number of values, value outside its slot."""


@dataclass(frozen=True)
class QA:
    """One question about one scene: template, slot values (in order) and the ground-truth answer."""

    template: Template
    values: tuple[str, ...]
    answer: str

    @property
    def question(self) -> str:
        """The question as people read it (the loaders' filling plus the question mark)."""
        return fill_template(self.template.text, list(self.values)) + "?"

    @property
    def group(self) -> tuple:
        """The balancing group: yes/no answers are balanced per template and first slot value."""
        if self.answer in YES_NO and self.values:
            return (self.template.id, self.values[0])
        return (self.template.id,)


# ------------------------------------------------------------------------------------------------ scene helpers

def _yn(b: bool) -> str:
    return "yes" if b else "no"


def _sounding(scene: Scene) -> list[Source]:
    return [s for s in scene.sources if s.sounds]


def _unique(sources: Iterable[Source], instrument: str) -> Source | None:
    """The one source playing `instrument`; None if there are none or several (the question would be ambiguous)."""
    found = [s for s in sources if s.instrument == instrument]
    return found[0] if len(found) == 1 else None


def _neighbour(scene: Scene, player: Source, side: str) -> Player | None:
    """The nearest visible player on the `side` (left/right) of `player`."""
    i = next((i for i, p in enumerate(scene.players) if p is player), None)
    if side not in ("left", "right") or i is None:
        return None
    j = i - 1 if side == "left" else i + 1
    return scene.players[j] if 0 <= j < len(scene.players) else None


def _entries(scene: Scene) -> list[Source]:
    """Sounding sources in order of entry (first onset)."""
    return sorted(_sounding(scene), key=lambda s: s.onset)


def _nth_entry(scene: Scene, n: int) -> Source | None:
    """The n-th source to come in (0-based), if its entry is clearly separated from the entries around it."""
    order = _entries(scene)
    if n >= len(order):
        return None
    if n > 0 and order[n].onset - order[n - 1].onset < ONSET_GAP:
        return None
    if n + 1 < len(order) and order[n + 1].onset - order[n].onset < ONSET_GAP:
        return None
    return order[n]


def _first_last(scene: Scene, fl: str) -> Source | None:
    """The first or last source to come in; 'last' needs at least two sources."""
    order = _entries(scene)
    if fl == "first":
        return _nth_entry(scene, 0)
    if fl == "last" and len(order) >= 2:
        return _nth_entry(scene, len(order) - 1)
    return None


def _overlap(a: Source, b: Source) -> float:
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a.intervals for s2, e2 in b.intervals)


def _compare(a: Source | None, b: Source | None, what: str) -> str | None:
    """yes/no for 'a is louder / more rhythmic / longer than b', None when either is silent or too close."""
    if a is None or b is None or a is b or not (a.sounds and b.sounds):
        return None
    if what == "louder":
        d = a.loudness - b.loudness
        return None if abs(d) < LOUDNESS_MARGIN else _yn(d > 0)
    if what == "rhythmic":
        r = a.rate / b.rate
        return None if 1 / RATE_RATIO < r < RATE_RATIO else _yn(r > 1)
    d = a.sounding_time - b.sounding_time
    return None if abs(d) < LENGTH_MARGIN else _yn(d > 0)


def _position(src: Source | None) -> str | None:
    return src.position if isinstance(src, Player) else None


def keyword_referent(scene: Scene, word: str) -> Source | None:
    """The one source a template keyword names on its own in this scene, by the answer functions' own rules.

    An instrument names its only source ("violin"; None when two violins play), a position its player ("left",
    "leftest"), an order word the source that comes in at that place ("first", "third", "last"; None when the
    entries are too close to tell), "loudest"/"lowest" the source clearly louder/quieter than the others. Words
    that relate two things ("before", "after") name nothing alone. Used to teach keywords what they point at
    (mcd.synth.grounding).
    """
    if word in WORLD_INSTRUMENTS:
        return _unique(scene.sources, word)
    if word in POSITIONS:
        return scene.player_at(word)
    if word in ("leftest", "rightest"):
        if len(scene.players) < 2:
            return None
        return scene.players[0] if word == "leftest" else scene.players[-1]
    if word == "last":
        return _first_last(scene, word)
    if word in SLOT_DOMAINS["<TH>"]:
        return _nth_entry(scene, SLOT_DOMAINS["<TH>"].index(word))
    if word in ("loudest", "lowest"):
        order = sorted(_sounding(scene), key=lambda x: x.loudness, reverse=(word == "loudest"))
        if not order or (word == "lowest" and len(order) < 2):
            return None
        if len(order) >= 2 and abs(order[0].loudness - order[1].loudness) < LOUDNESS_MARGIN:
            return None
        return order[0]
    return None


# ------------------------------------------------------------------------------------------------ answer functions
# One per template, in template order. Each takes the scene and the slot values, returns an answer or None.

Values = tuple[str, ...]
Answer = str | None


def _t_sound(s: Scene, v: Values) -> Answer: return _yn(any(x.instrument == v[0] for x in _sounding(s)))
def _t_two_sounds(s: Scene, v: Values) -> Answer:
    if v[0] == v[1]:
        return None
    heard = {x.instrument for x in _sounding(s)}
    return _yn(v[0] in heard and v[1] in heard)
def _t_heard_count(s: Scene, v: Values) -> Answer: return count_word(len(_sounding(s)))
def _t_audio_louder(s: Scene, v: Values) -> Answer:
    return _compare(_unique(s.sources, v[0]), _unique(s.sources, v[1]), "louder")
def _t_audio_rhythmic(s: Scene, v: Values) -> Answer:
    return _compare(_unique(s.sources, v[0]), _unique(s.sources, v[1]), "rhythmic")
def _t_audio_longer(s: Scene, v: Values) -> Answer:
    return _compare(_unique(s.sources, v[0]), _unique(s.sources, v[1]), "longer")
def _t_visible(s: Scene, v: Values) -> Answer: return _yn(any(p.instrument == v[0] for p in s.players))
def _t_two_visible(s: Scene, v: Values) -> Answer:
    if v[0] == v[1]:
        return None
    seen = {p.instrument for p in s.players}
    return _yn(v[0] in seen and v[1] in seen)
def _t_visible_count(s: Scene, v: Values) -> Answer: return count_word(sum(p.instrument == v[0] for p in s.players))
def _t_visible_types(s: Scene, v: Values) -> Answer: return count_word(len({p.instrument for p in s.players}))
def _t_beside(s: Scene, v: Values) -> Answer:
    p = _unique(s.players, v[1])
    n = _neighbour(s, p, v[0]) if p is not None else None
    return n.instrument if n is not None else None
def _t_where_performance(s: Scene, v: Values) -> Answer: return s.background
def _t_leftest(s: Scene, v: Values) -> Answer:
    src = keyword_referent(s, v[0])
    return src.instrument if src is not None else None
def _t_what_instrument(s: Scene, v: Values) -> Answer:
    kinds = {p.instrument for p in s.players}
    return kinds.pop() if len(kinds) == 1 else None
def _t_always(s: Scene, v: Values) -> Answer:
    p = _unique(s.players, v[0])
    return _yn(p.always(s.duration)) if p is not None else None
def _t_voiceover(s: Scene, v: Values) -> Answer: return _yn(s.voiceover is not None)
def _t_from_video(s: Scene, v: Values) -> Answer: return _yn(s.offscreen is None)
def _t_sounding_object(s: Scene, v: Values) -> Answer:
    if v[0] not in {x.instrument for x in s.sources}:
        return None
    return count_word(sum(p.instrument == v[0] and p.sounds for p in s.players))
def _t_sounding_types(s: Scene, v: Values) -> Answer:
    return count_word(len({p.instrument for p in s.players if p.sounds}))
def _t_sounding_count(s: Scene, v: Values) -> Answer: return count_word(sum(p.sounds for p in s.players))
def _t_silent_count(s: Scene, v: Values) -> Answer: return count_word(sum(not p.sounds for p in s.players))
def _t_same_time(s: Scene, v: Values) -> Answer:
    target = _unique(s.sources, v[0])
    if target is None or not target.sounds:
        return None
    others = [(x, _overlap(target, x)) for x in _sounding(s) if x is not target]
    if any(0 < ov < OVERLAP_MIN for _, ov in others):
        return None
    kinds = {x.instrument for x, ov in others if ov >= OVERLAP_MIN}
    return kinds.pop() if len(kinds) == 1 else None
def _t_loudest(s: Scene, v: Values) -> Answer: return _position(keyword_referent(s, v[0]))
def _t_first_from(s: Scene, v: Values) -> Answer:
    src, player = _first_last(s, v[0]), s.player_at(v[1])
    return _yn(src is player) if src is not None and player is not None else None
def _t_beside_first(s: Scene, v: Values) -> Answer:
    src = _first_last(s, v[1])
    n = _neighbour(s, src, v[0]) if src is not None else None
    return n.instrument if n is not None else None
def _t_lr_louder(s: Scene, v: Values) -> Answer:
    return None if v[0] == v[1] else _compare(s.player_at(v[0]), s.player_at(v[1]), "louder")
def _t_lr_rhythmic(s: Scene, v: Values) -> Answer:
    return None if v[0] == v[1] else _compare(s.player_at(v[0]), s.player_at(v[1]), "rhythmic")
def _at(s: Scene, instrument: str, position: str) -> Player | None:
    p = s.player_at(position)
    return p if p is not None and p.instrument == instrument else None
def _t_obj_louder(s: Scene, v: Values) -> Answer:
    return None if v[1] == v[3] else _compare(_at(s, v[0], v[1]), _at(s, v[2], v[3]), "louder")
def _t_obj_rhythmic(s: Scene, v: Values) -> Answer:
    return None if v[1] == v[3] else _compare(_at(s, v[0], v[1]), _at(s, v[2], v[3]), "rhythmic")
def _t_nth_in(s: Scene, v: Values) -> Answer:
    src = _nth_entry(s, SLOT_DOMAINS["<TH>"].index(v[0]))
    return src.instrument if src is not None else None
def _t_where_first(s: Scene, v: Values) -> Answer: return _position(_first_last(s, v[0]))
def _t_before_after(s: Scene, v: Values) -> Answer:
    target = _unique(s.sources, v[1])
    if target is None or not target.sounds:
        return None
    order = _entries(s)
    i = next(i for i, x in enumerate(order) if x is target)
    j = i - 1 if v[0] == "before" else i + 1
    if not 0 <= j < len(order) or _nth_entry(s, i) is None or _nth_entry(s, j) is None:
        return None
    return order[j].instrument
def _t_which_first(s: Scene, v: Values) -> Answer:
    same = [p for p in s.players if p.instrument == v[0]]
    playing = sorted((p for p in same if p.sounds), key=lambda p: p.onset, reverse=(v[1] == "last"))
    if len(same) < 2 or not playing:
        return None
    if len(playing) == 1:
        return playing[0].position
    gap = abs(playing[0].onset - playing[1].onset)
    if gap < SAME_TIME:
        return "simultaneously"
    return playing[0].position if gap >= ONSET_GAP else None


_ANSWERERS: dict[str, Callable[[Scene, tuple[str, ...]], str | None]] = {
    "Is there a <Object> sound?": _t_sound,
    "Are there <Object> and <Object> sound? ": _t_two_sounds,
    "How many musical instruments were heard throughout the video?": _t_heard_count,
    "Is the <Object> louder than the <Object>?": _t_audio_louder,
    "Is the <Object> more rhythmic than the <Object>?": _t_audio_rhythmic,
    "Is the <Object> playing longer than the <Object>?": _t_audio_longer,
    "Is there a <Object> in the entire video?": _t_visible,
    "Are there <Object> and <Object> instruments in the video?": _t_two_visible,
    "How many <Object> are in the entire video?": _t_visible_count,
    "How many types of musical instruments appeared in the entire video?": _t_visible_types,
    "What is the instrument on the <LR> of <Object>?": _t_beside,
    "Where is the performance?": _t_where_performance,
    "What kind of instrument is the <LRer> instrument? ": _t_leftest,
    "What kind of musical instrument is it?": _t_what_instrument,
    "Is the <Object> in the video always playing?": _t_always,
    "Is there a voiceover?": _t_voiceover,
    "Is this sound from the instrument in the video?": _t_from_video,
    "How many sounding <Object> in the video？": _t_sounding_object,
    "How many types of musical instruments sound in the video?": _t_sounding_types,
    "How many instruments are sounding in the video?": _t_sounding_count,
    "How many instruments in the video did not sound from beginning to end?": _t_silent_count,
    "Which is the musical instrument that sounds at the same time as the <Object>?": _t_same_time,
    "Where is the <LL> instrument?": _t_loudest,
    "Is the <FL> sound coming from the <LR> instrument?": _t_first_from,
    "What is the <LR> instrument of the <FL> sounding instrument?": _t_beside_first,
    "Is the instrument on the <LR> louder than the instrument on the <LR>?": _t_lr_louder,
    "Is the instrument on the <LR> more rhythmic than the instrument on the <LR>?": _t_lr_rhythmic,
    "Is the <Object> on the <LR> louder than the <Object> on the <LR>?": _t_obj_louder,
    "Is the <Object> on the <LR> more rhythmic than the <Object> on the <LR>?": _t_obj_rhythmic,
    "What is the <TH> instrument that comes in?": _t_nth_in,
    "Where is the <FL> sounding instrument?": _t_where_first,
    "Which instrument makes sounds <BA> the <Object>?": _t_before_after,
    "Which <Object> makes the sound <FL>?": _t_which_first,
}
assert set(_ANSWERERS) == set(TEMPLATE_BY_TEXT), "every template needs an answer function"

#: Templates whose <Object> may name an instrument that is not in the scene at all (answer "no" / "zero").
_ANY_OBJECT = {0, 1, 6, 7, 8}
#: Of those, the ones about what is seen: they only name instruments that can be seen (have a glyph), since
#: "Is there a cello in the entire video?" would always be "no" in a world that never draws a cello.
_SEEN_OBJECT = {6, 7, 8}
SUPPORTED_TEMPLATES: tuple[Template, ...] = TEMPLATES  # the world supports all 33 (see docs/synth.md)


def _template(t: Template | str | int) -> Template:
    if isinstance(t, Template):
        return t
    if isinstance(t, int) and not isinstance(t, bool) and 0 <= t < len(TEMPLATES):
        return TEMPLATES[t]
    if isinstance(t, str) and t in TEMPLATE_BY_TEXT:
        return TEMPLATE_BY_TEXT[t]
    raise QAError(f"unknown template {t!r}: give a Template, its id (0..{len(TEMPLATES) - 1}) or its exact text")


def answer(scene: Scene, template: Template | str | int, values: Iterable[str] = ()) -> str | None:
    """The answer to one question about `scene`, or None when the question does not apply or is ambiguous."""
    t = _template(template)
    values = tuple(values)
    if len(values) != len(t.slots):
        raise QAError(f"template {t.text!r} has {len(t.slots)} slot(s), got {len(values)} value(s): {list(values)}")
    for slot, value in zip(t.slots, values):
        domain = scene.instruments if slot == "<Object>" else SLOT_DOMAINS[slot]
        if value not in domain:
            raise QAError(f"{value!r} is not a valid {slot} value in this world ({', '.join(domain)})")
    result = _ANSWERERS[t.text](scene, values)
    if result is not None and result not in _ANSWER_SET:
        raise AssertionError(f"answer {result!r} to {t.text!r} is outside the answer vocabulary")
    return result


def candidates(scene: Scene) -> dict[int, list[QA]]:
    """Every answerable question about `scene`, grouped by template id. `<Object>` ranges over the instruments of
    the scene's sound bank (the 10 v1 instruments for the procedural bank, all 22 for a soundfont)."""
    present = sorted({s.instrument for s in scene.sources}, key=WORLD_INSTRUMENTS.index)
    world = scene.instruments
    out: dict[int, list[QA]] = {}
    for t in TEMPLATES:
        domains = []
        for slot in t.slots:
            if slot == "<Object>":
                if t.id in _SEEN_OBJECT:
                    domains.append(VISIBLE_INSTRUMENTS)
                else:
                    domains.append(world if t.id in _ANY_OBJECT else present)
            else:
                domains.append(SLOT_DOMAINS[slot])
        found = []
        for values in itertools.product(*domains):
            a = _ANSWERERS[t.text](scene, values)
            if a is not None:
                found.append(QA(t, tuple(values), a))
        if found:
            out[t.id] = found
    return out


# ------------------------------------------------------------------------------------------------ modality shortcuts

def visual_view(scene: Scene) -> Scene:
    """What an observer who only sees the clip would assume: every visible player plays throughout, all equally
    loud and fast, nothing is heard that is not seen."""
    players = [Player(p.instrument, 0.5, 1.0, p.pitch, [(0.0, scene.duration)], position=p.position, bbox=p.bbox)
               for p in scene.players]
    return Scene(scene.video_id, scene.background, players, duration=scene.duration, style=scene.style)


def audio_view(scene: Scene) -> Scene:
    """What an observer who only hears the clip would assume: every source heard is on screen (at positions
    it cannot know: placed left to right in name order), nobody on screen is silent."""
    heard = sorted(_sounding(scene), key=lambda x: (x.instrument, x.onset, x.loudness))
    slots = {1: ["middle"], 2: ["left", "right"]}.get(len(heard), list(POSITIONS))
    players = [Player(x.instrument, x.loudness, x.rate, x.pitch, list(x.intervals), position=pos)
               for x, pos in zip(heard, slots)]
    rest = heard[len(players):]
    off = None
    if rest:  # four sources, three slots: the last is heard off screen
        off = Source(rest[0].instrument, rest[0].loudness, rest[0].rate, rest[0].pitch, list(rest[0].intervals))
    return Scene(scene.video_id, "indoor", players, offscreen=off,
                 voiceover=scene.voiceover, duration=scene.duration, style=scene.style)


#: Audio-visual templates that MUSIC-AVQA itself made answerable by ear (voiceover, entry order, "always
#: playing", overlap): their audio shortcut is inherent, only the visual one is limited.
AUDIO_INHERENT = frozenset({14, 15, 21, 29, 31})


def shortcut_guesses(scene: Scene, qa: QA, views: tuple[Scene, Scene] | None = None) -> tuple[str | None, str | None]:
    """The answers the visual-only and the audio-only observer would give (None: it cannot tell)."""
    vis, aud = views if views is not None else (visual_view(scene), audio_view(scene))
    answerer = _ANSWERERS[qa.template.text]
    return answerer(vis, qa.values), answerer(aud, qa.values)


def shortcut_hits(scene: Scene, qa: QA, views: tuple[Scene, Scene] | None = None) -> tuple[bool, bool]:
    """Would the visual-only / audio-only observer answer `qa` correctly? (Cannot tell counts as a miss.)"""
    v, a = shortcut_guesses(scene, qa, views)
    return v == qa.answer, a == qa.answer


# ------------------------------------------------------------------------------------------------ balancing

YES_NO_CAP = 1.1      # majority yes/no answer at most 1.1x the minority in each group (<= 52.4%)
MULTI_CAP = 1.25      # any other answer at most 1.25x the second most frequent answer of its template
SHORTCUT_MAX = 0.6    # an audio-visual template: at most this share answerable from one modality alone


def select_questions(scenes: list[Scene], per_video: int, seed: int) -> list[list[QA]]:
    """Balanced questions for `scenes` (one split), at most `per_video` per scene and one per template.

    Greedy choice keeps templates and answers even as it goes, and keeps every audio-visual template's
    one-modality shortcut (see `visual_view`, `audio_view`) at or below SHORTCUT_MAX; a final cap removes the
    surplus of majority answers. Deterministic in (scenes, per_video, seed).
    """
    if per_video < 1:
        raise QAError(f"questions per video must be at least 1, got {per_video}")
    rng = np.random.default_rng([int(seed), 7])
    per_template: Counter[int] = Counter()
    hits: dict[int, list[int]] = defaultdict(lambda: [0, 0])   # template -> [visual hits, audio hits]
    answers: dict[tuple, Counter[str]] = defaultdict(Counter)
    chosen: list[list[QA]] = []
    for scene in scenes:
        views = (visual_view(scene), audio_view(scene))
        eligible: dict[int, list[tuple[QA, tuple[bool, bool]]]] = {}
        for tid, qas in candidates(scene).items():
            if TEMPLATES[tid].modality != "Audio-Visual":
                eligible[tid] = [(qa, (False, False)) for qa in qas]
                continue
            limit = SHORTCUT_MAX * (per_template[tid] + 1)
            keep = []
            for qa in qas:
                v, a = shortcut_hits(scene, qa, views)
                a = a and tid not in AUDIO_INHERENT
                if hits[tid][0] + v <= limit and hits[tid][1] + a <= limit:
                    keep.append((qa, (v, a)))
            if keep:
                eligible[tid] = keep
        ties = rng.random(len(TEMPLATES))
        tids = sorted(eligible, key=lambda t: (per_template[t], ties[t]))[:per_video]
        picked = []
        for tid in sorted(tids):
            options = eligible[tid]
            noise = rng.random(len(options))
            # rarest answer in its group first; then rarest in the whole template (with 22 instruments most
            # yes/no groups are new, and a new group's "no" must not win every tie)
            best = min(range(len(options)),
                       key=lambda i: (answers[options[i][0].group][options[i][0].answer],
                                      answers[(tid,)][options[i][0].answer], sum(options[i][1]), noise[i]))
            qa, (v, a) = options[best]
            picked.append(qa)
            per_template[tid] += 1
            hits[tid][0] += v
            hits[tid][1] += a
            answers[qa.group][qa.answer] += 1
            if qa.group != (tid,):
                answers[(tid,)][qa.answer] += 1
        chosen.append(picked)
    return _cap_majorities(chosen, rng)


def _cap_majorities(chosen: list[list[QA]], rng: np.random.Generator) -> list[list[QA]]:
    """Drop randomly chosen questions of over-represented answers until every group meets its cap."""
    where: dict[tuple, dict[str, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    for v, qas in enumerate(chosen):
        for q, qa in enumerate(qas):
            key = qa.group if qa.answer in YES_NO else (qa.template.id,)
            where[key][qa.answer].append((v, q))
    drop: set[tuple[int, int]] = set()
    for key in sorted(where, key=repr):
        by_answer = where[key]
        counts = sorted((len(x) for x in by_answer.values()), reverse=True)
        if set(by_answer) <= set(YES_NO):
            minority = counts[1] if len(counts) > 1 else 0
            cap = max(1, math.ceil(minority * YES_NO_CAP))
        else:
            second = counts[1] if len(counts) > 1 else 0
            cap = max(1, math.ceil(second * MULTI_CAP))
        for ans in sorted(by_answer):
            items = by_answer[ans]
            if len(items) > cap:
                idx = rng.permutation(len(items))[: len(items) - cap]
                drop.update(items[i] for i in idx)
    return [[qa for q, qa in enumerate(qas) if (v, q) not in drop] for v, qas in enumerate(chosen)]


def majority_prior(questions: Iterable[QA], reference: Iterable[QA] | None = None) -> float:
    """Accuracy of answering each template with its most frequent answer in `reference` (default: itself)."""
    questions = list(questions)
    ref = list(reference) if reference is not None else questions
    majority: dict[int, str] = {}
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for qa in ref:
        counts[qa.template.id][qa.answer] += 1
    for tid, c in counts.items():
        majority[tid] = max(sorted(c), key=lambda a: c[a])
    if not questions:
        return 0.0
    return sum(majority.get(qa.template.id) == qa.answer for qa in questions) / len(questions)


__all__ = ["QA", "QAError", "answer", "candidates", "select_questions", "majority_prior", "SUPPORTED_TEMPLATES",
           "visual_view", "audio_view", "shortcut_guesses", "shortcut_hits", "AUDIO_INHERENT",
           "LOUDNESS_MARGIN", "RATE_RATIO", "LENGTH_MARGIN", "ONSET_GAP", "SAME_TIME", "OVERLAP_MIN", "POSITIONS"]
