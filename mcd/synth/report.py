"""`mcd synth --report OUT`: what is in a generated benchmark and how far a question-only model gets.

The prior is the per-template majority answer, learned on the train split and scored on the test split (or on
the split itself when there is only one): a model that reads only the question can do no better than about
this, so it must stay far below the full model. The checks printed are the benchmark's balance requirements.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from mcd.task.questions import TEMPLATE_BY_TEXT, TEMPLATES

PRIOR_MAX = 0.50        # per-template-majority prior, whole split
YES_NO_MAX = 0.60       # majority share of any yes/no template


class ReportError(ValueError):
    """The folder is not a generated benchmark (no annotation files)."""


def load_split_records(out: str | Path) -> dict[str, list[dict]]:
    """Raw annotation records per split found in `out` (avqa-train/val/test.json)."""
    out = Path(out)
    found = {}
    for split in ("train", "val", "test"):
        path = out / f"avqa-{split}.json"
        if path.is_file():
            try:
                found[split] = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ReportError(f"{path} is not valid JSON ({e.msg})") from None
    if not found:
        raise ReportError(f"{out} holds no avqa-{{train,val,test}}.json: is it a benchmark made by `mcd synth`?")
    return found


def answer_distributions(records: list[dict]) -> dict[str, Counter]:
    """Answer counts per template text."""
    dist: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        dist[r["question_content"]][r["anser"]] += 1
    return dist


def prior_score(test: list[dict], train: list[dict] | None = None) -> float:
    """Accuracy on `test` of answering every question with its template's majority answer in `train`."""
    dist = answer_distributions(train if train is not None else test)
    majority = {t: max(sorted(c), key=lambda a: c[a]) for t, c in dist.items()}
    if not test:
        return 0.0
    return sum(majority.get(r["question_content"]) == r["anser"] for r in test) / len(test)


def question_prior_score(test: list[dict], train: list[dict] | None = None) -> float:
    """Like prior_score, but keyed by the whole question (template and slot values), falling back to the
    template's majority for questions not seen in `train`: what a question-only lookup table scores."""
    ref = train if train is not None else test
    by_question: dict[tuple, Counter] = defaultdict(Counter)
    for r in ref:
        by_question[(r["question_content"], r["templ_values"])][r["anser"]] += 1
    dist = answer_distributions(ref)
    template_majority = {t: max(sorted(c), key=lambda a: c[a]) for t, c in dist.items()}
    if not test:
        return 0.0
    hits = 0
    for r in test:
        c = by_question.get((r["question_content"], r["templ_values"]))
        guess = max(sorted(c), key=lambda a: c[a]) if c else template_majority.get(r["question_content"])
        hits += guess == r["anser"]
    return hits / len(test)


def yes_no_majorities(records: list[dict]) -> dict[str, float]:
    """Majority share of every template whose answers are yes/no."""
    out = {}
    for t, c in answer_distributions(records).items():
        if set(c) <= {"yes", "no"}:
            out[t] = max(c.values()) / sum(c.values())
    return out


def modality_shortcuts(scenes: dict, records: list[dict],
                       reference: list[dict] | None = None) -> dict[str, tuple[int, float, float]]:
    """Per audio-visual type: (questions, visual-only accuracy, audio-only accuracy).

    The observers answer from what one modality shows (see mcd.synth.qa.visual_view / audio_view) and fall
    back to the template's majority answer (in `reference`) when they cannot tell: an optimistic stand-in for
    a model that has lost one modality. Both should sit well below 100%.
    """
    from mcd.synth.qa import QA, audio_view, shortcut_guesses, visual_view

    dist = answer_distributions(reference if reference is not None else records)
    majority = {t: max(sorted(c), key=lambda a: c[a]) for t, c in dist.items()}
    views: dict[str, tuple] = {}
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in records:
        t = TEMPLATE_BY_TEXT.get(r["question_content"])
        scene = scenes.get(r["video_id"])
        if t is None or scene is None or t.modality != "Audio-Visual":
            continue
        if r["video_id"] not in views:
            views[r["video_id"]] = (visual_view(scene), audio_view(scene))
        qa = QA(t, tuple(json.loads(r["templ_values"])), r["anser"])
        v, a = shortcut_guesses(scene, qa, views[r["video_id"]])
        row = out[t.type]
        row[0] += 1
        row[1] += (v if v is not None else majority.get(t.text)) == qa.answer
        row[2] += (a if a is not None else majority.get(t.text)) == qa.answer
    return {k: (n, v / n, a / n) for k, (n, v, a) in out.items()}


