"""The MCD-AVQA demo (Gradio 6): ask questions about a clip, see the answers, the clues and teacher vs student.

    python app.py [--checkpoint DIR] [--host H] [--port P] [--max-file-mb MB] [--max-duration-s S]

UI only: answering is `mcd.serving.pipeline.Pipeline`, figures are `mcd.serving.viz`, scoring is `mcd.evaluation.evaluate`. This file lays
out the page, turns inputs into pipeline calls and every failure into a message a person can act on.

Serving: the main event is the public API endpoint `/answer` (clip + questions text -> results JSON,
table and the first question's figures) and the JSON-only `/predict` (clip + questions text -> the answer contract
alone); every other event is private. The queue runs a few events at once;
uploads above the size limit are refused by Gradio before they reach the model; only files under `assets/` and
Gradio's temp/cache folders are served. `GRADIO_ROOT_PATH` sets the mount point behind a proxy, and
`GRADIO_SERVER_NAME`/`GRADIO_SERVER_PORT` are honoured when --host/--port are not given (Hugging Face Spaces).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import gradio as gr
import numpy as np
import pandas as pd

from mcd import media
from mcd.serving import viz
from mcd.serving.analysis import (ALL, ANALYSIS_COLUMNS, TYPE_COLUMNS, analysis_frame, clip_for, filter_rows,
                                  load_analysis, type_table, write_csv)
from mcd.serving.pipeline import DEFAULT_CHECKPOINT, MAX_QUESTIONS, Pipeline, QuestionsError, split_questions

ROOT = Path(__file__).resolve().parent
ASSETS = ROOT / "assets"
EXAMPLES_FILE = ASSETS / "examples.json"
log = logging.getLogger("mcd.app")

RESULT_COLUMNS = ["#", "question", "understood as", "type", "answer", "confidence", "teacher", "agree", "expected"]
#: The answer cell of a question that was not answered, by status (docs/contracts.md).
REFUSED_CELL = {"out_of_scope": "— (out of scope)", "unknown_instrument": "— (unknown instrument)",
                "invalid": "— (invalid question)"}
FIGURE_LABELS = {"top5": "Answer candidates (student)", "teacher_student": "Teacher vs student",
                 "temporal": "Temporal clues", "heatmap": "Spatial clues (heatmap)",
                 "evidence": "What the answer rests on",
                 "association": "Audio-visual association", "objects": "Text objects"}
DISPLAY_SIDE = 320          # frames kept per session for heatmaps are resized to this longest side
UNRELIABLE_MARK = " ⚠"     # appended to the answers of a clip the out-of-domain check flags
TEACHER_LINE = ("*Teacher*: an auxiliary audio-visual head trained beside MCD (it sees the clip's features, not "
                "the clues); shown only to see whether the two agree. *Expected*: the example clip's known answer; "
                "answers that differ from it are highlighted.")
#: Headers stay on one line; on narrow screens the table scrolls sideways instead of squeezing its columns.
CSS = """
#results-table th, #results-table th * { white-space: nowrap; }
#results-table .table-wrap, #results-table .table-container { overflow-x: auto; }
#domain-warning { border: 2px solid #d97706; background: #fff7ed; border-radius: 8px; padding: 4px 12px; }
#domain-warning * { color: #7c2d12 !important; }
"""


@dataclass(frozen=True)
class Settings:
    """Serving limits. The size limit is enforced twice: by Gradio at upload and by `media` before decoding."""

    max_file_mb: float = 100.0
    max_duration_s: float = 300.0
    concurrency: int = 2        # events that run at once (the machine's cores are shared by all of them)
    queue_size: int = 64        # waiting requests beyond this are turned away with a "queue full" message
    torch_threads: int | None = None   # None: cores / concurrency

    def threads(self) -> int:
        """Intra-op threads per event. More threads than cores (concurrent events x torch's default of one per
        core) makes OpenMP spin and wait: on 2 shared cores the model step measured 0.03 s with 1 thread and
        2.3 s with the default."""
        return self.torch_threads or max(1, (os.cpu_count() or 1) // max(1, self.concurrency))

    @property
    def max_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    def limits(self) -> media.MediaLimits:
        return media.MediaLimits(max_bytes=self.max_bytes, max_duration_s=self.max_duration_s)


@dataclass
class Example:
    video: Path
    questions: list[str]
    title: str
    answers: dict[str, str] = field(default_factory=dict)   # question -> ground truth, when the file gives it


@dataclass
class Session:
    """What one browser session keeps between "Answer" and selecting a row (small: frames are downsized)."""

    results: list = field(default_factory=list)      # QuestionResult per question
    frames: np.ndarray | None = None                  # uint8 [T, h, w, 3], display size
    timestamps: np.ndarray | None = None
    duration: float = 0.0


# ------------------------------------------------------------------------------------------------ loading

@dataclass
class AnswerView:
    """What the Answer event shows, in the order of its outputs (`flat`)."""
    payload: dict                  # the answer contract (AnswerSet.to_json)
    table: object                  # the results DataFrame, styled (pandas Styler)
    header: str
    figures: list
    clip_info: str
    session: Session

    def flat(self) -> tuple:
        return (self.payload, self.table, self.header, *self.figures, self.clip_info, self.session)


@dataclass
class QuestionView:
    """One question's header and figures (selecting a row; opening an analysis row adds its clip)."""
    header: str
    figures: list
    clip: str | None = None

    def flat(self, with_clip: bool = False) -> tuple:
        return ((self.header, self.clip) if with_clip else (self.header,)) + tuple(self.figures)


