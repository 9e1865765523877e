"""Latency of the demo's /answer handler for a 10-s clip with 1, 5 and 20 questions.

    python bench/app_latency.py [--checkpoint DIR] [--clip FILE] [--runs 7] [--concurrency 2] [--device cuda]

Each run is a request about a new clip: the pipeline's clip cache is emptied first ("cold": the text encoder's
question cache too, so the questions are encoded afresh; "warm text": questions asked before), then `DemoApp.answer` (the
event handler behind /answer) runs and the seven figures it returns are encoded to PNG, as Gradio's gr.Plot does
before sending them. Stages:
    decode   media.decode (frames + audio)          encode   visual + audio encoders
    model    what the handler spends after the clip's features are ready: waiting for the text thread (which
             encodes the questions while the clip decodes), one batched MCD forward, the results table
    figures  the first question's seven figures: built by mcd.serving.viz, then PNG-encoded
"no figs" is decode + encode + model: the cost of the questions themselves (the figures are the same work for
any number of questions). HTTP and upload time are not included (tens of ms on localhost).
The clip is --clip, else the first example in assets/examples.json, else a synthetic scene rendered by mcd.synth.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("decode", "encode", "model", "figures")


def question_pool(n: int) -> list[str]:
    """n distinct template questions (filled with instruments and slot values), deterministic."""
    from mcd.task.questions import SLOT_DOMAINS, TEMPLATES, fill_template
    from mcd.task.vocab import INSTRUMENTS

    pool: list[str] = []
    k = 0
    while len(pool) < n:
        for t in TEMPLATES:
            values = []
            for j, slot in enumerate(t.slots):
                domain = INSTRUMENTS if slot == "<Object>" else SLOT_DOMAINS[slot]
                values.append(domain[(k + 3 * j) % len(domain)])
            q = fill_template(t.text, values) + "?"
            if q not in pool:
                pool.append(q)
            if len(pool) == n:
                break
        k += 1
    return pool


def default_clip(tmp: Path) -> Path:
    import app

    examples = app.load_examples()
    if examples:
        return examples[0].video
    from mcd.synth.generate import render_clip
    from mcd.synth.scene import sample_scene

    path = tmp / "synth_bench.mp4"
    render_clip(sample_scene(0, 0, "test"), path)
    return path


def clear_caches(pipe, text_too: bool = True) -> None:
    """Forget every clip (and every encoded question), so the next request pays the full price.

    The phrase cache is kept: the pipeline encodes the whole text-object vocabulary when it loads (a closed set of
    lexicon keywords and type words), so no request ever encodes a phrase.
    """
    pipe.clear_cache()
    if not text_too:
        return
    cache = getattr(pipe.encoders.text, "question_cache", None)
    if cache is not None and hasattr(cache, "data"):
        cache.data.clear()


def one_request(demo_app, clip: Path, questions: list[str]) -> dict[str, float]:
    t0 = time.perf_counter()
    out = demo_app.answer(str(clip), "\n".join(questions), progress=lambda *a, **k: None)
    t1 = time.perf_counter()
    for fig in out[3:9]:                       # what gr.Plot's postprocess does with each figure
        fig.savefig(io.BytesIO(), format="png")
    t2 = time.perf_counter()
    tm = demo_app.last_timings
    assert len(out[0]["answers"]) == len(questions)
    return {"decode": tm["decode_s"], "encode": tm["encode_s"],
            # everything else in the handler: hashing, parsing, text encoder, forward, results table
            "model": (t1 - t0) - tm["decode_s"] - tm["encode_s"] - tm["figures_s"],
            "figures": tm["figures_s"] + (t2 - t1), "total": t2 - t0}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    import torch

    import app
    from mcd.device import DeviceError, resolve_device
    from mcd.serving.pipeline import DEFAULT_CHECKPOINT

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, default=Path(os.environ.get("MCD_CHECKPOINT", DEFAULT_CHECKPOINT)))
    p.add_argument("--clip", type=Path, help="the clip to ask about (default: see above)")
    p.add_argument("--runs", type=int, default=7, help="measured cold requests per question count")
    p.add_argument("--counts", default="1,5,20", help="question counts")
    p.add_argument("--concurrency", type=int, default=app.Settings.concurrency,
                   help="the app's concurrency setting (decides torch threads as the app does)")
    p.add_argument("--device", default="cpu", metavar="auto|cpu|cuda[:N]",
                   help="where the model and encoders run (default: cpu, the numbers the README reports)")
    args = p.parse_args()
    if not (args.checkpoint / "config.json").is_file():
        print(f"no checkpoint at {args.checkpoint}; pass --checkpoint or set MCD_CHECKPOINT", file=sys.stderr)
        return 2
    settings = app.Settings(concurrency=args.concurrency)
    try:
        device = resolve_device(args.device, announce=True)
    except DeviceError as exc:
        print(f"app_latency: {exc}", file=sys.stderr)
        return 2
    demo_app, _ = app.create_app(args.checkpoint, settings, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or default_clip(Path(tmp))
        counts = [int(c) for c in args.counts.split(",")]
        pool = question_pool(max(counts))
        info = demo_app.pipe.clip_features(clip).clip
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"clip {clip.name}: {info.duration:.1f} s, {info.width}x{info.height}; checkpoint {args.checkpoint}; "
              f"{os.cpu_count()} cores, torch threads {settings.threads()}, load average {load:.1f}; "
              f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}; "
              f"{args.runs} runs per row (after 1 warm-up)\n")
        for mode in ("cold", "warm text"):
            text_too = mode == "cold"
            print(f"{mode}: " + ("new clip, questions never seen before (empty text caches)" if text_too else
                                 "new clip, questions asked before (text encoder caches hold them)"))
            print("| questions | decode | encode | model | figures | total | total without figures |")
            print("|---:|---:|---:|---:|---:|---:|---:|")
            medians = {}
            for n in counts:
                questions = pool[:n]
                clear_caches(demo_app.pipe)
                one_request(demo_app, clip, questions)                  # warm-up (allocations, lazy imports)
                runs = []
                for _ in range(args.runs):
                    clear_caches(demo_app.pipe, text_too)
                    runs.append(one_request(demo_app, clip, questions))
                col = {k: [r[k] for r in runs] for k in (*STAGES, "total")}
                col["nofig"] = [r["decode"] + r["encode"] + r["model"] for r in runs]
                medians[n] = {k: statistics.median(v) for k, v in col.items()}
                cells = [f"{pct(col[k], 50):.3f} / {pct(col[k], 90):.3f}" for k in (*STAGES, "total", "nofig")]
                print(f"| {n} | " + " | ".join(cells) + " |")
            print("seconds, p50 / p90")
            if 1 in medians and 20 in medians:
                ratio = medians[20]["nofig"] / medians[1]["nofig"]
                print(f"20 questions vs 1 without figures (p50): {ratio:.2f}x")
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
