"""Inference benchmark: SpeechBrain ``EncoderASR`` vs ``transformers.pipeline``.

One model, written both ways by ``speechbrain_w2vbert.export``: the EncoderASR
folder and the ``Wav2Vec2BertForCTC`` folder with its processor. Both
transcribe the same files (the bundled sample corpus' utterances, read once
into memory), in this one process, alternating so that machine load hits
both alike:

- real-time factor: one file at a time (seconds of compute per second of audio);
- batch throughput: all files in batches of ``--batch-size`` (seconds of audio
  per second).

It also counts identical transcripts between the two one file at a time, and
between each one's batched and one-at-a-time runs (a batch must not change
a transcript).

The weights are random unless ``--model`` names a trained inference folder
(e.g. ``results/demo/inference``); speed does not depend on them. Prints a
table and one JSON line.

Usage::

    python bench/inference.py [--model results/demo/inference] [--files 64] [--batch-size 16]
"""

import argparse
import glob
import json
import os
import sys
import tempfile
import time
import zipfile

import soundfile as sf
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DATA = os.path.join(ROOT, "recipes", "OpenSLR54", "sample_data")


def sample_audio(count):
    """Up to ``count`` readable 16 kHz utterances from the sample shards."""
    wavs = []
    for shard in sorted(glob.glob(os.path.join(SAMPLE_DATA, "asr_nepali_*.zip"))):
        with zipfile.ZipFile(shard) as archive:
            for name in sorted(n for n in archive.namelist() if n.endswith(".flac")):
                try:
                    with archive.open(name) as f:
                        wav, rate = sf.read(f, dtype="float32")
                except Exception:  # the sample corpus holds deliberately broken files
                    continue
                if rate == 16000 and wav.ndim == 1 and len(wav) > 16000:
                    wavs.append(wav)
                if len(wavs) == count:
                    return wavs
    return wavs


def build_models(model_folder, workdir):
    """(EncoderASR, HF pipeline) over the same weights."""
    from speechbrain.inference.ASR import EncoderASR
    from transformers import pipeline

    from speechbrain_w2vbert import TINY_CONFIG_DIR
    from speechbrain_w2vbert.export import export_inference_folder, save_hf_folder
    from speechbrain_w2vbert.lobe import W2VBert
    from speechbrain_w2vbert.tokenizer import CharTokenizer

    if model_folder is None:
        torch.manual_seed(0)
        tokenizer = CharTokenizer.build(["क ख ग घ ङ च छ ज झ ञ ट ठ ड ढ ण त थ द ध न प फ ब भ म य र ल व श ष स ह ा ि ी ु ू े ै ो ौ ं ्"])
        encoder = W2VBert(TINY_CONFIG_DIR, pretrained=False).eval()
        head = torch.nn.Linear(encoder.model.config.hidden_size, tokenizer.vocab_size)
        model_folder = os.path.join(workdir, "inference")
        export_inference_folder(model_folder, encoder, head, tokenizer)
    asr = EncoderASR.from_hparams(source=os.path.abspath(model_folder), savedir=os.path.join(workdir, "sb"))
    hf_folder = os.path.join(workdir, "hf")
    save_hf_folder(hf_folder, asr.mods.encoder.encoder, asr.mods.encoder.head, asr.tokenizer)
    return asr, pipeline("automatic-speech-recognition", model=hf_folder, device=-1)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="an EncoderASR folder (default: a random tiny model)")
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    wavs = sample_audio(args.files)
    audio = sum(len(w) for w in wavs) / 16000
    with tempfile.TemporaryDirectory() as workdir:
        asr, hf = build_models(args.model, workdir)

        def sb_one():
            return [asr.transcribe_batch(torch.from_numpy(w)[None], torch.ones(1))[0][0] for w in wavs]

        def hf_one():
            return [hf({"raw": w, "sampling_rate": 16000})["text"] for w in wavs]

        def sb_batched():
            texts = []
            for start in range(0, len(wavs), args.batch_size):
                chunk = wavs[start : start + args.batch_size]
                longest = max(len(w) for w in chunk)
                batch = torch.zeros(len(chunk), longest)
                for i, w in enumerate(chunk):
                    batch[i, : len(w)] = torch.from_numpy(w)
                texts += asr.transcribe_batch(batch, torch.tensor([len(w) / longest for w in chunk]))[0]
            return texts

        def hf_batched():
            inputs = [{"raw": w, "sampling_rate": 16000} for w in wavs]
            return [out["text"] for out in hf(inputs, batch_size=args.batch_size)]

        sb_one(), hf_one()  # warm-up
        results = {}
        with torch.no_grad():
            for name, fn in (("hf_one", hf_one), ("sb_one", sb_one), ("hf_batched", hf_batched),
                             ("sb_batched", sb_batched)):
                results[name] = timed(fn)

    def same(a, b):
        return sum(x == y for x, y in zip(results[a][1], results[b][1]))

    agreement = {
        "pipeline_vs_encoderasr_one_at_a_time": same("hf_one", "sb_one"),
        "encoderasr_batched_vs_one_at_a_time": same("sb_batched", "sb_one"),
        "pipeline_batched_vs_one_at_a_time": same("hf_batched", "hf_one"),
    }
    rows = [
        ("one file at a time", "transformers.pipeline", results["hf_one"][0]),
        ("one file at a time", "EncoderASR", results["sb_one"][0]),
        (f"batches of {args.batch_size}", "transformers.pipeline", results["hf_batched"][0]),
        (f"batches of {args.batch_size}", "EncoderASR", results["sb_batched"][0]),
    ]
    print(f"# {len(wavs)} sample-corpus files, {audio:.0f} s of audio, model "
          f"{args.model or 'random tiny (2.0M parameters)'}, {args.threads} CPU threads")
    header = f"{'mode':<20} {'implementation':<22} {'seconds':>8} {'RTF':>8} {'audio s/s':>10} {'vs pipeline':>12}"
    print(header)
    print("-" * len(header))
    for index, (mode, impl, seconds) in enumerate(rows):
        baseline = rows[index - index % 2][2]
        print(f"{mode:<20} {impl:<22} {seconds:>8.2f} {seconds / audio:>8.4f} {audio / seconds:>10.1f} "
              f"{baseline / seconds:>11.2f}x")
    for name, count in agreement.items():
        print(f"identical transcripts, {name.replace('_', ' ')}: {count}/{len(wavs)}")
    print(json.dumps({"bench": "inference", "files": len(wavs), "audio_s": audio, "identical": agreement,
                      "rows": [{"mode": m, "impl": i, "seconds": s} for m, i, s in rows]}))


if __name__ == "__main__":
    sys.exit(main())
