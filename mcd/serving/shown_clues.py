"""Which clue the demo shows for one answer, and the line that says what it is and how often such clues were right.

Why these maps (docs/clues.md, measured by bench/clues.py against the scene graphs of fresh clips): the map of the
question tokens' low-level attention pointed at the named player in 91.5% (solo) / 76.0% (multi) of questions; the
referent query's map of the keyword the grounding head reads as on screen (the instrument it read for the word,
looking the patches up again: a look-up that feeds the answer) in 100% / 88.1%, and the type words' map found
the player of a solo clip in 100%. Attention is where the model looked, not what its answer needs (deleting its
top cells beats deleting random ones about half the time), so the demo draws the answer's evidence
(mcd.serving.evidence) beside it, with its own caption. In time, the referent query's audio weights of the keyword
read as most surely sounding put more of their weight inside the seconds it sounds than the question tokens' audio attention, and
kept to the seconds the grounding head reads that keyword as sounding (a read-out trained for it) more still.
Every choice here reads only the model's own outputs: no scene graph is needed at inference.

A checkpoint carries the bench's latest numbers under `clue_quality` in its config.json
(`bench/clues.py --write-checkpoint`); `spatial_quality_line` / `temporal_quality_line` turn them into the figure's caption.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

ON_SCREEN = ("left", "middle", "right")
REFERENT_QUERY, TYPE_WORDS, QUESTION_TOKENS = "referent query", "type words", "question tokens"
NOT_MEASURED = "not measured for this checkpoint"


@dataclass(frozen=True)
class ShownClue:
    """One shown clue: its weights, where they come from (`source`: REFERENT_QUERY, TYPE_WORDS or QUESTION_TOKENS)
    and the keyword they belong to (None for the type words and the question tokens)."""

    source: str
    keyword: str | None
    weights: np.ndarray          # spatial [T,P] (a distribution over all T·P patches) or temporal [T]
    words: tuple[str, ...] = ()  # the type words, for the type words' map
    attention: np.ndarray | None = None   # temporal: the referent query's audio weights over all seconds
    sounding: np.ndarray | None = None    # temporal: the read-out's P(the keyword sounds in segment t)


def on_screen_keyword(keywords: Sequence[str], referents: Mapping[str, dict]) -> int | None:
    """Index of the keyword the grounding head most confidently reads as a visible player (left/middle/right);
    None if it reads none as on screen. Why: the referent query of that keyword looks for that player."""
    best, best_p = None, 0.0
    for j, word in enumerate(keywords):
        r = referents.get(word)
        if r is not None and r["position"] in ON_SCREEN and r["position_p"] > best_p:
            best, best_p = j, r["position_p"]
    return best


def sounding_keyword(keywords: Sequence[str], referents: Mapping[str, dict]) -> int | None:
    """Index of the keyword the grounding head most surely reads as sounding (and as present in the clip); None if
    the question has no such keyword. Its referent query listened for that instrument."""
    best, best_p = None, -1.0
    for j, word in enumerate(keywords):
        r = referents.get(word)
        if r is not None and r["position"] != "absent" and r["sounds_p"] > best_p:
            best, best_p = j, r["sounds_p"]
    return best


def shown_spatial(keywords: Sequence[str], type_words: Sequence[str], referents: Mapping[str, dict],
                  object_clues: Mapping[str, np.ndarray], question_map: np.ndarray) -> ShownClue:
    """The spatial clue to show: the referent-query map of the keyword read as on screen, else the type words'
    own low-level map (they find "the player" of the clip), else the question tokens' map (a checkpoint without
    keyword clues). `object_clues` holds one question's per-object maps [K,...], keywords first, then type words."""
    j = on_screen_keyword(keywords, referents)
    if j is not None and "referent_visual" in object_clues and np.ndim(object_clues["referent_visual"][j]) == 2:
        return ShownClue(REFERENT_QUERY, keywords[j], np.asarray(object_clues["referent_visual"][j]))
    low = object_clues.get("visual_low")
    if type_words and low is not None:
        rows = np.asarray(low)[len(keywords):len(keywords) + len(type_words)]
        if rows.shape[0] and rows.sum() > 0:
            return ShownClue(TYPE_WORDS, None, rows.mean(axis=0), tuple(type_words))
    return ShownClue(QUESTION_TOKENS, None, np.asarray(question_map))


