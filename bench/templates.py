"""Where does a checkpoint lose its points? Accuracy per question template, from an `mcd evaluate` predictions file.

    python bench/templates.py --predictions runs/synth-default/fresh-test-predictions.jsonl \
        --scenes data/synth-default-fresh-test/scenes.jsonl

Rows are sorted by the points of overall accuracy each template loses. With `--scenes` (a synthetic benchmark's
scene file) every template is also split by whether two on-screen players hold the same instrument. The synth
audio is mono, so in those clips "which drum is sounding / louder / first" can only be settled by the small bob a
player makes at each note onset: templates that bind a position to a sound are expected to drop there, and the
split says how much of a template's gap is that, and how much is the model.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcd.task.questions import parse  # noqa: E402


def read_predictions(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    missing = [k for k in ("question", "correct", "video_id", "type") if rows and k not in rows[0]]
    if missing:
        raise SystemExit(f"{path}: rows lack {missing}; write them with `mcd evaluate --predictions`")
    return rows


def clips_with_repeated_instruments(scenes_path: Path) -> set[str]:
    repeated = set()
    for line in scenes_path.read_text().splitlines():
        if line.strip():
            scene = json.loads(line)
            kinds = [p["instrument"] for p in scene["players"]]
            if len(set(kinds)) < len(kinds):
                repeated.add(scene["video_id"])
    return repeated


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--predictions", type=Path, required=True, help="PRED.jsonl written by `mcd evaluate`")
    p.add_argument("--scenes", type=Path, help="the benchmark's scenes.jsonl: split by repeated instruments")
    args = p.parse_args()
    rows = read_predictions(args.predictions)
    repeated = clips_with_repeated_instruments(args.scenes) if args.scenes else None
    cells: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    kind: dict[str, str] = {}
    for r in rows:
        template = parse(r["question"]).template
        text = template.text.strip() if template else "(no template)"
        kind[text] = r["type"]
        parts = ["all"]
        if repeated is not None:
            parts.append("repeated" if r["video_id"] in repeated else "distinct")
        for part in parts:
            cells[text][part][0] += int(bool(r["correct"]))
            cells[text][part][1] += 1
    total = len(rows)

    def acc(cell: list[int]) -> str:
        return f"{cell[0] / cell[1]:.1%} of {cell[1]}" if cell[1] else "-"

    split = repeated is not None
    print(f"{total} questions, overall {sum(int(bool(r['correct'])) for r in rows) / max(total, 1):.2%}\n")
    header = "| template | type | accuracy | points lost |"
    print(header + (" distinct instruments | repeated instrument |" if split else ""))
    print("|---|---|---|---|" + ("---|---|" if split else ""))
    order = sorted(cells, key=lambda t: cells[t]["all"][0] - cells[t]["all"][1])
    for text in order:
        c = cells[text]
        lost = 100 * (c["all"][1] - c["all"][0]) / total
        extra = f" {acc(c['distinct'])} | {acc(c['repeated'])} |" if split else ""
        print(f"| {text} | {kind[text]} | {acc(c['all'])} | {lost:.2f} |{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
