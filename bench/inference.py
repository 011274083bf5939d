"""Inference benchmark: SpeechBrain ``EncoderASR`` vs ``transformers.pipeline``.

One model, written both ways by ``speechbrain_w2vbert.inference.folder``: the EncoderASR
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

With ``--int8`` it compares instead fp32 and int8 (dynamic quantisation of
the encoder's linear layers, ``w2vbert-asr --int8``) side by side in one
run, on the 4 x 512 bench encoder (random weights: speed and memory) and on
the committed tiny test model (speed, and CER on the sample corpus' test
speaker): each utterance transcribed one at a time, fp32 and int8
alternating file by file (each call a new shape, as the CLI calls it), real-
time factor, median and worst time per file; memory, each side in its own
worker process (``bench/common.py``): the process's peak resident set, its
growth while transcribing (activations), and the encoder's weights.

Usage::

    python bench/inference.py [--model results/demo/inference] [--files 64] [--batch-size 16]
    python bench/inference.py --int8 [--files 40]
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
from common import add_json_option, emit, reset_peak_rss, rss_mb, run_worker

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

    from speechbrain_w2vbert.hf import save_hf_folder

    if model_folder is None:
        model_folder = random_folder(workdir)
    asr = EncoderASR.from_hparams(source=os.path.abspath(model_folder), savedir=os.path.join(workdir, "sb"))
    hf_folder = os.path.join(workdir, "hf")
    save_hf_folder(hf_folder, asr.mods.encoder.encoder, asr.mods.encoder.head, asr.tokenizer)
    return asr, pipeline("automatic-speech-recognition", model=hf_folder, device=-1)


def random_folder(workdir, config=None):
    """An EncoderASR folder of random weights: the tiny config, or ``config``
    (a ``Wav2Vec2BertConfig``)."""
    from speechbrain_w2vbert import TINY_CONFIG_DIR
    from speechbrain_w2vbert.inference.folder import export_inference_folder
    from speechbrain_w2vbert.models.w2vbert import W2VBert
    from speechbrain_w2vbert.text.tokenizer import CharTokenizer

    torch.manual_seed(0)
    source = TINY_CONFIG_DIR
    if config is not None:
        source = os.path.join(workdir, "config")
        config.save_pretrained(source)
    tokenizer = CharTokenizer.build(["क ख ग घ ङ च छ ज झ ञ ट ठ ड ढ ण त थ द ध न प फ ब भ म य र ल व श ष स ह ा ि ी ु ू े ै ो ौ ं ्"])
    encoder = W2VBert(source, pretrained=False).eval()
    head = torch.nn.Linear(encoder.model.config.hidden_size, tokenizer.vocab_size)
    folder = os.path.join(workdir, "inference")
    export_inference_folder(folder, encoder, head, tokenizer)
    return folder


def weight_mb(module):
    """Megabytes of a module's state (int8 packed weights included)."""
    import io

    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.tell() / 1e6


