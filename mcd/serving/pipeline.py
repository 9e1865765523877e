"""Load a checkpoint once; answer questions about clips with answers, clues and the teacher/student view.

Data flow: clip -> media.decode -> encoders (cached by the clip's content hash) -> all questions at
once: understand (mcd.task.understanding: exact template, else the semantic matcher; refusals) -> text encoder ->
one batched MCD forward over the answered questions with the clip's features shared -> result objects. Asking new
questions about a clip already seen neither decodes nor encodes it again.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from mcd import media
from mcd.serving import ood, signal_checks
from mcd.serving.evidence import answers_with_evidence
from mcd.serving.shown_clues import ShownClue, shown_spatial, shown_temporal
from mcd.model.checkpoint import load_checkpoint
from mcd.data.text_bank import TextBank, object_phrases
from mcd.device import move, resolve_device
from mcd.encoders.encoder_set import EncoderSet
from mcd.model.grounding import GROUNDING_POSITIONS
from mcd.task.questions import LEXICON, TEMPLATES, type_index
from mcd.task.understanding import ANSWERED, PhrasingBank, QuestionUnderstander, Understanding
from mcd.task.vocab import ANSWERS, FORMAT1_SYNTH_INSTRUMENTS

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "mcd-synth"
MAX_QUESTIONS = 20


class QuestionsError(ValueError):
    """No questions at all, or too many: the message says which. (A single bad question is not an error: its row
    comes back with status "invalid" and a note.)"""


@dataclass
class ClipFeatures:
    """A decoded and encoded clip: what the model needs plus what the UI shows."""

    key: str
    clip: media.DecodedClip
    visual: torch.Tensor   # [T,P,Dv]
    audio: torch.Tensor    # [T,Da]
    ood_score: float
    timings: dict
    domain: ood.DomainReport | None = None        # per-modality verdicts (mcd.serving.ood)


@dataclass
class QuestionResult:
    """One question's result. `status` says whether it was answered (mcd.task.understanding.STATUSES); a refused
    question (out_of_scope, unknown_instrument, invalid) is never put to the model: its answer and every model
    read-out are None/empty and `note` says why."""

    question: str
    type: str
    keywords: list[str]
    note: str | None
    answer: str | None = None
    confidence: float | None = None
    top5: list[tuple[str, float]] = field(default_factory=list)
    teacher_answer: str | None = None
    teacher_confidence: float | None = None
    agree: bool | None = None
    js_divergence: float | None = None
    cos_q_v: float | None = None
    cos_q_a: float | None = None
    student_probs: np.ndarray | None = None     # [C]
    teacher_probs: np.ndarray | None = None     # [C]
    objects: list[str] = field(default_factory=list)
    clues: dict[str, np.ndarray] = field(default_factory=dict)  # association [2T,2T], visual_low [T,P], ...
    referents: dict[str, dict] = field(default_factory=dict)   # keyword -> what it points at (object_grounding)
    object_clues: dict[str, np.ndarray] = field(default_factory=dict)  # per text object [K,...] (MCDOutput)
    shown: dict[str, ShownClue] = field(default_factory=dict)  # "spatial", "temporal": the clues the demo draws
    evidence: dict[str, np.ndarray] = field(default_factory=dict)  # "visual" [T,P], "audio" [T]: mcd.serving.evidence
    clue_quality: dict | None = None   # the checkpoint's bench record (config.json "clue_quality"), for captions
    status: str = ANSWERED
    understood_as: str | None = None   # the filled template the model is asked (None when nothing fits)
    similarity: float | None = None    # to the matched template (understanding.py); 1.0: exact wording

    @property
    def refused(self) -> bool:
        return self.status != ANSWERED

    def summary(self, timestamps: np.ndarray, k: int = 3) -> dict:
        """JSON-ready: everything but the arrays, plus the most attended seconds (nulls for a refused question)."""
        head = {"question": self.question, "understood_as": self.understood_as, "status": self.status,
                "type": self.type, "keywords": self.keywords, "similarity": self.similarity, "note": self.note}
        if self.refused:
            return {**head, "answer": None, "confidence": None, "top5": [], "teacher_answer": None,
                    "teacher_confidence": None, "agree": None, "js_divergence": None, "cos_q_v": None,
                    "cos_q_a": None, "clues": None}

        def top_seconds(weights: np.ndarray) -> list[float]:
            return [round(float(timestamps[i]), 2) for i in np.argsort(-weights)[:k]]
        visual_t = self.clues["visual_high"] if "visual_high" in self.clues else self.clues["visual_low"].sum(-1)
        return {
            **head,
            "answer": self.answer, "confidence": round(self.confidence, 4),
            "top5": [[a, round(p, 4)] for a, p in self.top5],
            "teacher_answer": self.teacher_answer, "teacher_confidence": round(self.teacher_confidence, 4),
            "agree": self.agree, "js_divergence": round(self.js_divergence, 4),
            "cos_q_v": round(self.cos_q_v, 4), "cos_q_a": round(self.cos_q_a, 4),
            "clues": {"audio_seconds": top_seconds(self.clues["audio_high"]),
                      "visual_seconds": top_seconds(visual_t),
                      "objects": {o: round(float(w), 4) for o, w in zip(self.objects, self.clues["objects"])}},
            **({"evidence": self.evidence_summary(timestamps, k)} if self.evidence else {}),
            **({"referents": self.referent_summary(timestamps)} if self.referents else {}),
        }

    def evidence_summary(self, timestamps: np.ndarray, k: int = 3) -> dict:
        """JSON-ready: the seconds whose audio, and the seconds whose picture, the answer rests on most (positive
        evidence only, at most k each, strongest first), and the 7x7 cell (row-major index over all seconds)."""
        audio = self.evidence["audio"]
        visual = self.evidence["visual"]

        def strongest(values: np.ndarray) -> list[float]:
            order = [int(i) for i in np.argsort(-values, kind="stable")[:k] if values[i] > 0]
            return [round(float(timestamps[i]), 2) for i in order]
        per_cell = visual.sum(0)
        return {"audio_seconds": strongest(audio), "visual_seconds": strongest(np.clip(visual, 0, None).sum(1)),
                "cell": int(np.argmax(per_cell)) if per_cell.max() > 0 else None}

    def referent_summary(self, timestamps: np.ndarray) -> dict[str, dict]:
        """keyword -> its predicted referent, JSON-ready: the per-segment probabilities become the seconds in
        which it is predicted to sound (probability > 0.5)."""
        return {word: {"instrument": r["instrument"], "instrument_p": round(r["instrument_p"], 4),
                       "position": r["position"], "position_p": round(r["position_p"], 4),
                       "sounds_p": round(r["sounds_p"], 4),
                       "sounding_seconds": [round(float(t), 2) for t in timestamps[r["segments"] > 0.5]]}
                for word, r in self.referents.items()}


@dataclass
class AnswerSet:
    """One request's result. `to_json()` is the one answer contract (docs/contracts.md): `mcd predict`, the demo's
    JSON panel and its API events all emit exactly it."""

    clip: ClipFeatures
    results: list[QuestionResult]
    timings: dict = field(default_factory=dict)
    checkpoint: str = ""
    ood_threshold: float | None = None
    video: str = ""

    def clip_summary(self, ood_threshold: float | None = None) -> dict:
        """The clip's facts and domain verdicts. `out_of_domain` is true when either modality is flagged (or the
        score passes an explicitly given `ood_threshold`); `domain` holds each modality's verdict."""
        threshold = self.ood_threshold if ood_threshold is None else ood_threshold
        c = self.clip.clip
        domain = self.clip.domain
        flagged = bool(domain is not None and domain.flagged)
        return {"duration_s": round(c.duration, 2), "T": c.T, "has_audio": c.has_audio,
                "width": c.width, "height": c.height, "ood_score": round(self.clip.ood_score, 3),
                "out_of_domain": flagged or bool(threshold is not None and self.clip.ood_score > threshold),
                "domain": None if domain is None else domain.to_json()}

    @property
    def domain_warning(self) -> str | None:
        """One sentence for the UI when the picture or the sound is out of domain (else None), for example
        'The picture is unlike the training clips and the sound is silent: answers are unreliable.'"""
        if self.clip.domain is not None and self.clip.domain.flagged:
            return self.clip.domain.warning()
        threshold = self.ood_threshold
        if threshold is not None and self.clip.ood_score > threshold:
            return "The clip is unlike the training clips: answers are unreliable."
        return None

    def to_json(self) -> dict:
        """The answer contract: the clip summary and one entry per question (JSON-ready; no arrays, no images)."""
        timestamps = self.clip.clip.timestamps
        return {"video": self.video, "checkpoint": self.checkpoint, "clip": self.clip_summary(),
                "answers": [r.summary(timestamps) for r in self.results]}


