"""Port musicnn's MTT_musicnn TensorFlow-1 checkpoint to safetensors, and compute reference outputs of the original.

Run ONCE, in a scratch environment with TensorFlow (never needed at run time or in CI):

    python3 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install "tensorflow-cpu==2.15.1" "numpy<2" librosa safetensors
    /tmp/tfvenv/bin/pip install --no-deps musicnn==0.1.0
    /tmp/tfvenv/bin/python scripts/port_musicnn.py port          # -> mcd/encoders/weights/musicnn_mtt.{safetensors,json}
    /tmp/tfvenv/bin/python scripts/port_musicnn.py reference     # -> mcd/encoders/weights/musicnn_mtt_reference.json
    /tmp/tfvenv/bin/python scripts/port_musicnn.py reference --audio a.wav b.wav --out /tmp/musicnn_ref.npz

`port` reads every variable of the checkpoint (Adam slots and step counters excepted) and writes it under the
parameter names of `mcd.encoders.musicnn.MusiCNN`, transposed to PyTorch layouts; it fails if a variable is left
over or a parameter has no variable. `reference` builds the original graph with musicnn's own `models.py`,
restores the checkpoint exactly as musicnn's extractor does, and runs it on musicnn's own librosa log-mel
(`extractor.batch_data` recomputed with an explicit pad_mode, see below). Without --audio it uses short
formula-defined test signals (`test_signals`, also defined in tests/test_encoders_pretrained.py) and writes the
small JSON fixture the tests compare the port against; with --audio it writes an .npz with the waveforms,
librosa log-mels and TF outputs that `bench/encoders_pretrained.py --parity` compares against.

librosa: musicnn 0.1.0 required librosa>=0.7, whose STFT padded centred frames by reflection; librosa >= 0.10
pads with zeros. The port's front end uses reflection (the training condition), so the reference passes
pad_mode="reflect" to librosa explicitly.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "mcd" / "encoders" / "weights"
SR, N_FFT, HOP, N_MELS, N_FRAMES = 16000, 512, 256, 96, 187

# TF layer name -> PyTorch module prefix, in musicnn's creation order (models.build_musicnn)
CONV = {"conv2d": "front.0.conv", "conv2d_1": "front.1.conv", "conv2d_2": "front.2.conv", "conv2d_3": "front.3.conv",
        "conv2d_4": "front.4.conv", "conv2d_5": "mid.0.conv", "conv2d_6": "mid.1.conv", "conv2d_7": "mid.2.conv"}
BN = {"batch_normalization": "input_bn", "batch_normalization_1": "front.0.bn", "batch_normalization_2": "front.1.bn",
      "batch_normalization_3": "front.2.bn", "batch_normalization_4": "front.3.bn",
      "batch_normalization_5": "front.4.bn", "batch_normalization_6": "mid.0.bn", "batch_normalization_7": "mid.1.bn",
      "batch_normalization_8": "mid.2.bn", "batch_normalization_9": "pool_bn", "batch_normalization_10": "dense_bn"}
DENSE = {"dense": "dense", "dense_1": "out"}
BN_FIELDS = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
SKIP = ("Adam", "beta1_power", "beta2_power", "global_step")
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")   # BatchNorm state, not parameters


def musicnn_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("musicnn")
    if spec is None:
        sys.exit("install musicnn first: pip install --no-deps musicnn==0.1.0")
    return Path(list(spec.submodule_search_locations)[0])


def checkpoint_prefix() -> str:
    # the checkpoint files are named ".index", ".data-..." inside MTT_musicnn/: the prefix is the folder + "/"
    return str(musicnn_dir() / "MTT_musicnn") + "/"


def tf_to_torch(name: str, value: np.ndarray) -> tuple[str, np.ndarray]:
    layer, field = name.split("/")
    if layer in CONV:
        prefix = CONV[layer]
        if field == "bias":
            return f"{prefix}.bias", value
        assert field == "kernel", name
        if prefix.startswith("front"):       # [kh, kw, 1, cout] -> [cout, 1, kh, kw]
            return f"{prefix}.weight", value.transpose(3, 2, 0, 1)
        # mid end: [7, cin, 1, cout] is a 1-D conv over time -> [cout, cin, 7]
        return f"{prefix}.weight", value[:, :, 0, :].transpose(2, 1, 0)
    if layer in BN:
        return f"{BN[layer]}.{BN_FIELDS[field]}", value
    if layer in DENSE:                       # [in, out] -> [out, in]
        return f"{DENSE[layer]}.{'weight' if field == 'kernel' else 'bias'}", (
            value.T if field == "kernel" else value)
    raise KeyError(f"unmapped checkpoint variable {name}")


def port(args) -> None:
    import tensorflow as tf
    from safetensors.numpy import save_file

    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_prefix())
    names = sorted(n for n in reader.get_variable_to_shape_map() if not any(s in n for s in SKIP))
    tensors = {}
    for name in names:
        key, value = tf_to_torch(name, reader.get_tensor(name))
        assert key not in tensors, f"two variables map to {key}"
        tensors[key] = np.ascontiguousarray(value.astype(np.float32))
    # BatchNorm's num_batches_tracked is a PyTorch-only counter (unused in eval); store it so loading is strict
    for prefix in BN.values():
        tensors[f"{prefix}.num_batches_tracked"] = np.zeros((), dtype=np.int64)
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    out = WEIGHTS / "musicnn_mtt.safetensors"
    save_file(tensors, str(out), metadata={"source": "musicnn 0.1.0 MTT_musicnn (TF1 checkpoint)", "license": "ISC"})
    out.chmod(0o644)
    sys.path.insert(0, str(musicnn_dir().parent))
    from musicnn import configuration

    meta = {"model": "MTT_musicnn", "package": "musicnn", "version": "0.1.0", "license": "ISC",
            "author": "Jordi Pons", "dataset": "MagnaTagATune", "checkpoint_variables": len(names),
            "parameters": int(sum(v.size for k, v in tensors.items() if not k.endswith(BUFFERS))),
            "sr": SR, "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS, "patch_frames": N_FRAMES,
            "tags": list(configuration.MTT_LABELS)}
    (WEIGHTS / "musicnn_mtt.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {len(names)} checkpoint variables -> "
          f"{len(tensors)} tensors, {meta['parameters']} parameters)")


# ----------------------------------------------------------------------------- reference outputs


def test_signals() -> dict[str, np.ndarray]:
    """3-s float32 waveforms at 16 kHz defined by formulas only (no RNG), so the tests can rebuild them exactly:
    a plucked harmonic melody, a noisy drum pattern, and a bowed-like chord with vibrato."""
    t = np.arange(3 * SR, dtype=np.float64) / SR
    pluck = np.zeros_like(t)
    for i, f in enumerate([220.0, 277.2, 329.6, 440.0, 329.6, 277.2]):
        start = i * 0.5
        env = np.where(t >= start, np.exp(-(t - start) * 6.0), 0.0)
        pluck += env * sum(np.sin(2 * np.pi * f * k * (t - start)) / k for k in range(1, 6))
    hashed = np.sin(np.arange(t.size, dtype=np.float64) * 12.9898) * 43758.5453
    noise = 2.0 * (hashed - np.floor(hashed)) - 1.0
    beat = np.exp(-((t % 0.25) * 30.0)) * noise + np.exp(-((t % 0.5) * 12.0)) * np.sin(2 * np.pi * 60.0 * t)
    vib = 1.0 + 0.005 * np.sin(2 * np.pi * 5.0 * t)
    chord = sum(np.sin(2 * np.pi * f * vib * t) + 0.5 * np.sin(4 * np.pi * f * vib * t) for f in (196.0, 293.7, 392.0))
    sig = {"pluck": pluck, "drums": beat, "chord": chord * np.minimum(t * 4.0, 1.0)}
    return {k: (0.5 * v / np.abs(v).max()).astype(np.float32) for k, v in sig.items()}


def librosa_logmel(wave: np.ndarray, pad_mode: str) -> np.ndarray:
    """musicnn's extractor.batch_data on an in-memory 16 kHz waveform (no resampling), pad_mode made explicit."""
    import librosa

    rep = librosa.feature.melspectrogram(y=wave, sr=SR, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS,
                                         pad_mode=pad_mode).T
    rep = rep.astype(np.float16)
    return np.log10(10000 * rep + 1).astype(np.float32)


