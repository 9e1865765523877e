"""Questions in people's own words (issue 28): calibrate the matcher, then measure it on held-out test sets.

    python bench/paraphrases.py calibrate            # choose the threshold on bench/data/calibration.jsonl and
                                                     # write it into mcd/task/phrasings.json
    python bench/paraphrases.py understanding        # test sets, no clips: mapping accuracy, refusals, latency
    python bench/paraphrases.py accuracy [--videos 60] [--out DIR] [--sets D]
                                                     # fresh synthetic clips: the shipped checkpoint's accuracy on
                                                     # template wording vs reworded questions, one table per type
    python bench/paraphrases.py latency              # what understanding 20 questions adds to Pipeline.answer

Data (bench/data/, provenance in each file's first line):
- calibration.jsonl  in-scope rewordings (with the template and slot values they mean) and off-topic text; the only
                     data the threshold is chosen on (the threshold maximising balanced accuracy: in-scope answered,
                     off-topic refused).
- paraphrases.jsonl  the paraphrase TEST set: 4 rewordings per template with slot placeholders and surface forms
                     (synonyms) to fill them with.
- off_topic.jsonl    the off-topic TEST set (greetings, other topics, clothes, ages, brands, colours, instruments
                     outside the vocabulary or this checkpoint, other languages, nonsense).
`accuracy` makes its clips with `mcd synth` in its default style and sound bank (the world the shipped checkpoint
was trained on; `--sound-bank procedural` gives world v1's timbres for a checkpoint trained on those), asks
every synthetic question twice through `Pipeline.answer` (the demo's path): in the template's wording and reworded
with one of the test rewordings (in turn), and counts refusals of reworded questions as wrong answers.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "bench" / "data"


def read_jsonl(path: Path) -> tuple[dict, list[dict]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[0], lines[1:]


def minilm_embed():
    """The MiniLM sentence embedding the pipeline uses (mean-pooled token states; normalised by the matcher)."""
    from mcd.encoders.text import MiniLMTextEncoder

    enc = MiniLMTextEncoder()
    return enc, (lambda texts: enc.sentence_embeddings(list(texts)).numpy())


# --------------------------------------------------------------------------------------------------- calibrate

def choose_threshold(in_scores: list[float | None], out_scores: list[float | None]) -> tuple[float, dict]:
    """The threshold maximising balanced accuracy (in-scope at or above it answered, off-topic below it refused).

    A score of None is a refusal whatever the threshold (no template fits, an unknown instrument, ...). Ties are
    broken towards the middle of the best interval between neighbouring scores."""
    cands = sorted({s for s in in_scores + out_scores if s is not None})
    cuts = [cands[0] - 1e-3] + [(a + b) / 2 for a, b in zip(cands, cands[1:])] + [cands[-1] + 1e-3]

    def balanced(t: float) -> tuple[float, float, float]:
        tpr = sum(s is not None and s >= t for s in in_scores) / len(in_scores)
        tnr = sum(s is None or s < t for s in out_scores) / len(out_scores)
        return (tpr + tnr) / 2, tpr, tnr

    scored = [(balanced(t), t) for t in cuts]
    best = max(b[0] for b, _ in scored)
    best_cuts = [t for b, t in scored if b[0] == best]
    t = best_cuts[len(best_cuts) // 2]
    ba, tpr, tnr = balanced(t)
    return t, {"balanced_accuracy": round(ba, 4), "in_scope_answered": round(tpr, 4),
               "off_topic_refused": round(tnr, 4), "n_in": len(in_scores), "n_out": len(out_scores)}


def calibrate(args) -> int:
    from mcd.task.understanding import ANSWERED, BANK_FILE, UNKNOWN_INSTRUMENT, QuestionUnderstander
    from mcd.task.vocab import INSTRUMENTS

    _, rows = read_jsonl(DATA / "calibration.jsonl")
    enc, embed = minilm_embed()
    # every vocabulary instrument counts as known here: the threshold must not depend on one checkpoint's list
    und = QuestionUnderstander(embed, INSTRUMENTS, threshold=-1.0)
    scores = und.scores([r["text"] for r in rows])
    ins, outs, mapped = [], [], 0
    for r, s in zip(rows, scores):
        usable = s["status"] in (ANSWERED, UNKNOWN_INSTRUMENT) and s["similarity"] is not None
        value = s["similarity"] if s["status"] == ANSWERED else None
        if r["scope"] == "in":
            ins.append(value)
            ok = s["template"] == r["template"] and s["keywords"] == r["keywords"]
            mapped += ok
            if not ok and args.verbose:
                print(f"  wrong map: {r['text']!r} -> template {s['template']} {s['keywords']} "
                      f"(want {r['template']} {r['keywords']}, sim {s['similarity']})")
        else:
            outs.append(value)
            if args.verbose and usable and s["status"] == ANSWERED:
                print(f"  off-topic {r['text']!r}: sim {s['similarity']} -> template {s['template']}")
    threshold, stats = choose_threshold(ins, outs)
    stats["in_scope_mapped_exactly"] = round(mapped / len(ins), 4)
    print(f"threshold {threshold:.4f}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    if args.dry_run:
        return 0
    bank = json.loads(BANK_FILE.read_text(encoding="utf-8"))
    bank["threshold"] = round(threshold, 4)
    bank["model"] = enc.id
    bank["calibration"] = {"data": "bench/data/calibration.jsonl", "rule": "maximise balanced accuracy",
                           "command": "python bench/paraphrases.py calibrate", **stats}
    BANK_FILE.write_text(json.dumps(bank, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote the threshold into {BANK_FILE.relative_to(ROOT)}")
    return 0


# --------------------------------------------------------------------------------------------------- test sets

_SLOT = re.compile(r"\{(Object|LRer|LR|LL|FL|TH|BA)([12]?)(\|\w+)?\}")


def slot_names(template) -> list[str]:
    from mcd.task.understanding import _template_slot_names

    return _template_slot_names(template)


def reword(text: str, template, values: list[str], surface: dict, rng: random.Random) -> str:
    """A test rewording filled with a question's slot values (a random surface form of each, synonyms included)."""
    by_name = dict(zip(slot_names(template), values))

    def sub(m: re.Match) -> str:
        kind, num, plural = m.group(1), m.group(2) or "1", m.group(3)
        value = by_name[kind + num]
        forms = surface[kind + (plural or "")].get(value) or [value.replace("_", " ")]
        return rng.choice(forms)
    return _SLOT.sub(sub, text)


