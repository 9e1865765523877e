"""The default `minilm` text encoder: loads with no network, token states + masks, phrase pooling and caching."""
from __future__ import annotations

import socket

import pytest
import torch

from mcd.encoders import EncoderInputError, build_encoder
from mcd.encoders.text import MiniLMTextEncoder, minilm_spec

QUESTIONS = [
    "How many instruments are sounding in the video?",
    "Is there a voiceover?",
    "What is the left instrument of the first sounding instrument?",
]


@pytest.fixture(scope="module")
def minilm():
    """Loaded with every socket connection and DNS look-up failing: the model must come from disk only."""
    def no_network(*args, **kwargs):
        raise OSError("network access attempted while loading minilm")

    saved = socket.socket.connect, socket.getaddrinfo
    socket.socket.connect, socket.getaddrinfo = no_network, no_network
    try:
        enc = build_encoder({"modality": "text", "backend": "minilm"})
    finally:
        socket.socket.connect, socket.getaddrinfo = saved
    return enc


def test_loads_offline_with_the_documented_spec(minilm):
    assert isinstance(minilm, MiniLMTextEncoder) and minilm.dim == 384
    assert minilm.spec() == minilm_spec() and minilm.spec()["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert not minilm.model.training and not any(p.requires_grad for p in minilm.model.parameters())


def test_question_tokens_and_masks(minilm):
    tokens, mask = minilm.encode_questions(QUESTIONS)
    lengths = [len(minilm.tokenizer(q)["input_ids"]) for q in QUESTIONS]  # [CLS] ... [SEP]
    assert tokens.shape == (3, max(lengths), 384) and tokens.dtype == torch.float32
    assert mask.dtype == torch.bool and mask.sum(1).tolist() == lengths
    for i, n in enumerate(lengths):  # real tokens first, padding after, and padding is zero
        assert mask[i, :n].all() and not mask[i, n:].any()
        assert tokens[i, n:].abs().sum() == 0 and tokens[i, :n].abs().sum(-1).gt(0).all()


def test_deterministic_and_independent_of_the_batch(minilm):
    tokens, mask = minilm.encode_questions(QUESTIONS)
    minilm.question_cache.data.clear()
    again, mask2 = minilm.encode_questions(QUESTIONS)
    assert torch.equal(mask, mask2) and torch.allclose(again, tokens, atol=1e-6)
    minilm.question_cache.data.clear()
    alone, alone_mask = minilm.encode_questions(QUESTIONS[1:2])
    n = int(alone_mask.sum())
    assert torch.allclose(alone[0, :n], tokens[1, :n], atol=1e-5)


def test_phrases_are_mean_pooled_and_cached(minilm):
    phrases = ["violin", "acoustic guitar", "Audio Visual"]
    vecs = minilm.encode_phrases(phrases)
    assert vecs.shape == (3, 384)
    tokens, mask = minilm.encode_questions(phrases)
    pooled = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    assert torch.allclose(vecs, pooled, atol=1e-5)

    hits, misses = minilm.phrase_cache.hits, minilm.phrase_cache.misses
    again = minilm.encode_phrases(["Audio Visual", "violin", "violin"])
    assert minilm.phrase_cache.hits - hits == 2 and minilm.phrase_cache.misses == misses
    assert torch.equal(again, vecs[[2, 0, 0]])


def test_sentence_embeddings_match_the_pooled_phrases_at_either_precision(minilm, monkeypatch):
    """The matcher's embeddings: float32 pooling exactly where bfloat16 is not native, within 1e-3 cosine of it
    where it is (a bfloat16 pass whose states were not float32-close would fail here), cached apart from phrases."""
    import mcd.encoders.text as text

    sentences = ["how many object can you hear", "is the lr1 object louder than the lr2 one", "hello"]
    exact = minilm.encode_phrases(sentences)
    for native in (False, True):
        monkeypatch.setattr(text, "low_precision_available", lambda device: native)
        minilm.sentence_cache.data.clear()
        vecs = minilm.sentence_embeddings(sentences)
        assert vecs.dtype == torch.float32 and vecs.shape == (3, 384)
        if not native:
            assert torch.equal(vecs, exact)
        else:
            cos = torch.nn.functional.cosine_similarity(vecs, exact, dim=-1)
            assert (cos > 0.999).all() and not torch.equal(vecs, exact)
        hits = minilm.sentence_cache.hits
        assert torch.equal(minilm.sentence_embeddings(sentences[:1]), vecs[:1])
        assert minilm.sentence_cache.hits == hits + 1
    assert torch.equal(minilm.encode_phrases(sentences), exact)  # the model's phrase inputs stay float32


def test_real_pretrained_weights(minilm):
    """Random weights would not put 'violin' next to 'cello' and away from 'outdoor'."""
    v = torch.nn.functional.normalize(minilm.encode_phrases(["violin", "cello", "outdoor"]), dim=-1)
    assert v[0] @ v[1] > 0.5 > 0.3 > v[0] @ v[2]


def test_empty_and_bad_inputs(minilm):
    tokens, mask = minilm.encode_questions([])
    assert tokens.shape == (0, 0, 384) and mask.shape == (0, 0)
    assert minilm.encode_phrases([]).shape == (0, 384)
    with pytest.raises(EncoderInputError, match="list of strings"):
        minilm.encode_questions("Is there a voiceover?")
    with pytest.raises(EncoderInputError, match="strings"):
        minilm.encode_phrases(["violin", 3])


def test_cache_is_bounded():
    from mcd.encoders.text import LRUCache

    cache = LRUCache(2)
    for k in "abc":
        cache.put(k, torch.zeros(1))
    assert list(cache.data) == ["b", "c"] and cache.get("a") is None
    cache.get("b")
    cache.put("d", torch.zeros(1))
    assert list(cache.data) == ["b", "d"]