def phrase_vocabulary() -> list[str]:
    """Every text object a parsed question can have: lexicon keywords and the templates' type words."""
    phrases = set(object_phrases(sorted(LEXICON), None, None)[0])
    for t in TEMPLATES:
        phrases.update(object_phrases((), t.modality, t.kind)[0])
    return sorted(phrases)


@dataclass
class QuestionText:
    """Encoded questions and text objects of one request, padded as in training batches."""

    tokens: torch.Tensor          # [N,L,Dt]
    mask: torch.Tensor            # [N,L]
    objects: torch.Tensor         # [N,K,Dt]
    objects_mask: torch.Tensor    # [N,K]
    objects_kind: torch.Tensor    # [N,K]
    phrases: list[list[str]]      # each question's text objects, in order


def describe_referents(keywords: Sequence[str], read: dict[str, np.ndarray],
                       classes: Sequence[str]) -> dict[str, dict]:
    """keyword -> what the grounding head says it points at: the likeliest instrument and position with their
    probabilities, the probability that it sounds, and per segment the probability that it sounds then.

    `read` holds one question's GroundingHead.read arrays ([K,...]); keywords are the first objects, in order;
    `classes` names the head's instrument classes in order.
    Empty for checkpoints trained without object_grounding.
    """
    if not read:
        return {}
    out = {}
    for j, word in enumerate(keywords):
        inst, pos = read["instrument"][j], read["position"][j]
        out[word] = {"instrument": classes[int(inst.argmax())], "instrument_p": float(inst.max()),
                     "position": GROUNDING_POSITIONS[int(pos.argmax())], "position_p": float(pos.max()),
                     "sounds_p": float(read["sounds"][j]), "segments": read["segments"][j]}
    return out