def random_values(template, rng: random.Random, instruments) -> list[str]:
    from mcd.task.questions import SLOT_DOMAINS

    values, used = [], set()
    for slot in template.slots:
        domain = [v for v in (instruments if slot == "<Object>" else SLOT_DOMAINS[slot]) if v not in used]
        if slot == "<LR>" and template.id == 10:
            domain = [v for v in domain if v != "middle"]
        v = rng.choice(domain)
        used.add(v)
        values.append(v)
    return values


def understanding(args) -> int:
    from mcd.task.questions import TEMPLATES, fill_template
    from mcd.task.understanding import QuestionUnderstander
    from mcd.task.vocab import FORMAT1_SYNTH_INSTRUMENTS

    header, rows = read_jsonl(DATA / "paraphrases.jsonl")
    _, off = read_jsonl(DATA / "off_topic.jsonl")
    enc, embed = minilm_embed()
    instruments = FORMAT1_SYNTH_INSTRUMENTS           # the shipped checkpoint's (config.json has no list: format 1)
    und = QuestionUnderstander(embed, instruments, cache_key=enc.id)
    rng = random.Random(args.seed)
    asked = []
    for r in rows:
        t = TEMPLATES[r["template"]]
        for _ in range(args.fillings):
            values = random_values(t, rng, instruments)
            asked.append((r["set"], t, values, reword(r["text"], t, values, header["surface"], rng)))
    results = und.understand_all([q for *_, q in asked])
    print(f"paraphrase test sets: {len(rows)} rewordings x {args.fillings} fillings, threshold {und.threshold:.4f}")
    for which in sorted({r["set"] for r in rows}):
        per_type: dict[str, Counter] = defaultdict(Counter)
        misses = []
        for (s, t, values, q), u in zip(asked, results):
            if s != which:
                continue
            c = per_type[t.type]
            c["n"] += 1
            c["answered"] += u.answered
            ok = u.answered and u.understood_as == fill_template(t.text, values)
            c["exact"] += ok
            if not ok:
                misses.append((q, u.status, u.understood_as, fill_template(t.text, values), u.similarity))
        print(f"\nset {which}\n| type | n | answered | understood exactly (template and slots) |\n|---|---:|---:|---:|")
        tot = Counter()
        for qtype, c in per_type.items():
            tot.update(c)
            print(f"| {qtype} | {c['n']} | {c['answered'] / c['n']:.1%} | {c['exact'] / c['n']:.1%} |")
        print(f"| all | {tot['n']} | {tot['answered'] / tot['n']:.1%} | {tot['exact'] / tot['n']:.1%} |")
        if args.verbose:
            for m in misses:
                print("  miss:", m)
    off_res = und.understand_all([r["text"] for r in off])
    for which in sorted({r.get("set", 1) for r in off}):
        by_cat: dict[str, Counter] = defaultdict(Counter)
        for r, u in zip(off, off_res):
            if r.get("set", 1) != which:
                continue
            by_cat[r["category"]]["n"] += 1
            by_cat[r["category"]]["refused"] += not u.answered
            if u.answered and args.verbose:
                print(f"  answered off-topic: {r['text']!r} -> {u.understood_as!r} ({u.similarity})")
        n_off = sum(c["n"] for c in by_cat.values())
        refused = sum(c["refused"] for c in by_cat.values())
        print(f"\noff-topic test set {which}: {refused}/{n_off} refused ({refused / n_off:.1%})")
        print("| category | n | refused |\n|---|---:|---:|")
        for cat, c in by_cat.items():
            print(f"| {cat} | {c['n']} | {c['refused'] / c['n']:.0%} |")
    # latency: understanding 20 reworded questions never seen before (the semantic matcher runs for each)
    print("\nunderstanding latency (20 questions per request, new strings each time; MiniLM on this CPU):")
    # 20 rewordings drawn at random (consecutive rows are fillings of one rewording, which delexicalise alike)
    picks = random.Random(args.seed + 1).sample(range(len(asked)), 20 * args.runs)
    pool = [asked[i] for i in picks]
    for label, qs_of in (("reworded", lambda k: [q for *_, q in pool[k * 20:(k + 1) * 20]]),
                         ("template wording", lambda k: [fill_template(t.text, v) + "?" for _, t, v, _ in
                                                         pool[k * 20:(k + 1) * 20]])):
        times = []
        for k in range(args.runs):
            qs = [f"{q} ({k})" if label == "reworded" else q for q in qs_of(k)]
            enc.phrase_cache.data.clear()
            t0 = time.perf_counter()
            und.understand_all(qs)
            times.append(time.perf_counter() - t0)
        print(f"  {label}: median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms "
              f"over {args.runs} requests")
    return 0


