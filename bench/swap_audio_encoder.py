"""Copy a checkpoint with another synth audio CNN behind its MusiCNN features, to test an audio encoder end to end
without rebuilding the model.

    python bench/swap_audio_encoder.py CHECKPOINT ENCODERS DATA OUT

ENCODERS: a `mcd pretrain-encoders` folder (its audio CNN is taken; `--visual-steps 0` skips the visual one);
DATA: a `mcd synth` benchmark whose first 64 training clips set the join's standardisation, as pretraining does;
OUT: the checkpoint with its audio encoder replaced by its own MusiCNN part joined with that CNN. The model's weights are
unchanged, so OUT must be fine-tuned on features from its own encoders before it is measured
(`mcd extract --encoders OUT`, then `bench/faithfulness_pilot.py --checkpoint OUT`). Its `clue_quality` and its
out-of-domain calibration (`ood`, fitted on the old sound features) are dropped: they belong to the source
checkpoint. Results: docs/clues.md.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mcd.data.extract import load_encoders  # noqa: E402
from mcd.encoders.encoder_set import PREFIX as ENCODER_PREFIX  # noqa: E402
from mcd.encoders.labels import SceneLabelError, read_scenes  # noqa: E402
from mcd.encoders.pretrain import join_pretrained  # noqa: E402
from mcd.model.checkpoint import RESERVED_KEYS, load_checkpoint, save_checkpoint  # noqa: E402
from mcd.serving.ood import TENSOR_PREFIX as OOD_PREFIX  # noqa: E402

AUDIO_PREFIX = f"{ENCODER_PREFIX}audio."
DROPPED = ("clue_quality", "ood")   # measured on, or fitted to, the source checkpoint's features


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("encoders", type=Path, help="`mcd pretrain-encoders` folder holding the synth audio CNN")
    p.add_argument("data", type=Path, help="benchmark whose training clips fit the join's standardisation")
    p.add_argument("out", type=Path)
    p.add_argument("--join-clips", type=int, default=64)
    p.add_argument("--T", type=int, help="segments per clip (default: the checkpoint's, as extraction uses)")
    args = p.parse_args(argv)

    ckpt = load_checkpoint(args.checkpoint)
    T = args.T or int(ckpt.config.get("T", ckpt.model.config.T))
    parts = ckpt.config["encoders"]["audio"].get("parts", [])
    if [q["backend"] for q in parts] != ["musicnn", "synth"]:
        raise SystemExit(f"{args.checkpoint}: the audio encoder is not MusiCNN joined with a synth CNN")
    try:
        cnn = load_encoders(args.encoders).audio
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    if cnn.spec()["backend"] != "synth":
        raise SystemExit(f"{args.encoders}: the audio encoder is {cnn.spec()['backend']}, not a synth CNN")
    try:
        scenes = [s for s in read_scenes(args.data / "scenes.jsonl") if s.split == "train"][: args.join_clips]
    except SceneLabelError as e:
        raise SystemExit(str(e)) from None
    _, audio, report = join_pretrained(None, cnn, None, {**parts[0], "modality": "audio"}, scenes, args.data, T)
    print("join standardisation:", report)

    tensors = {k: v for k, v in ckpt.extra_tensors.items() if not k.startswith((AUDIO_PREFIX, OOD_PREFIX))}
    tensors.update({AUDIO_PREFIX + k: v.contiguous() for k, v in audio.state_dict().items()})
    config = {k: v for k, v in ckpt.config.items() if k not in RESERVED_KEYS + DROPPED}
    config["encoders"] = {**config["encoders"], "audio": audio.spec()}
    save_checkpoint(args.out, ckpt.model, extra_config=config, extra_tensors=tensors, metrics=ckpt.metrics)
    print(f"wrote {args.out} (audio encoder {audio.spec()['digest']})")


if __name__ == "__main__":
    main()