def run_original(patches: np.ndarray) -> dict[str, np.ndarray]:
    """musicnn's graph and restore, as in extractor.extractor (is_training False), on log-mel [B, frames, 96]."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    from musicnn import models

    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, patches.shape[1], N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        y, timbral, temporal, cnn1, cnn2, cnn3, mean_pool, max_pool, penultimate = models.define_model(
            x, is_training, "MTT_musicnn", 50)
        tags = tf.nn.sigmoid(y)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().restore(sess, checkpoint_prefix())
        out = sess.run([y, tags, penultimate, max_pool, mean_pool], feed_dict={x: patches, is_training: False})
    return dict(zip(["logits", "tags", "penultimate", "max_pool", "mean_pool"], out))


def read_audio(path: str) -> np.ndarray:
    import librosa

    wave, _ = librosa.load(path, sr=SR, mono=True)  # resampled with librosa's default (soxr_hq)
    return wave.astype(np.float32)


def reference(args) -> None:
    pad = args.pad_mode
    if not args.audio:
        waves = test_signals()
        names = list(waves)
        mels = np.stack([librosa_logmel(waves[n], pad)[:N_FRAMES] for n in names])
        out = run_original(mels)
        # also the 1-s (63-frame) input of the "self" context, for the first second of each signal
        one = np.stack([librosa_logmel(waves[n][:SR], pad) for n in names])
        out1 = run_original(one)
        fixture = {
            "about": "MTT_musicnn outputs of the ORIGINAL TensorFlow model (musicnn 0.1.0 models.py + checkpoint) on "
                     "librosa log-mels (pad_mode=%r) of scripts/port_musicnn.py:test_signals(); written by "
                     "`scripts/port_musicnn.py reference`" % pad,
            "pad_mode": pad, "signals": names,
            "tags_3s": out["tags"].round(7).tolist(), "penultimate_3s": out["penultimate"].round(6).tolist(),
            "logmel_3s_frame100": mels[:, 100].round(6).tolist(),
            "tags_1s": out1["tags"].round(7).tolist(), "penultimate_1s": out1["penultimate"].round(6).tolist(),
        }
        target = Path(args.out or WEIGHTS / "musicnn_mtt_reference.json")
        target.write_text(json.dumps(fixture) + "\n")
        print(f"wrote {target} ({target.stat().st_size} bytes)")
        for i, n in enumerate(names):
            top = np.argsort(-out["tags"][i])[:3]
            print(n, [(int(j), round(float(out["tags"][i, j]), 3)) for j in top])
        return
    waves, mels, owners = [], [], []
    for k, path in enumerate(args.audio):
        waves.append(read_audio(path))
        rep = librosa_logmel(waves[-1], pad)
        for start in range(0, rep.shape[0] - N_FRAMES + 1, N_FRAMES):   # musicnn's non-overlapping patches
            mels.append(rep[start:start + N_FRAMES])
            owners.append(k)
    mels = np.stack(mels)
    out = run_original(mels)
    # the whole-file waveforms go along: the port's front end recomputes the same frames from them (end to end)
    np.savez_compressed(args.out or "/tmp/musicnn_ref.npz", logmel=mels, owner=np.array(owners),
                        files=np.array([os.path.basename(p) for p in args.audio]),
                        pad_mode=np.array(pad), **{f"wave{k}": w for k, w in enumerate(waves)},
                        **out)
    print(f"wrote {args.out or '/tmp/musicnn_ref.npz'}: {len(mels)} patches from {len(args.audio)} files")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("port", help="checkpoint -> mcd/encoders/weights/musicnn_mtt.safetensors + .json")
    r = sub.add_parser("reference", help="outputs of the original TF model")
    r.add_argument("--audio", nargs="*", help="audio files (default: the formula test signals -> JSON fixture)")
    r.add_argument("--out", help="output path")
    r.add_argument("--pad-mode", default="reflect", help="librosa STFT pad_mode (reflect = librosa 0.7, musicnn's)")
    args = p.parse_args()
    port(args) if args.cmd == "port" else reference(args)


if __name__ == "__main__":
    main()