@dataclass
class AnalysisView:
    """What loading a predictions file shows, in the order of its outputs (`flat`)."""
    summary: str
    types: pd.DataFrame
    accuracy: object
    confusion: object
    filters: tuple
    rows_frame: pd.DataFrame
    count: str
    rows: list[dict]

    def flat(self) -> tuple:
        return (self.summary, self.types, self.accuracy, self.confusion, *self.filters, self.rows_frame, self.count,
                self.rows, self.rows)


def load_examples(path: Path = EXAMPLES_FILE) -> list[Example]:
    """Example clips and their questions from assets/examples.json; a missing or broken file gives none.

    Accepted: a list (or {"examples": [...]}) of objects with the clip under "video" (also "clip", "path",
    "file"; relative to the JSON file's folder or the repository) and "questions" (a list of strings, or one
    string with one question per line); optional "title" and "answers" (the ground truth, parallel to the
    questions, from the synthetic scene). Entries whose clip is missing are skipped with a log line.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return []
    entries = data.get("examples", []) if isinstance(data, dict) else data
    out = []
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            continue
        name = next((entry[k] for k in ("video", "clip", "path", "file") if isinstance(entry.get(k), str)), None)
        questions = entry.get("questions", [])
        if isinstance(questions, str):
            questions = questions.splitlines()
        answers = entry.get("answers") if isinstance(entry.get("answers"), list) else []
        truth = {q.strip(): str(a) for q, a in zip(questions, answers) if isinstance(q, str) and q.strip()}
        questions = [q.strip() for q in questions if isinstance(q, str) and q.strip()][:MAX_QUESTIONS]
        if name is None:
            log.warning("%s: example %d names no clip", path, i)
            continue
        video = Path(name) if Path(name).is_absolute() else (Path(path).parent / name)
        if not video.is_file() and (ROOT / name).is_file():
            video = ROOT / name
        if not video.is_file():
            log.warning("%s: example clip %s not found", path, video)
            continue
        out.append(Example(video.resolve(), questions, str(entry.get("title") or video.stem), truth))
    return out


def model_card(checkpoint: Path, metrics: dict | None) -> str:
    """The checkpoint's README.md (its model card), else a short note, plus its metrics.json summary."""
    readme = checkpoint / "README.md"
    parts = [readme.read_text(encoding="utf-8")] if readme.is_file() else [
        f"No model card (README.md) in `{checkpoint}`."]
    if metrics:
        text = json.dumps(metrics, indent=2)
        if len(text) > 6000:
            text = text[:6000] + "\n..."
        parts.append(f"**metrics.json**\n\n```json\n{text}\n```")
    return "\n\n".join(parts)


# ------------------------------------------------------------------------------------------------ formatting

def clip_markdown(summary: dict, threshold: float | None) -> str:
    """The clip panel: duration, segments, resolution, audio, out-of-domain score."""
    lines = [f"**Clip:** {summary['duration_s']:.1f} s, {summary['width']}x{summary['height']}, "
             f"{summary['T']} segments of {summary['duration_s'] / max(summary['T'], 1):.2f} s"]
    if summary["has_audio"]:
        lines.append("**Audio:** present")
    else:
        lines.append("**Audio: none.** The clip has no audio track; it was answered as silent, so answers about "
                     "sound are not meaningful.")
    if threshold is None:
        lines.append(f"**Out-of-domain score:** {summary['ood_score']:.2f} (this checkpoint has no calibration)")
    elif summary["out_of_domain"]:
        lines.append(f"**Out of domain:** score {summary['ood_score']:.2f} > {threshold:.2f}. This clip looks "
                     "unlike the training clips; treat the answers with caution.")
    else:
        lines.append(f"**In domain:** score {summary['ood_score']:.2f} (warning above {threshold:.2f})")
    return "\n\n".join(lines)