def int8_memory_worker(args):
    """One side's memory, in its own process: the process's peak resident
    set after transcribing the files one at a time, and its growth during
    that pass over the resident set after loading (activations)."""
    import csv

    from speechbrain_w2vbert.inference.folder import load_asr
    from speechbrain_w2vbert.inference.quantization import quantize_asr_int8
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    with tempfile.TemporaryDirectory() as workdir:
        asr = load_asr(args.folder, workdir)
        if args.int8_memory == "int8":
            quantize_asr_int8(asr)
        side = Transcriber(asr, segmenter=None)
        with open(args.csv, encoding="utf-8") as f:
            wavs = [side.read(r["wav"]) for r in csv.DictReader(f)]
        wavs = (wavs * (1 + args.files // len(wavs)))[:max(args.files, len(wavs))]
        side.transcribe_waveforms(wavs[:2])
        base = reset_peak_rss()
        for wav in wavs:
            side.transcribe_waveforms([wav])
        print(json.dumps({"peak_mb": rss_mb("VmHWM") - base, "process_peak_mb": rss_mb("VmHWM")}))


def int8_bench(args):
    """fp32 vs int8, side by side (see the module docstring)."""
    import copy
    import csv
    import statistics

    from transformers import Wav2Vec2BertConfig

    from speechbrain_w2vbert.inference.folder import load_asr
    from speechbrain_w2vbert.text.scoring import error_counts
    from speechbrain_w2vbert.inference.quantization import quantize_asr_int8
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    sys.path.insert(0, os.path.join(ROOT, "recipes", "OpenSLR54"))
    from openslr54_prepare import prepare_openslr54

    rows_out = []
    with tempfile.TemporaryDirectory() as workdir:
        prepare_openslr54(SAMPLE_DATA, os.path.join(workdir, "prep"), extract_folder=os.path.join(workdir, "corpus"))
        test_csv = os.path.join(workdir, "prep", "test.csv")
        with open(test_csv, encoding="utf-8") as f:
            test = list(csv.DictReader(f))
        bench_config = Wav2Vec2BertConfig(hidden_size=512, num_hidden_layers=4, num_attention_heads=8,
                                          intermediate_size=2048)
        models = [("4 x 512 bench encoder (random)", random_folder(os.path.join(workdir, "b"), bench_config), False),
                  ("tiny test model (trained)", os.path.join(ROOT, "tests", "data", "tiny_ne_model"), True)]
        for name, folder, score in models:
            fp32 = load_asr(folder, os.path.join(workdir, name[:4] + "fp32"))
            int8 = quantize_asr_int8(copy.deepcopy(fp32))
            sides = {"fp32": Transcriber(fp32, segmenter=None), "int8": Transcriber(int8, segmenter=None)}
            wavs = [sides["fp32"].read(r["wav"]) for r in test]
            wavs = (wavs * (1 + args.files // len(wavs)))[:max(args.files, len(wavs))]
            audio = sum(w.shape[0] for w in wavs) / 16000
            for side in sides.values():  # warm-up
                side.transcribe_waveforms(wavs[:2])
            times = {k: [] for k in sides}
            texts = {k: [] for k in sides}
            for wav in wavs:  # times: alternating file by file
                for label, side in sides.items():
                    start = time.perf_counter()
                    texts[label].append(side.transcribe_waveforms([wav])[0].text)
                    times[label].append(time.perf_counter() - start)
            for label in sides:
                memory = run_worker([sys.executable, os.path.abspath(__file__), "--int8-memory", label, "--folder",
                                     folder, "--csv", test_csv, "--files", str(args.files), "--threads",
                                     str(args.threads)], "cpu")
                row = {"model": name, "precision": label, "files": len(wavs), "audio_s": audio,
                       "rtf": sum(times[label]) / audio,
                       "activations_mb": memory["peak_mb"], "process_peak_mb": memory["process_peak_mb"],
                       "median_ms": 1000 * statistics.median(times[label]), "worst_ms": 1000 * max(times[label]),
                       "weights_mb": weight_mb(sides[label].asr.mods.encoder)}
                if score:
                    counts = error_counts(texts[label][:len(test)], [r["wrd"] for r in test])
                    row["cer"] = 100.0 * counts["char_errors"] / counts["chars"]
                rows_out.append(row)
            print(f"# {name}: {len(wavs)} files, {audio:.0f} s of audio, one at a time, {args.threads} threads")
    header = (f"{'model':<32} {'precision':<9} {'RTF':>7} {'median ms':>10} {'worst ms':>9} "
              f"{'peak RSS MB':>11} {'activ. MB':>9} {'weights MB':>10} {'CER %':>6} {'speed-up':>9}")
    print(header)
    print("-" * len(header))
    for i, row in enumerate(rows_out):
        base = rows_out[i - i % 2]
        row["speed_up"] = base["rtf"] / row["rtf"]
        cer = f"{row['cer']:6.2f}" if "cer" in row else f"{'-':>6}"
        print(f"{row['model']:<32} {row['precision']:<9} {row['rtf']:7.4f} {row['median_ms']:10.1f} "
              f"{row['worst_ms']:9.1f} {row['process_peak_mb']:11.0f} {row['activations_mb']:9.1f} {row['weights_mb']:10.1f} {cer} "
              f"{row['speed_up']:8.2f}x")
    emit({"bench": "inference_int8", "files": args.files, "rows": rows_out}, args.json, args.threads)


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
    parser.add_argument("--int8", action="store_true", help="fp32 vs int8 instead (see above)")
    parser.add_argument("--int8-memory", choices=("fp32", "int8"), help=argparse.SUPPRESS)  # worker of --int8
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    add_json_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.int8_memory:
        return int8_memory_worker(args)
    if args.int8:
        return int8_bench(args)

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
    emit({"bench": "inference", "files": len(wavs), "audio_s": audio, "batch_size": args.batch_size,
          "model": args.model or "random tiny (2.0M parameters)", "identical": agreement,
          "rows": [{"mode": m, "impl": i, "seconds": s, "rtf": s / audio, "vs_pipeline": rows[k - k % 2][2] / s}
                   for k, (m, i, s) in enumerate(rows)]}, args.json, args.threads)


if __name__ == "__main__":
    sys.exit(main())