# --------------------------------------------------------------------------------------------------- accuracy

def accuracy(args) -> int:
    from mcd.serving.pipeline import MAX_QUESTIONS, Pipeline
    from mcd.task.questions import QUESTION_TYPES, TEMPLATE_BY_TEXT, fill_template

    out = Path(args.out)
    if not (out / "avqa-test.json").exists():
        cmd = [sys.executable, "-m", "mcd", "synth", "--out", str(out), "--videos", str(args.videos), "--seed",
               str(args.synth_seed), "--splits", "test=1", "--questions-per-video", "20",
               "--workers", str(args.workers), "--quiet", "--force"]
        if args.sound_bank:
            cmd += ["--sound-bank", args.sound_bank]
        print("$", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
    records = json.loads((out / "avqa-test.json").read_text())
    header, rows = read_jsonl(DATA / "paraphrases.jsonl")
    by_template: dict[int, list[str]] = defaultdict(list)
    for r in rows:
        if r["set"] in args.sets:
            by_template[r["template"]].append(r["text"])
    pipe = Pipeline(Path(args.checkpoint))
    rng = random.Random(args.seed)
    turn: Counter = Counter()
    by_video: dict[str, list[tuple]] = defaultdict(list)
    for rec in records:
        t = TEMPLATE_BY_TEXT[rec["question_content"]]
        values = json.loads(rec["templ_values"])
        k = turn[t.id] % len(by_template[t.id])
        turn[t.id] += 1
        reworded = reword(by_template[t.id][k], t, values, header["surface"], rng)
        by_video[rec["video_id"]].append((t, fill_template(t.text, values) + "?", reworded, rec["anser"]))
    stats: dict[str, Counter] = defaultdict(Counter)
    t0 = time.perf_counter()
    for vid, qs in by_video.items():
        video = out / "videos" / f"{vid}.mp4"
        asked = [q for _, q, _, _ in qs] + [r for _, _, r, _ in qs]
        results = []
        for i in range(0, len(asked), MAX_QUESTIONS):
            results += pipe.answer(video, asked[i:i + MAX_QUESTIONS]).results
        n = len(qs)
        for (t, _, _, gold), a, b in zip(qs, results[:n], results[n:]):
            c = stats[t.type]
            c["n"] += 1
            c["template"] += a.answer == gold
            c["reworded"] += b.answer == gold
            c["reworded_answered"] += b.status == "answered"
            c["same_question"] += b.understood_as == a.understood_as
    print(f"{len(records)} questions about {len(by_video)} fresh clips ({time.perf_counter() - t0:.0f} s); "
          f"checkpoint {args.checkpoint}; rewordings from set(s) {', '.join(args.sets)} in turn")
    print("| type | n | template wording | reworded | ratio | reworded answered | understood as the template |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    tot = Counter()
    for qtype in QUESTION_TYPES:
        c = stats.get(qtype)
        if not c:
            continue
        tot.update(c)
        print(f"| {qtype} | {c['n']} | {c['template'] / c['n']:.2%} | {c['reworded'] / c['n']:.2%} | "
              f"{c['reworded'] / max(c['template'], 1):.3f} | {c['reworded_answered'] / c['n']:.1%} | "
              f"{c['same_question'] / c['n']:.1%} |")
    print(f"| all | {tot['n']} | {tot['template'] / tot['n']:.2%} | {tot['reworded'] / tot['n']:.2%} | "
          f"{tot['reworded'] / max(tot['template'], 1):.3f} | {tot['reworded_answered'] / tot['n']:.1%} | "
          f"{tot['same_question'] / tot['n']:.1%} |")
    return 0


def latency(args) -> int:
    """What understanding adds to a request: `Pipeline.answer` with 20 questions in template wording vs 20 reworded
    (new strings every request, so nothing is cached), about a clip whose features are cached (so the request is
    the question side alone) and about a new clip (decoded meanwhile, as in the demo)."""
    import os

    from mcd.serving.pipeline import Pipeline, phrase_vocabulary
    from mcd.task.questions import TEMPLATES, fill_template
    from mcd.task.vocab import FORMAT1_SYNTH_INSTRUMENTS

    header, rows = read_jsonl(DATA / "paraphrases.jsonl")
    pipe = Pipeline(Path(args.checkpoint))
    clip = ROOT / json.loads((ROOT / "assets" / "examples.json").read_text())[0]["video"]
    rng = random.Random(args.seed)
    pipe.answer(clip, ["Is there a voiceover?"])                   # load, bank, clip features
    text = pipe.encoders.text
    results = {}
    for cold_clip in (False, True):
        for label in ("template wording", "reworded"):
            understand, total = [], []
            for k in range(args.runs):
                qs = []
                while len(qs) < 20:
                    r = rng.choice(rows)
                    t = TEMPLATES[r["template"]]
                    values = random_values(t, rng, FORMAT1_SYNTH_INSTRUMENTS)
                    q = (fill_template(t.text, values) + "?" if label == "template wording"
                         else reword(r["text"], t, values, header["surface"], rng))
                    if q not in qs:
                        qs.append(q)
                text.question_cache.data.clear()
                text.phrase_cache.data.clear()
                text.sentence_cache.data.clear()
                # the load-time vocabulary stays encoded, as in serving
                pipe._text_worker.submit(text.encode_phrases, phrase_vocabulary()).result()
                if cold_clip:
                    pipe.clear_cache()
                t0 = time.perf_counter()
                a = pipe.answer(clip, qs)
                total.append(time.perf_counter() - t0)
                understand.append(a.timings["understand_s"])
            results[(cold_clip, label)] = (statistics.median(understand), statistics.median(total))
    load = os.getloadavg()[0]
    print(f"20 questions per request, {args.runs} requests per row, median seconds; load average {load:.1f} on "
          f"{os.cpu_count()} cores")
    print("| clip | wording | understanding | whole request |\n|---|---|---:|---:|")
    for (cold_clip, label), (u, tot) in results.items():
        print(f"| {'new (decoded)' if cold_clip else 'cached'} | {label} | {u * 1000:.1f} ms | {tot * 1000:.1f} ms |")
    for cold_clip in (False, True):
        d = results[(cold_clip, "reworded")][1] - results[(cold_clip, "template wording")][1]
        print(f"understanding adds {d * 1000:+.1f} ms to a request about a {'new' if cold_clip else 'cached'} clip")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("calibrate")
    c.add_argument("--dry-run", action="store_true", help="print, do not write the bank")
    c.add_argument("--verbose", "-v", action="store_true")
    u = sub.add_parser("understanding")
    u.add_argument("--fillings", type=int, default=3, help="slot fillings per test rewording")
    u.add_argument("--runs", type=int, default=9, help="latency requests")
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("--verbose", "-v", action="store_true")
    a = sub.add_parser("accuracy")
    a.add_argument("--videos", type=int, default=60)
    a.add_argument("--synth-seed", type=int, default=28028)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--workers", type=int, default=2)
    a.add_argument("--sound-bank", default=None,
                   help="mcd synth --sound-bank (default: the generator's, the world the shipped checkpoint knows)")
    a.add_argument("--out", default=str(ROOT / "data" / "paraphrase-bench"))
    a.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "mcd-synth"))
    a.add_argument("--sets", default="J", type=lambda s: s.split(","),
                   help="paraphrase test sets to reword with (default J, the held-out one; e.g. A,B,C)")
    lat = sub.add_parser("latency")
    lat.add_argument("--runs", type=int, default=9)
    lat.add_argument("--seed", type=int, default=0)
    lat.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "mcd-synth"))
    args = p.parse_args()
    return {"calibrate": calibrate, "understanding": understanding, "accuracy": accuracy,
            "latency": latency}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