def clip_warnings(summary: dict) -> list[str]:
    out = []
    if not summary["has_audio"]:
        out.append("This clip has no audio track: it was answered as silent; answers about sound are unreliable.")
    if summary["out_of_domain"]:
        out.append("This clip is out of domain (unlike the training clips): treat the answers with caution.")
    return out


def domain_line(instruments: Sequence[str]) -> str:
    """What the shipped model knows, said beside the upload box: a person should not have to guess."""
    names = ", ".join(i.replace("_", " ") for i in instruments)
    return (f"**What this model knows:** synthetic music performances (cartoon players) of {names}, with voiceovers "
            "and off-screen players. Real footage and real recordings are outside it; its answers there are not "
            "meaningful. See the [model card](#model-card-panel) for what it was trained on and how it scores.")


def domain_warning(payload: dict) -> str:
    """The banner for a clip the out-of-domain check flags (empty for an in-domain clip)."""
    clip = payload.get("clip", {})
    if not clip.get("out_of_domain"):
        return ""
    reasons = [v.get("reason") for v in (clip.get("domain") or {}).values()
               if isinstance(v, dict) and v.get("flagged") and v.get("reason")]
    said = "; ".join(reasons) if reasons else "this clip is unlike the clips the model was trained on"
    return f"⚠ **Out of domain:** {said}. The answers below are marked ⚠: they are not reliable."


def styled_results(table: pd.DataFrame):
    """The results table with each answer that differs from the expected one highlighted (a pandas Styler,
    which Gradio renders with the cell styles)."""
    def colour(row):
        wrong = bool(row["expected"]) and row["answer"].removesuffix(UNRELIABLE_MARK) != row["expected"]
        return ["background-color: #fde2e1" if wrong and c in ("answer", "expected") else "" for c in row.index]
    return table.style.apply(colour, axis=1).format({"confidence": "{:.3f}"}, na_rep="")


def results_table(results: Sequence, expected: dict[str, str] | None = None,
                  unreliable: bool = False) -> pd.DataFrame:
    """One row per question, with what it was understood as; a refused question's answer cell says why (no
    confidence, no teacher). "expected" is the ground truth of example clips (empty for other clips). Answers
    about a clip flagged out of domain carry UNRELIABLE_MARK."""
    expected = expected or {}
    mark = UNRELIABLE_MARK if unreliable else ""
    rows = []
    for i, r in enumerate(results):
        status = getattr(r, "status", "answered")
        understood = getattr(r, "understood_as", None) or ""
        if status != "answered":
            rows.append([i + 1, r.question, understood, r.type, REFUSED_CELL.get(status, f"— ({status})"), None,
                         "", "", expected.get(r.question, "")])
            continue
        rows.append([i + 1, r.question, understood, r.type, r.answer + mark, round(r.confidence, 3), r.teacher_answer,
                     "yes" if r.agree else "no", expected.get(r.question, "")])
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def question_header(index: int, r) -> str:
    note = f"  \n*{r.note}*" if r.note else ""
    status = getattr(r, "status", "answered")
    understood = getattr(r, "understood_as", None)
    asked = (f"  \nUnderstood as: *{understood}?*" if understood and understood.rstrip("?") != r.question.rstrip("?")
             else "")
    if status != "answered":
        return (f"**Question {index + 1}:** {r.question}{asked}  \n"
                f"**Not answered** ({status.replace('_', ' ')}).{note}")
    agree = "agrees" if r.agree else "**disagrees**"
    return (f"**Question {index + 1}:** {r.question}{asked}  \n"
            f"Answer **{r.answer}** ({r.confidence:.1%}); the teacher {agree} ({r.teacher_answer}, "
            f"{r.teacher_confidence:.1%}). Type {r.type}; keywords {', '.join(r.keywords) or 'none'}; "
            f"cos(z_q, z_v) = {r.cos_q_v:.2f}, cos(z_q, z_a) = {r.cos_q_a:.2f}.{note}{referent_line(r)}")


def referent_line(r) -> str:
    """What the checkpoint's grounding head says each keyword points at (checkpoints with object_grounding)."""
    if not getattr(r, "referents", None):
        return ""
    parts = []
    for word, ref in r.referents.items():
        where = {"offscreen": "off screen", "absent": "not in the clip"}.get(ref["position"], f"on the {ref['position']}")
        heard = f"sounds ({ref['sounds_p']:.0%})" if ref["sounds_p"] >= 0.5 else f"silent ({1 - ref['sounds_p']:.0%})"
        parts.append(f"*{word}* → {ref['instrument'].replace('_', ' ')} ({ref['instrument_p']:.0%}), {where} "
                     f"({ref['position_p']:.0%}), {heard}")
    return "  \nKeywords point at: " + "; ".join(parts) + "."