def shown_clues(keywords: Sequence[str], type_words: Sequence[str], referents: dict[str, dict],
                object_clues: dict[str, np.ndarray], clues: dict[str, np.ndarray]) -> dict[str, ShownClue]:
    """The spatial and temporal clue the demo draws for one answer (mcd.serving.shown_clues says why these)."""
    return {"spatial": shown_spatial(keywords, type_words, referents, object_clues, clues["visual_low"]),
            "temporal": shown_temporal(keywords, referents, object_clues, clues["audio_high"])}


def split_questions(text_or_list: str | list[str], limit: int = MAX_QUESTIONS) -> list[str]:
    """The questions of a request: one per non-empty line of a string, or every item of a list (an empty or bad item
    stays, and is answered with status "invalid"); 1..limit of them, else a QuestionsError a person can act on."""
    if isinstance(text_or_list, str):
        questions = [q.strip() for q in text_or_list.splitlines() if q.strip()]
    else:
        questions = [q.strip() if isinstance(q, str) else q for q in text_or_list]
    if not questions:
        raise QuestionsError("Please type at least one question (one per line).")
    if len(questions) > limit:
        raise QuestionsError(f"{len(questions)} questions were given; at most {limit} per request, please.")
    return questions


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint)."""
    p, q = np.clip(p, 1e-12, 1), np.clip(q, 1e-12, 1)
    m = 0.5 * (p + q)
    return float(0.5 * (p * np.log2(p / m)).sum() + 0.5 * (q * np.log2(q / m)).sum())


class Pipeline:
    """One loaded checkpoint serving many requests; thread-safe (the Gradio queue runs events concurrently)."""

    def __init__(self, checkpoint: str | Path = DEFAULT_CHECKPOINT, cache_clips: int = 32,
                 limits: media.MediaLimits | None = None, device: str | torch.device | None = None):
        """`device`: where the model and encoders run (auto, cpu, cuda, cuda:N; default auto = CUDA when present).
        Clip features and every result stay on the CPU."""
        self.device = resolve_device(device)
        self.checkpoint_dir = Path(checkpoint)
        loaded = load_checkpoint(self.checkpoint_dir)
        self.config = loaded.config
        self.metrics = loaded.metrics if hasattr(loaded, "metrics") else {}
        self.model = loaded.model.eval().to(self.device)
        self.encoders = EncoderSet.from_specs(self.config["encoders"], loaded.extra_tensors, self.device)
        self.T = int(self.config.get("T", self.model.config.T))
        self.ood = self.config.get("ood")
        self.clue_quality = self.config.get("clue_quality")
        self._ood_tensors = {k: v for k, v in loaded.extra_tensors.items() if k.startswith(ood.TENSOR_PREFIX)}
        self.detector = ood.load(self.ood, self._ood_tensors)
        # the instruments the model was trained on (format-1 checkpoints predate the entry: the first world's)
        self.instruments = tuple(self.config.get("instruments", FORMAT1_SYNTH_INSTRUMENTS))
        self.grounding_instruments = tuple(self.config.get("grounding_instruments", FORMAT1_SYNTH_INSTRUMENTS))
        self.limits = limits or media.MediaLimits()
        self._clips: OrderedDict[str, ClipFeatures] = OrderedDict()
        self._cache_clips = cache_clips
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        # All text encoding runs on this one thread: the fast tokenizer is not safe across threads, and a request's
        # questions are encoded here while its clip decodes on the caller's thread (two cores, both busy).
        self._text_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcd-text")
        # Text objects come from a closed vocabulary (lexicon keywords and type words): encode it once, up front,
        # so a new question pays only for its own string. Queued first, so no request can overtake it.
        self._text_worker.submit(self.encoders.text.encode_phrases, phrase_vocabulary())
        # The question matcher embeds its phrasing bank once (cached per process), on the text thread too.
        self._understander: QuestionUnderstander | None = None
        self._text_worker.submit(self._load_understander)

    def _load_understander(self) -> QuestionUnderstander:
        """The question matcher, with sentence embeddings from the checkpoint's own text encoder when it is the
        model the bank was calibrated for (MiniLM: mean-pooled token states, the same loaded model); another text
        encoder gets a MiniLM of its own, and without one only exact template wording is understood."""
        if self._understander is not None:
            return self._understander
        bank = PhrasingBank.load()
        text = self.encoders.text
        if getattr(text, "id", None) != bank.model:
            try:
                from mcd.encoders.text import MiniLMTextEncoder
                text = MiniLMTextEncoder()
            except Exception:  # noqa: BLE001 - no MiniLM: exact wording only, said in each refusal's note
                text = None
        embed = None if text is None else (lambda texts, enc=text: enc.sentence_embeddings(list(texts)).numpy())
        self._understander = QuestionUnderstander(embed, self.instruments, bank=bank,
                                                  cache_key=None if text is None else text.id)
        return self._understander

    def understand(self, questions: Sequence[str]) -> list[Understanding]:
        """What each question is understood as (runs on the text thread, where the tokenizer lives)."""
        return self._text_worker.submit(lambda: self._load_understander().understand_all(list(questions))).result()

    def clear_cache(self) -> None:
        """Forget every encoded clip (the next request about any clip decodes and encodes it again)."""
        with self._lock:
            self._clips.clear()

    @property
    def ood_threshold(self) -> float | None:
        """The threshold of `ClipFeatures.ood_score` (None: uncalibrated). Format 2's score is the larger of the
        modalities' score/threshold ratios, so its threshold is 1."""
        if isinstance(self.detector, ood.Detector):
            return 1.0
        if isinstance(self.detector, ood.LegacyDetector):
            return self.detector.threshold
        return None

    # -- clip side ----------------------------------------------------------------------------------------------
    def clip_features(self, path: str | Path) -> ClipFeatures:
        """Decode + encode a clip, or return the cached result for the same file content."""
        key = media.content_hash(path)
        with self._lock:
            if key in self._clips:
                self._clips.move_to_end(key)
                return self._clips[key]
        t0 = time.perf_counter()
        clip = media.decode(path, T=self.T, limits=self.limits)
        t1 = time.perf_counter()
        with torch.no_grad():
            visual = self.encoders.visual.encode(clip.frames).float()
            audio = self.encoders.audio.encode(clip.audio_segments).float()
        t2 = time.perf_counter()
        domain = self.judge_domain(clip, visual, audio)
        feats = ClipFeatures(key, clip, visual, audio, domain.score if isinstance(self.detector, ood.Detector)
                             else self.ood_score(visual, audio), {"decode_s": t1 - t0, "encode_s": t2 - t1},
                             domain)
        with self._lock:
            self._clips[key] = feats
            while len(self._clips) > self._cache_clips:
                self._clips.popitem(last=False)
        return feats

    def ood_score(self, visual: torch.Tensor, audio: torch.Tensor) -> float:
        return ood.detector_score(self.detector, visual, audio)

    def judge_domain(self, clip: media.DecodedClip, visual: torch.Tensor, audio: torch.Tensor) -> ood.DomainReport:
        """The picture's and the sound's domain verdicts from the encoded features and the decoded signal."""
        stats = signal_checks.measure(clip.frames, clip.audio_segments, clip.has_audio)
        return self.detector.judge(visual, audio, stats, clip.timestamps)

    # -- question side ------------------------------------------------------------------------------------------
    def answer(self, path: str | Path, questions: str | list[str],
               on_stage: Callable[[str], None] | None = None) -> AnswerSet:
        """Answer 1..20 questions about one clip in one batched forward.

        `on_stage("clip")` is called before the clip is decoded and encoded, `on_stage("questions")` once its
        features are ready (the demo's progress bar); the questions are encoded meanwhile on the text thread.
        """
        questions = split_questions(questions)
        t0 = time.perf_counter()
        if on_stage:
            on_stage("clip")
        # understanding and encoding run on the text thread, overlapping with the clip's decoding
        text_job = self._text_worker.submit(self._understand_and_encode, questions)
        feats = self.clip_features(path)
        t1 = time.perf_counter()
        if on_stage:
            on_stage("questions")
        understood, text, understand_s = text_job.result()
        t2 = time.perf_counter()
        with self._model_lock:
            results = self.answer_features(feats.visual, feats.audio, understood, text)
        t3 = time.perf_counter()
        timings = {**feats.timings, "features_s": t1 - t0, "understand_s": understand_s, "text_wait_s": t2 - t1,
                   "model_s": t3 - t2}
        return AnswerSet(feats, results, timings, checkpoint=str(self.checkpoint_dir),
                         ood_threshold=self.ood_threshold, video=Path(path).name)

    def _understand_and_encode(self, questions: list[str]) -> tuple[list[Understanding], QuestionText | None, float]:
        """Understand every question, then encode the answered ones (runs on the text thread)."""
        t0 = time.perf_counter()
        understood = self._load_understander().understand_all(questions)
        t1 = time.perf_counter()
        return understood, self._encode_text(understood), t1 - t0

    def _encode_text(self, understood: list[Understanding]) -> QuestionText | None:
        """The answered questions (as understood) and their text objects as model inputs; None if none is
        answered (runs on the text thread)."""
        asked = [u for u in understood if u.answered]
        if not asked:
            return None
        texts = [u.understood_as for u in asked]
        objs = [object_phrases(u.keywords, u.modality, u.kind) for u in asked]
        bank = TextBank(self.encoders.text, texts, objs)   # the same padding as training batches
        tokens, mask = bank.questions(texts)
        return QuestionText(tokens, mask, *bank.objects(objs), [phrases for phrases, _ in objs])

    def _answer_with_evidence(self, visual: torch.Tensor, audio: torch.Tensor, asked: dict):
        """One grad-enabled forward where the model lives (mcd.serving.evidence): the output and what each answer
        rests on, back on the CPU. `asked`: the batched question inputs."""
        out, ev = answers_with_evidence(self.model, *move((visual, audio), self.device), **move(asked, self.device))
        return move(out, torch.device("cpu")), move(ev, torch.device("cpu"))

    @staticmethod
    def refused_result(u: Understanding) -> QuestionResult:
        """The result of a question that is not put to the model: no answer, no figures, a note saying why."""
        return QuestionResult(question=u.text, type=u.type, keywords=list(u.keywords), note=u.note, status=u.status,
                              understood_as=u.understood_as, similarity=u.similarity)

    @torch.no_grad()
    def answer_features(self, visual: torch.Tensor, audio: torch.Tensor, understood: list[Understanding],
                        text: QuestionText | None = None) -> list[QuestionResult]:
        """One batched forward for the answered questions among `understood` about one clip's features; refused
        ones get `refused_result` (no forward at all when every question is refused)."""
        asked = [u for u in understood if u.answered]
        if not asked:
            return [self.refused_result(u) for u in understood]
        if text is None:
            text = self._text_worker.submit(self._encode_text, understood).result()
        answered = iter(self._answer_asked(visual, audio, asked, text))
        return [next(answered) if u.answered else self.refused_result(u) for u in understood]

    def _answer_asked(self, visual: torch.Tensor, audio: torch.Tensor, parsed: list[Understanding],
                      text: QuestionText) -> list[QuestionResult]:
        asked = dict(question=text.tokens.float(), question_mask=text.mask, objects=text.objects,
                     objects_mask=text.objects_mask, objects_kind=text.objects_kind,
                     question_type=torch.tensor([type_index(p.type) for p in parsed], dtype=torch.long))
        out, evidence = self._answer_with_evidence(visual, audio, asked)
        student = out.logits.float().softmax(-1).numpy()
        teacher = out.teacher_logits.float().softmax(-1).numpy()
        cos_v = torch.nn.functional.cosine_similarity(out.z_q, out.z_v, dim=-1).numpy()
        cos_a = torch.nn.functional.cosine_similarity(out.z_q, out.z_a, dim=-1).numpy()
        clues = {name: t.float().numpy() for name, t in out.clues.items()}
        referents = {name: t.float().numpy() for name, t in out.referents.items()}
        object_clues = {name: t.float().numpy() for name, t in out.object_clues.items()}
        results = []
        for i, p in enumerate(parsed):
            order = np.argsort(-student[i])[:5]
            s_best, t_best = int(order[0]), int(teacher[i].argmax())
            n_obj = len(text.phrases[i])
            q_clues = {name: arr[i] for name, arr in clues.items()}
            q_clues["objects"] = q_clues["objects"][:n_obj]
            q_objects = {name: arr[i, :n_obj] for name, arr in object_clues.items()}
            q_referents = describe_referents(p.keywords, {k: v[i] for k, v in referents.items()},
                                             self.grounding_instruments)
            results.append(QuestionResult(
                question=p.text, type=p.type, keywords=list(p.keywords), note=p.note,
                status=p.status, understood_as=p.understood_as, similarity=p.similarity,
                answer=ANSWERS[s_best], confidence=float(student[i, s_best]),
                top5=[(ANSWERS[int(j)], float(student[i, j])) for j in order],
                teacher_answer=ANSWERS[t_best], teacher_confidence=float(teacher[i, t_best]),
                agree=s_best == t_best, js_divergence=js_divergence(student[i], teacher[i]),
                cos_q_v=float(cos_v[i]), cos_q_a=float(cos_a[i]),
                student_probs=student[i], teacher_probs=teacher[i], objects=text.phrases[i], clues=q_clues,
                referents=q_referents, object_clues=q_objects,
                shown=shown_clues(p.keywords, text.phrases[i][len(p.keywords):], q_referents, q_objects, q_clues),
                evidence={"visual": evidence.visual[i].numpy(), "audio": evidence.audio[i].numpy()},
                clue_quality=self.clue_quality))
        return results
