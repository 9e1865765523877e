"""`hf-clip` (visual, text) and `hf-ast` (audio) through the real loading code, on tiny random models that the
tests `save_pretrained` into temp folders (no hub, no downloads)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    ASTModel,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModel,
)

from mcd.encoders import EncoderLoadError, EncoderSpecError, build_encoder
from mcd.encoders.hf_ast import HFASTAudioEncoder
from mcd.encoders.hf_clip import CLIP_MEAN, HFClipVisualEncoder
from mcd.encoders.text import HFClipTextEncoder

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def toy_clip_tokenizer() -> CLIPTokenizer:
    """A real CLIPTokenizer over a character vocabulary (enough for token counts and masks)."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz?":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A full CLIPModel folder (as openai/clip-* on the hub): vision + text + tokenizer + image processor.
    image_size 56 / patch 8 gives exactly a 7x7 patch grid."""
    folder = tmp_path_factory.mktemp("clip")
    tokenizer = toy_clip_tokenizer()
    config = CLIPConfig(
        text_config=dict(**TINY, vocab_size=len(tokenizer), max_position_embeddings=64,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(**TINY, image_size=56, patch_size=8), projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56},
                       image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.3, 0.25]).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vision_only_dir(tmp_path_factory):
    """CLIPVisionModel alone, no preprocessor file: 8x8 patch grid pooled down to 7x7."""
    folder = tmp_path_factory.mktemp("clip-vision")
    CLIPVisionModel(CLIPVisionConfig(**TINY, image_size=64, patch_size=8)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def ast_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ast")
    torch.manual_seed(0)
    ASTModel(ASTConfig(**TINY, max_length=128, num_mel_bins=64)).save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=64, max_length=128).save_pretrained(folder)
    return folder


def frames(t, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_clip_visual_round_trip(clip_dir):
    enc = build_encoder({"modality": "visual", "backend": "hf-clip", "path": str(clip_dir)})
    assert isinstance(enc, HFClipVisualEncoder) and enc.dim == 32
    out = enc.encode(frames(3, 50, 90))
    assert out.shape == (3, 49, 32) and out.dtype == torch.float32
    again = build_encoder(enc.spec())
    assert again.spec() == enc.spec() == {"modality": "visual", "backend": "hf-clip", "path": str(clip_dir), "dim": 32}
    assert torch.equal(again.encode(frames(3, 50, 90)), out)


def test_clip_visual_patches_in_row_major_with_the_processors_normalisation(clip_dir):
    """At the model's own size (7x7 patches) pooling is the identity: the output must equal the model's patch
    tokens for pixels normalised by the saved CLIPImageProcessor (its custom mean/std, no resize or crop)."""
    enc = build_encoder({"modality": "visual", "backend": "hf-clip", "path": str(clip_dir)})
    x = frames(2, 56, 56)
    processor = CLIPImageProcessor.from_pretrained(clip_dir)
    pixels = processor(images=list(x), do_resize=False, do_center_crop=False, return_tensors="pt")["pixel_values"]
    model = CLIPVisionModel.from_pretrained(clip_dir).eval()
    with torch.no_grad():
        want = model(pixel_values=pixels).last_hidden_state[:, 1:]
    assert torch.allclose(enc.encode(x), want, atol=1e-4)


def test_clip_visual_without_processor_pools_8x8_to_7x7(vision_only_dir):
    enc = build_encoder({"modality": "visual", "backend": "hf-clip", "path": str(vision_only_dir)})
    assert tuple(enc.mean.flatten().tolist()) == pytest.approx(CLIP_MEAN)
    assert enc.encode(frames(2, 64, 64)).shape == (2, 49, 32)


def test_clip_text_round_trip(clip_dir):
    enc = build_encoder({"modality": "text", "backend": "hf-clip", "path": str(clip_dir)})
    assert isinstance(enc, HFClipTextEncoder) and enc.dim == 32
    texts = ["where is the violin?", "is there a voiceover?", "hi"]
    tokens, mask = enc.encode_questions(texts)
    lengths = [len(enc.tokenizer(t)["input_ids"]) for t in texts]
    assert tokens.shape == (3, max(lengths), 32) and mask.sum(1).tolist() == lengths
    assert enc.encode_phrases(["violin", "hi"]).shape == (2, 32)
    assert build_encoder(enc.spec()).spec() == enc.spec()
    assert enc.spec()["backend"] == "hf-clip" and enc.id.startswith("hf-clip-text:")


def test_ast_round_trip(ast_dir):
    enc = build_encoder({"modality": "audio", "backend": "hf-ast", "path": str(ast_dir)})
    assert isinstance(enc, HFASTAudioEncoder) and enc.dim == 32
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((3, 16000))).astype(np.float32)
    out = enc.encode(audio)
    assert out.shape == (3, 32) and out.dtype == torch.float32
    assert not torch.allclose(out[0], out[1])
    assert torch.allclose(enc.encode(audio[1:2]), out[1:2], atol=1e-5)  # batching does not mix windows
    assert build_encoder(enc.spec()).spec() == enc.spec()


def test_ast_resamples_for_an_extractor_at_another_rate(tmp_path, ast_dir):
    ASTModel.from_pretrained(ast_dir).save_pretrained(tmp_path)
    ASTFeatureExtractor(num_mel_bins=64, max_length=128, sampling_rate=8000).save_pretrained(tmp_path)
    enc = build_encoder({"modality": "audio", "backend": "hf-ast", "path": str(tmp_path)})
    t = np.arange(16000) / 16000
    low, high = (np.sin(2 * np.pi * f * t)[None].astype(np.float32) for f in (300.0, 3000.0))
    assert enc.encode(np.concatenate([low, high])).shape == (2, 32)


def test_ast_mel_bins_must_match(tmp_path, ast_dir):
    ASTModel.from_pretrained(ast_dir).save_pretrained(tmp_path)
    ASTFeatureExtractor(num_mel_bins=128, max_length=128).save_pretrained(tmp_path)
    with pytest.raises(EncoderLoadError, match="128 mel bins"):
        build_encoder({"modality": "audio", "backend": "hf-ast", "path": str(tmp_path)})


def test_missing_models_and_bad_specs(tmp_path):
    with pytest.raises(EncoderLoadError, match="missing-clip"):
        build_encoder({"modality": "visual", "backend": "hf-clip", "path": str(tmp_path / "missing-clip")})
    with pytest.raises(EncoderLoadError, match="could not load an Audio Spectrogram Transformer"):
        build_encoder({"modality": "audio", "backend": "hf-ast", "path": str(tmp_path)})  # empty folder
    with pytest.raises(EncoderSpecError, match="lacks path"):
        build_encoder({"modality": "visual", "backend": "hf-clip"})
    with pytest.raises(EncoderSpecError, match="no audio encoder backend 'hf-clip'"):
        build_encoder({"modality": "audio", "backend": "hf-clip", "path": "x"})


def test_a_folder_of_another_model_is_refused(ast_dir, vision_only_dir):
    """transformers would load these with random weights and only log it; we refuse."""
    with pytest.raises(EncoderLoadError, match="does not hold a CLIP vision model"):
        build_encoder({"modality": "visual", "backend": "hf-clip", "path": str(ast_dir)})
    with pytest.raises(EncoderLoadError, match="does not hold an Audio Spectrogram Transformer"):
        build_encoder({"modality": "audio", "backend": "hf-ast", "path": str(vision_only_dir)})


def test_dim_in_the_spec_is_checked(vision_only_dir):
    with pytest.raises(EncoderSpecError, match="32-d features but the spec"):
        build_encoder({"modality": "visual", "backend": "hf-clip", "path": str(vision_only_dir), "dim": 768})