def display_frames(frames: np.ndarray) -> np.ndarray:
    """Frames shrunk to DISPLAY_SIDE on their longest side (heatmaps need no more; sessions stay small)."""
    h, w = frames.shape[1:3]
    scale = DISPLAY_SIDE / max(h, w)
    if scale >= 1:
        return frames
    return media.resize_frames(frames, (max(1, round(h * scale)), max(1, round(w * scale))))


def user_error(message: str, title: str = "Error") -> gr.Error:
    """A message for the person at the browser or API client; expected, so no traceback in the server log."""
    return gr.Error(message, title=title, print_exception=False)


def row_index(evt: gr.SelectData) -> int:
    index = evt.index
    return int(index[0] if isinstance(index, (list, tuple)) else index)


def figure_panel(prefix: str) -> list[gr.Plot]:
    """The seven clue plots of one question, laid out in pairs; returned in viz.FIGURE_NAMES order.

    Labels are hidden because every figure carries its own title. elem_ids: `<prefix>heatmap` etc.
    """
    def plot(name: str) -> gr.Plot:
        return gr.Plot(label=FIGURE_LABELS[name], show_label=False, format="png", elem_id=f"{prefix}{name}")

    made = {}
    with gr.Row():
        made["top5"], made["teacher_student"] = plot("top5"), plot("teacher_student")
    made["temporal"] = plot("temporal")
    made["heatmap"] = plot("heatmap")
    made["evidence"] = plot("evidence")
    with gr.Row():
        made["association"], made["objects"] = plot("association"), plot("objects")
    return [made[name] for name in viz.FIGURE_NAMES]


# ------------------------------------------------------------------------------------------------ the app