def in_sounding_seconds(attention: np.ndarray, sounding: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """[T] the attention kept to the seconds the read-out says the keyword sounds in (P > threshold); all of it
    when the read-out names no such second (or the attention has no weight there)."""
    att = np.asarray(attention, dtype=np.float64)
    inside = att * (np.asarray(sounding) > threshold)
    return inside if inside.sum() > 0 else att


def shown_temporal(keywords: Sequence[str], referents: Mapping[str, dict], object_clues: Mapping[str, np.ndarray],
                   question_audio: np.ndarray) -> ShownClue:
    """The audio seconds to show: the referent query's audio weights of the keyword read as most surely sounding,
    kept to the seconds the grounding head reads it as sounding; else the question tokens' high-level audio
    attention. Why both: the attention alone leaves weight on seconds the instrument is silent in, the read-out
    alone is smooth; inside the read-out's seconds the attention still says where the model listened."""
    j = sounding_keyword(keywords, referents)
    if j is not None and "referent_audio" in object_clues:
        attention = np.asarray(object_clues["referent_audio"][j], dtype=np.float64)
        sounding = np.asarray(referents[keywords[j]]["segments"], dtype=np.float64)
        return ShownClue(REFERENT_QUERY, keywords[j], in_sounding_seconds(attention, sounding),
                         attention=attention, sounding=sounding)
    return ShownClue(QUESTION_TOKENS, None, np.asarray(question_audio))


# ------------------------------------------------------------------------------------------------- captions

def _word(keyword: str | None) -> str:
    return (keyword or "").replace("_", " ")


MIN_QUESTIONS = 20   # fewer measured questions than this: the rate is not stated


def _rate(rec: Mapping, population: str) -> float | None:
    """A population's hit rate from a record, None where unmeasured or measured on too few questions to state."""
    value, n = rec.get(population), rec.get(f"n_{population}")
    return None if value is None or (n is not None and n < MIN_QUESTIONS) else value


def _pct(x) -> str:
    return "-" if x is None else f"{100 * float(x):.0f}%"


def spatial_quality_line(source: str, quality: Mapping | None) -> str:
    """'benchmark: ...' for a spatial clue of `source`, from a checkpoint's `clue_quality` record (or None)."""
    rec = ((quality or {}).get("spatial") or {}).get(source)
    if not rec:
        return f"benchmark: {NOT_MEASURED}"
    solo, multi, issue = (_rate(rec, pop) for pop in ("solo", "multi", "issue"))
    parts = []
    if solo is not None or multi is not None:
        parts.append(f"on the named player in {_pct(solo)} (solo) / {_pct(multi)} (multi) of questions naming one")
    if issue is not None:
        parts.append(f"on the solo clip's player in {_pct(issue)}")
    if rec.get("deletion_beats") is not None:
        line = f"its top cells matter more than random ones in {_pct(rec['deletion_beats'])}"
        # where a player is named, beside the ceiling of any map that points at it: that player's own cells
        named, oracle = rec.get("named_deletion_beats"), rec.get("oracle_deletion_beats")
        if named is not None and oracle is not None and rec.get("n_named_deletion", 0) >= MIN_QUESTIONS:
            line += f" ({_pct(named)} where a player is named; the player's own cells: {_pct(oracle)})"
        parts.append(line)
    if rec.get("curve_beats") is not None:
        # the deletion curve: cells deleted one step after another in the map's order, against random orders
        parts.append(f"deleted step by step in its order, the answer falls sooner than in random orders in "
                     f"{_pct(rec['curve_beats'])}")
    return "benchmark: " + "; ".join(parts) if parts else f"benchmark: {NOT_MEASURED}"


def temporal_quality_line(source: str, quality: Mapping | None) -> str:
    """'benchmark: ...' for an audio clue of `source`: how much of its weight lies in the named instrument's seconds,
    and how often deleting its top seconds hurt the answer more than deleting random ones (about a coin flip,
    hence the title's "not proof")."""
    rec = ((quality or {}).get("temporal") or {}).get(source)
    if not rec:
        return f"benchmark: {NOT_MEASURED}"
    line = (f"benchmark: weight in the named instrument's seconds = {rec['ratio']:.2f}x their share "
            f"(max {rec['ceiling']:.2f}x)")
    if rec.get("deletion_beats") is not None:
        line += f"; deleting the top seconds beats random in {_pct(rec['deletion_beats'])}"
    if rec.get("curve_beats") is not None:
        line += f"; deleted step by step in its order, sooner than random in {_pct(rec['curve_beats'])}"
    return line


EVIDENCE = "evidence"
EVIDENCE_TITLE = ("what the answer rests on: the patches and seconds whose removal would lower its odds most "
                  "(gradient x input)")


def evidence_quality_line(quality: Mapping | None) -> str:
    """'benchmark: ...' for the evidence figure: how often deleting its top cells / seconds hurt the answer more
    than deleting random ones, and how often its peak cell was on the named player (it need not be: the answer
    may rest on other parts of the picture)."""
    rec = (quality or {}).get(EVIDENCE)
    if not rec:
        return f"benchmark: {NOT_MEASURED}"
    parts = []
    if rec.get("cells_deletion_beats") is not None:
        parts.append(f"deleting its top cells beats random in {_pct(rec['cells_deletion_beats'])}")
    if rec.get("seconds_deletion_beats") is not None:
        parts.append(f"its top seconds in {_pct(rec['seconds_deletion_beats'])}")
    if rec.get("cells_curve_beats") is not None or rec.get("seconds_curve_beats") is not None:
        parts.append(f"deleted step by step in its order, sooner than random: cells "
                     f"{_pct(rec.get('cells_curve_beats'))}, seconds {_pct(rec.get('seconds_curve_beats'))}")
    if rec.get("solo") is not None or rec.get("multi") is not None:
        parts.append(f"peak on the named player in {_pct(rec.get('solo'))} (solo) / {_pct(rec.get('multi'))} (multi)")
    return "benchmark: " + "; ".join(parts) if parts else f"benchmark: {NOT_MEASURED}"


def spatial_title(clue: ShownClue) -> str:
    """What the spatial map is, in one line."""
    if clue.source == REFERENT_QUERY:
        return (f"used: where the model looked for '{_word(clue.keyword)}' (the instrument it read for the word, "
                "looked up again; feeds the answer)")
    if clue.source == TYPE_WORDS:
        words = ", ".join(f"'{w}'" for w in clue.words)
        return f"used: where the question's type words ({words}) looked (no keyword read as on screen)"
    return "used: where the question's words looked (mean over words and heads)"


def temporal_title(clue: ShownClue) -> str:
    """What the audio curve is, in one line."""
    if clue.source == REFERENT_QUERY:
        return (f"used + read-out: where the model listened for '{_word(clue.keyword)}' (not proof), in the "
                "seconds it reads as sounding (shaded)")
    return "used: where the question's words listened (high-level audio attention; not proof)"