def build_report(out: str | Path) -> str:
    """The report as text (what --report prints)."""
    out = Path(out)
    splits = load_split_records(out)
    lines = [f"benchmark: {out}"]
    config = out / "synth_config.json"
    if config.is_file():
        lines.append(f"settings: {config.read_text(encoding='utf-8').strip()}")
    for split, recs in splits.items():
        videos = len({r["video_id"] for r in recs})
        types = Counter(TEMPLATE_BY_TEXT[r["question_content"]].type for r in recs
                        if r["question_content"] in TEMPLATE_BY_TEXT)
        lines.append(f"{split}: {videos} videos, {len(recs)} questions; "
                     + ", ".join(f"{t} {n}" for t, n in sorted(types.items())))
    scored = "test" if "test" in splits else next(iter(splits))
    recs = splits[scored]
    lines += ["", f"per-template answers ({scored} split): id type n majority% top answers"]
    dist = answer_distributions(recs)
    for t in TEMPLATES:
        c = dist.get(t.text)
        if not c:
            lines.append(f"  {t.id:2d} {t.type:26s} {0:5d}    -   (not generated) {t.text.strip()}")
            continue
        n = sum(c.values())
        top = ", ".join(f"{a} {k}" for a, k in c.most_common(5))
        lines.append(f"  {t.id:2d} {t.type:26s} {n:5d} {100 * max(c.values()) / n:5.1f}  {top}  | {t.text.strip()}")
    train = splits.get("train") if scored != "train" else None
    prior = prior_score(recs, train)
    yn = yes_no_majorities(recs)
    worst = max(yn.items(), key=lambda kv: kv[1]) if yn else None
    generated = sum(1 for t in TEMPLATES if dist.get(t.text))
    source = "train majority" if train is not None else "own majority"
    lines += [
        "",
        f"templates generated: {generated} of {len(TEMPLATES)}; question types: "
        f"{len({TEMPLATE_BY_TEXT[r['question_content']].type for r in recs})} of 9",
        f"question-only prior (per-template {source}) on {scored}: {100 * prior:.1f}% "
        f"[{'ok' if prior <= PRIOR_MAX else 'TOO HIGH'}: <= {100 * PRIOR_MAX:.0f}%]",
    ]
    if train is not None:
        lines.append(f"question-only lookup (template + slot values, train majority) on {scored}: "
                     f"{100 * question_prior_score(recs, train):.1f}%")
    if worst is not None:
        lines.append(f"largest yes/no majority: {100 * worst[1]:.1f}% ({worst[0].strip()}) "
                     f"[{'ok' if worst[1] <= YES_NO_MAX else 'TOO HIGH'}: <= {100 * YES_NO_MAX:.0f}%]")
    scenes = out / "scenes.jsonl"
    if scenes.is_file():
        from mcd.synth.scene import Scene

        rows = [json.loads(line) for line in scenes.read_text(encoding="utf-8").splitlines() if line.strip()]
        graphs = {r["video_id"]: Scene.from_dict(r) for r in rows}
        lines += ["", f"one-modality observers on the {scored} split's audio-visual questions "
                  "(answer from what one modality shows; template majority when it cannot tell):"]
        for qtype, (n, v, a) in sorted(modality_shortcuts(graphs, recs, train).items()):
            lines.append(f"  {qtype:26s} {n:5d}  visual-only {100 * v:5.1f}%  audio-only {100 * a:5.1f}%")
        players = Counter(len(r["players"]) for r in rows)
        lines.append(
            f"scenes: {len(rows)}; players " + ", ".join(f"{k}: {v}" for k, v in sorted(players.items()))
            + f"; outdoor {sum(r['background'] == 'outdoor' for r in rows)}"
            + f"; off-screen instrument {sum(r['offscreen'] is not None for r in rows)}"
            + f"; voiceover {sum(r['voiceover'] is not None for r in rows)}"
            + f"; silent visible players {sum(not p['intervals'] for r in rows for p in r['players'])}")
        lines += [""] + style_breakdown(rows, splits)
    return "\n".join(lines)


def style_breakdown(rows: list[dict], splits: dict[str, list[dict]]) -> list[str]:
    """The report's numbers per style (a scene record without a style is world v1's): what the clips are made
    of, questions per type, the question-only prior and the largest yes/no majority."""
    from mcd.synth.world import V1_STYLE

    style_of = {r["video_id"]: (r.get("style") or V1_STYLE) for r in rows}
    names = sorted({s["name"] for s in style_of.values()})
    lines = [f"by style ({len(names)}):"]
    for name in names:
        members = [r for r in rows if style_of[r["video_id"]]["name"] == name]
        ids = {r["video_id"] for r in members}
        parts = []
        for key in ("glyphs", "sound_bank", "backdrop"):
            c = Counter(style_of[r["video_id"]][key] for r in members)
            parts.append(f"{key} " + "/".join(f"{k} {v}" for k, v in sorted(c.items())))
        heard = Counter(src["instrument"] for r in members
                        for src in [*r["players"], *([r["offscreen"]] if r.get("offscreen") else [])]
                        if src["intervals"])
        lines.append(f"  {name}: {len(members)} videos; " + "; ".join(parts))
        lines.append(f"    instruments heard ({len(heard)}): " + ", ".join(f"{k} {v}" for k, v in heard.most_common()))
        split_recs = {sp: [r for r in recs if r["video_id"] in ids] for sp, recs in splits.items()}
        split_recs = {sp: recs for sp, recs in split_recs.items() if recs}
        if not split_recs:
            continue
        scored = "test" if "test" in split_recs else next(iter(split_recs))
        recs = split_recs[scored]
        train = split_recs.get("train") if scored != "train" else None
        types = Counter(TEMPLATE_BY_TEXT[r["question_content"]].type for r in recs
                        if r["question_content"] in TEMPLATE_BY_TEXT)
        answers = Counter(r["anser"] for r in recs)
        yn = yes_no_majorities(recs)
        worst = max(yn.values()) if yn else 0.0
        lines.append(f"    {scored}: {len(recs)} questions, {len({r['question_content'] for r in recs})} templates, "
                     f"{len(answers)} distinct answers; " + ", ".join(f"{t} {n}" for t, n in sorted(types.items())))
        lines.append(f"    question-only prior ({'train' if train is not None else 'own'} majority) "
                     f"{100 * prior_score(recs, train):.1f}%; largest yes/no majority {100 * worst:.1f}%; "
                     f"most frequent answer {answers.most_common(1)[0][0]} "
                     f"{100 * answers.most_common(1)[0][1] / len(recs):.1f}%")
    return lines