class DemoApp:
    """Event handlers around one loaded Pipeline; `build()` lays out the page."""

    def __init__(self, pipeline: Pipeline, settings: Settings = Settings(), examples: Sequence[Example] = ()):
        self.pipe = pipeline
        self.settings = settings
        self.examples = list(examples)
        self.last_timings: dict = {}      # stage times of the latest answer (bench/app_latency.py reads them)
        self.tmp = Path(tempfile.mkdtemp(prefix="mcd-app-"))
        # ground truth of the example clips, by file content: an uploaded copy of an example finds it too
        self.expected = {media.content_hash(e.video): e.answers for e in self.examples if e.answers}

    def _scratch(self, max_age_s: float = 3600.0) -> Path:
        """A fresh folder under our temp dir for one served file; folders older than max_age_s are removed."""
        now = time.time()
        for old in self.tmp.iterdir():
            try:
                if now - old.stat().st_mtime > max_age_s:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        return Path(tempfile.mkdtemp(dir=self.tmp))

    # -- main tab ------------------------------------------------------------------------------------------
    def answer(self, video: str | None, questions: str | None, progress=gr.Progress()):
        """Answer every question (one per line) about the clip: results JSON, table, first question's clues."""
        if not video:
            raise user_error("Please upload a video clip (or pick an example) first.", title="No clip")
        try:
            parsed = split_questions(questions or "")
        except QuestionsError as exc:
            raise user_error(str(exc), title="Questions") from None
        try:
            stages = {"clip": (0.05, "Decoding and encoding the clip"),
                      "questions": (0.5, f"Answering {len(parsed)} question(s)")}
            marks: dict[str, float] = {}

            def on_stage(stage: str) -> None:
                marks[stage] = time.perf_counter()
                progress(stages[stage][0], desc=stages[stage][1])

            t0 = time.perf_counter()
            # the clip's features are cached per file content; the questions are encoded while it decodes
            answers = self.pipe.answer(video, parsed, on_stage=on_stage)
            t2 = time.perf_counter()
            t1 = marks.get("questions", t0)
        except media.MediaError as exc:
            raise user_error(f"This clip cannot be used: {exc.user_message}.", title="Clip") from None
        except QuestionsError as exc:
            raise user_error(str(exc), title="Questions") from None
        except Exception as exc:  # never a traceback in the UI; the log keeps it
            log.exception("answering failed")
            raise user_error(f"Something went wrong while answering ({type(exc).__name__}); please try another "
                           "clip.", title="Error") from None
        clip = answers.clip.clip
        summary = answers.clip_summary(self.pipe.ood_threshold)
        for warning in clip_warnings(summary):
            gr.Warning(warning)
        progress(0.8, desc="Drawing the clues")
        session = Session(answers.results, display_frames(clip.frames), clip.timestamps, clip.duration)
        figures = self._figures(session, 0)
        t3 = time.perf_counter()
        timings = {"features_s": round(t1 - t0, 3), "model_s": round(t2 - t1, 3), "figures_s": round(t3 - t2, 3),
                   **{k: round(v, 3) for k, v in answers.clip.timings.items()}}
        log.info("answered %d question(s): %s", len(answers.results), timings)
        self.last_timings = timings
        expected = self.expected.get(answers.clip.key, {})
        payload = answers.to_json()
        table = results_table(answers.results, expected, unreliable=bool(payload["clip"].get("out_of_domain")))
        return AnswerView(payload, styled_results(table),
                          question_header(0, answers.results[0]), figures,
                          clip_markdown(summary, self.pipe.ood_threshold), session).flat()

    @staticmethod
    def reveal(payload: dict | None):
        """After an answer: the out-of-domain banner (shown only for a flagged clip) and the clue panel."""
        text = domain_warning(payload or {})
        return gr.Markdown(text, visible=bool(text)), gr.Column(visible=True)

    def _figures(self, session: Session, index: int) -> list:
        if getattr(session.results[index], "refused", False):     # not put to the model: nothing to draw
            return [None] * len(viz.FIGURE_NAMES)
        figs = viz.question_figures(session.results[index], session.frames, session.timestamps, session.duration)
        return [figs[name] for name in viz.FIGURE_NAMES]

    def select_question(self, session: Session | None, evt: gr.SelectData):
        """Show the figures of the selected row's question."""
        if not session or not session.results:
            raise user_error("Answer some questions first.", title="Nothing to show")
        index = row_index(evt)
        if not 0 <= index < len(session.results):
            raise user_error(f"There is no question {index + 1}.", title="Selection")
        return QuestionView(question_header(index, session.results[index]), self._figures(session, index)).flat()

    def predict(self, video: str | None, questions: str | None) -> dict:
        """The JSON-only API event `/predict`: exactly the answer contract (`AnswerSet.to_json`), no figures."""
        if not video:
            raise user_error("Please upload a video clip first.", title="No clip")
        try:
            return self.pipe.answer(video, split_questions(questions or "")).to_json()
        except QuestionsError as exc:
            raise user_error(str(exc), title="Questions") from None
        except media.MediaError as exc:
            raise user_error(f"This clip cannot be used: {exc.user_message}.", title="Clip") from None
        except Exception as exc:  # never a traceback for the client; the log keeps it
            log.exception("predict failed")
            raise user_error(f"Something went wrong while answering ({type(exc).__name__}); please try another "
                             "clip.", title="Error") from None

    # -- analysis tab --------------------------------------------------------------------------------------
    def load_predictions(self, predictions: str | None, annotations: str | None):
        from mcd.task.questions import QUESTION_TYPES
        from mcd.task.vocab import ANSWERS

        if not predictions:
            raise user_error("Please upload a predictions JSONL file from `mcd evaluate`.", title="Analysis")
        try:
            analysis = load_analysis(predictions, annotations)
        except ValueError as exc:
            raise user_error(str(exc), title="Analysis") from None
        rows = analysis.rows
        counts = {t: sum(r["type"] == t for r in rows) for t in QUESTION_TYPES}
        teacher = analysis.teacher_report["types"] if analysis.teacher_report else None
        accuracy = viz.per_type_accuracy(analysis.report["types"], counts, teacher=teacher)
        confusion = viz.confusion_matrix([r["answer"] for r in rows], [r["pred"] for r in rows], order=ANSWERS)
        seen = [a for a in ANSWERS if any(r["answer"] == a or r["pred"] == a for r in rows)]
        overall = analysis.report["overall"]
        summary = f"**{analysis.note}**; overall accuracy {overall:.2%}"
        if analysis.teacher_report:
            summary += f" (teacher {analysis.teacher_report['overall']:.2%})"
        types = [ALL] + [t for t in QUESTION_TYPES if counts[t]]
        filters = (gr.Dropdown(choices=types, value=ALL), gr.Dropdown(choices=[ALL] + seen, value=ALL),
                   gr.Dropdown(choices=[ALL] + seen, value=ALL), gr.Checkbox(value=False), gr.Checkbox(value=False))
        return AnalysisView(summary, type_table(analysis), accuracy, confusion, filters, analysis_frame(rows),
                            f"{len(rows)} of {len(rows)} rows", rows).flat()

    def load_example_run(self):
        """The bundled run (`assets/example-run.jsonl`: the shipped checkpoint on the example clips), with the
        benchmark folder set to `assets/` so that its rows open their clips."""
        from mcd.serving.examples import EXAMPLE_RUN_FILE

        if not EXAMPLE_RUN_FILE.is_file():
            raise user_error("No example run ships with this copy of the demo.", title="Analysis")
        return (*self.load_predictions(str(EXAMPLE_RUN_FILE), None), str(ASSETS))

    def apply_filters(self, rows: list[dict] | None, wrong: bool, disagree: bool, qtype: str, gold: str, pred: str):
        from mcd.task.vocab import ANSWERS

        rows = rows or []
        kept = filter_rows(rows, wrong, disagree, qtype, gold, pred)
        by_type = filter_rows(rows, qtype=qtype)
        confusion = viz.confusion_matrix([r["answer"] for r in by_type], [r["pred"] for r in by_type], order=ANSWERS)
        return analysis_frame(kept), f"{len(kept)} of {len(rows)} rows", confusion, kept

    def export_csv(self, rows: list[dict] | None):
        if not rows:
            raise user_error("No rows to export: load a predictions file (and loosen the filters).", title="Export")
        return str(write_csv(rows, self._scratch() / "filtered_predictions.csv"))

    def open_row(self, rows: list[dict] | None, folder: str | None, evt: gr.SelectData):
        """The selected prediction's clip and clues, when its clip is on disk under the benchmark folder."""
        rows = rows or []
        index = row_index(evt)
        if not 0 <= index < len(rows):
            raise user_error("Select a row of the table.", title="Analysis")
        row = rows[index]
        head = (f"**{row.get('video_id')}** - {row.get('question')}  \ncorrect answer **{row.get('answer')}**, "
                f"predicted **{row.get('pred')}**" + (f", teacher **{row['teacher_pred']}**"
                                                       if "teacher_pred" in row else ""))
        path = clip_for(folder, str(row.get("video_id", "")))
        if path is None:
            where = f"`{folder}/videos/{row.get('video_id')}.mp4`" if folder else "a benchmark folder (set it above)"
            return QuestionView(head + f"\n\nThe clip is not available: looked for {where}.",
                                [None] * len(viz.FIGURE_NAMES)).flat(with_clip=True)
        try:
            answers = self.pipe.answer(path, [str(row["question"])])
        except (media.MediaError, QuestionsError) as exc:
            message = exc.user_message if isinstance(exc, media.MediaError) else str(exc)
            raise user_error(f"Cannot answer this row: {message}", title="Analysis") from None
        clip = answers.clip.clip
        session = Session(answers.results, display_frames(clip.frames), clip.timestamps, clip.duration)
        # Served copies live in our temp folder: the benchmark folder itself is never exposed.
        copy = self._scratch() / path.name
        shutil.copyfile(path, copy)
        r = answers.results[0]
        head += f"  \nre-run now: **{r.answer}** ({r.confidence:.1%}), teacher {r.teacher_answer}"
        return QuestionView(head, self._figures(session, 0), str(copy)).flat(with_clip=True)

    # -- layout --------------------------------------------------------------------------------------------
    def build(self) -> gr.Blocks:
        s = self.settings
        with gr.Blocks(title="MCD-AVQA", delete_cache=(3600, 3600)) as demo:
            gr.Markdown(
                "# MCD-AVQA: audio-visual question answering\n"
                "Upload a clip (or pick an example), ask questions about what is **seen and heard** (one per "
                f"line, at most {MAX_QUESTIONS}), press **Answer**. Select a row of the results to see its clues: "
                "which seconds the model listened to and looked at, where in the frame it looked, what the answer "
                "rests on, and whether the student (MCD's answer path: question + clues) agrees with the "
                "audio-visual teacher.")
            session = gr.State(None, time_to_live=3600)
            with gr.Tab("Ask"):
                with gr.Row():
                    with gr.Column(scale=3, min_width=300):
                        video = gr.Video(label="Clip", sources=["upload"], elem_id="video-input", height=300)
                        gr.Markdown(domain_line(self.pipe.instruments), elem_id="domain-line")
                        questions = gr.Textbox(
                            label=f"Questions (one per line, at most {MAX_QUESTIONS})", lines=6,
                            placeholder="Is there a violin sound?\nWhere is the performance?\n"
                                        "How many musical instruments were heard throughout the video?",
                            elem_id="questions")
                        answer_btn = gr.Button("Answer", variant="primary", elem_id="answer-btn")
                        # progress is drawn here, not over the results: an error (a toast) leaves them usable
                        progress_box = gr.Markdown("", elem_id="answer-progress", min_height=40)
                        if self.examples:
                            gr.Examples(examples=[[str(e.video), "\n".join(e.questions)] for e in self.examples],
                                        inputs=[video, questions], label="Example clips (click to load)",
                                        example_labels=[e.title for e in self.examples],
                                        api_visibility="private")
                        clip_info = gr.Markdown("*No clip answered yet.*", label="clip", elem_id="clip-info")
                        gr.Markdown(f"Limits: {s.max_file_mb:g} MB per file, {s.max_duration_s:g} s per clip.")
                    with gr.Column(scale=8):
                        warning = gr.Markdown(visible=False, elem_id="domain-warning")
                        table = gr.Dataframe(value=pd.DataFrame(columns=RESULT_COLUMNS), label="Answers "
                                             "(select a row to see its clues)", interactive=False, wrap=True,
                                             column_widths=["40px", "160px", "130px", "110px", "85px", "105px",
                                                            "85px", "60px", "95px"],
                                             max_height=720, elem_id="results-table")
                        gr.Markdown(TEACHER_LINE, elem_id="teacher-line")
                        with gr.Column(visible=False) as clues:     # no empty plot boxes before a first answer
                            header = gr.Markdown(label="selected question", elem_id="selected-question")
                            plots = figure_panel("")
                        with gr.Accordion("Results as JSON (what the /answer API returns)", open=False):
                            result_json = gr.JSON(label="results")
                with gr.Accordion("Model card", open=False, elem_id="model-card-panel"):
                    gr.Markdown(model_card(self.pipe.checkpoint_dir, self.pipe.metrics), elem_id="model-card")
            answer_btn.click(self.answer, inputs=[video, questions],
                             outputs=[result_json, table, header, *plots, clip_info, session],
                             api_name="answer", api_description="Answer questions (one per line) about a clip",
                             show_progress_on=[progress_box]
                             ).success(self.reveal, inputs=[result_json], outputs=[warning, clues],
                                       api_visibility="private")
            table.select(self.select_question, inputs=[session], outputs=[header, *plots], api_visibility="private")

            with gr.Tab("Analysis"):
                gr.Markdown(
                    "Load the predictions of an evaluation run (`mcd evaluate --checkpoint DIR --data OUT "
                    "--predictions PRED.jsonl`). Files with only `question_id` and `pred` need the annotations "
                    "too. Give the benchmark folder to open a row's clip and clues.")
                with gr.Row():
                    pred_file = gr.File(label="Predictions (JSONL)", file_types=[".jsonl", ".json", ".txt"],
                                        elem_id="pred-file")
                    ann_file = gr.File(label="Annotations (optional, MUSIC-AVQA JSON)", file_types=[".json"],
                                       elem_id="ann-file")
                    bench_dir = gr.Textbox(label="Benchmark folder (optional, holds videos/<video_id>.mp4)")
                with gr.Row():
                    load_btn = gr.Button("Load predictions", variant="primary", elem_id="load-btn")
                    example_btn = gr.Button("Load example run", elem_id="example-run-btn")
                summary = gr.Markdown()
                with gr.Row():
                    types = gr.Dataframe(value=pd.DataFrame(columns=TYPE_COLUMNS), label="Accuracy per type",
                                         interactive=False, max_height=640,
                                         column_widths=["40%", "16%", "20%", "24%"])
                    type_plot = gr.Plot(label="Accuracy per type", format="png")
                confusion = gr.Plot(label="Confusion matrix (rows of the selected type)", format="png")
                with gr.Row():
                    wrong = gr.Checkbox(label="wrong answers only")
                    disagree = gr.Checkbox(label="teacher ≠ student only")
                    type_dd = gr.Dropdown([ALL], value=ALL, label="type")
                    gold_dd = gr.Dropdown([ALL], value=ALL, label="correct answer")
                    pred_dd = gr.Dropdown([ALL], value=ALL, label="predicted answer")
                count = gr.Markdown()
                rows_table = gr.Dataframe(value=pd.DataFrame(columns=ANALYSIS_COLUMNS), interactive=False,
                                          label="Predictions (select a row to open its clip)", wrap=True,
                                          max_height=400, elem_id="analysis-table",
                                          column_widths=["9%", "12%", "14%", "29%", "8%", "8%", "6%", "8%", "6%"])
                with gr.Row():
                    export_btn = gr.Button("Export filtered rows as CSV")
                    export_file = gr.File(label="CSV", interactive=False)
                detail = gr.Markdown()
                detail_video = gr.Video(label="Clip", interactive=False, height=260)
                detail_plots = figure_panel("analysis-")
            all_rows = gr.State([])
            shown_rows = gr.State([])
            private = {"api_visibility": "private"}
            load_btn.click(self.load_predictions, inputs=[pred_file, ann_file],
                           outputs=[summary, types, type_plot, confusion, type_dd, gold_dd, pred_dd, wrong, disagree,
                                    rows_table, count, all_rows, shown_rows], **private)
            example_btn.click(self.load_example_run, inputs=None,
                              outputs=[summary, types, type_plot, confusion, type_dd, gold_dd, pred_dd, wrong,
                                       disagree, rows_table, count, all_rows, shown_rows, bench_dir], **private)
            for control in (wrong, disagree, type_dd, gold_dd, pred_dd):
                control.input(self.apply_filters, inputs=[all_rows, wrong, disagree, type_dd, gold_dd, pred_dd],
                              outputs=[rows_table, count, confusion, shown_rows], **private)
            export_btn.click(self.export_csv, inputs=[shown_rows], outputs=[export_file], **private)
            rows_table.select(self.open_row, inputs=[shown_rows, bench_dir],
                              outputs=[detail, detail_video, *detail_plots],
                              **private)
            # API only, no trigger on the page: the answer contract alone (under 1 KB per question, no figures).
            # Its hidden output sits after the tabs: between them it would split the tab bar in two.
            gr.on([], self.predict, inputs=[video, questions], outputs=[gr.JSON(visible=False)], api_name="predict",
                  api_description="Answer questions (one per line) about a clip: the answer contract JSON only")
        return demo


# ------------------------------------------------------------------------------------------------ serving

def launch(demo: gr.Blocks, settings: Settings, host: str | None = None, port: int | None = None,
           block: bool = True, quiet: bool = False):
    """Queue + launch with the serving limits; `block=False` returns at once (tests). Returns the server info."""
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    return demo.launch(
        server_name=host, server_port=port, max_file_size=settings.max_bytes,
        allowed_paths=[str(ASSETS)], root_path=os.environ.get("GRADIO_ROOT_PATH") or None,
        show_error=True, prevent_thread_lock=not block, quiet=quiet, footer_links=["api", "gradio"], css=CSS,
    )


def create_app(checkpoint: str | Path = DEFAULT_CHECKPOINT, settings: Settings = Settings(),
               examples_file: Path = EXAMPLES_FILE, device=None) -> tuple[DemoApp, gr.Blocks]:
    """Load the checkpoint once (on `device`: auto, cpu, cuda[:N]; default auto) and lay out the page."""
    import torch

    torch.set_num_threads(settings.threads())
    pipe = Pipeline(checkpoint, limits=settings.limits(), device=device)
    app = DemoApp(pipe, settings, load_examples(examples_file))
    return app, app.build()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(description="MCD-AVQA demo (Gradio)")
    p.add_argument("--checkpoint", type=Path, default=Path(env.get("MCD_CHECKPOINT", DEFAULT_CHECKPOINT)),
                   help="checkpoint folder (default: $MCD_CHECKPOINT or checkpoints/mcd-synth)")
    p.add_argument("--host", default=None, help="interface to bind (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    p.add_argument("--max-file-mb", type=float, default=float(env.get("MCD_MAX_FILE_MB", Settings.max_file_mb)))
    p.add_argument("--max-duration-s", type=float,
                   default=float(env.get("MCD_MAX_DURATION_S", Settings.max_duration_s)))
    p.add_argument("--concurrency", type=int, default=int(env.get("MCD_CONCURRENCY", Settings.concurrency)),
                   help="requests processed at once (others wait in the queue)")
    p.add_argument("--torch-threads", type=int, default=None, help="torch threads (default: cores / concurrency)")
    p.add_argument("--device", default=env.get("MCD_DEVICE", "auto"), metavar="auto|cpu|cuda[:N]",
                   help="where the model and encoders run (default: $MCD_DEVICE or auto = CUDA when present)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from mcd.device import DeviceError, resolve_device
    from mcd.model.checkpoint import CheckpointError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)   # Gradio's own start-up requests
    args = parse_args(argv)
    settings = Settings(max_file_mb=args.max_file_mb, max_duration_s=args.max_duration_s,
                        concurrency=max(1, args.concurrency), torch_threads=args.torch_threads)
    if not (args.checkpoint / "config.json").is_file():
        print(f"app.py: no checkpoint at {args.checkpoint} (config.json missing). Pass --checkpoint DIR or set "
              "MCD_CHECKPOINT; `mcd train` writes one.", file=sys.stderr)
        return 2
    try:
        device = resolve_device(args.device, announce=True)
    except DeviceError as exc:
        print(f"app.py: {exc}", file=sys.stderr)
        return 2
    try:
        _, demo = create_app(args.checkpoint, settings, device=device)
    except CheckpointError as exc:
        print(f"app.py: cannot load the checkpoint: {exc}", file=sys.stderr)
        return 2
    launch(demo, settings, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
