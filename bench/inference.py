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

With ``--onnx`` it compares PyTorch fp32 and int8 with the ONNX runtime
(:class:`speechbrain_w2vbert.onnx.runtime.OnnxTranscriber`) fp32 and int8,
each ``--onnx-int8-methods`` method its own row, side by side in one run:
on w2v-BERT 2.0's architecture (transformers' default ``Wav2Vec2BertConfig``,
580M parameters, random weights: speed, memory and file size) over
``--clips`` clips of 10 s of real speech (the sample test speaker's
utterances joined), and on the committed tiny test model (speed, and CER
on the sample corpus' test speaker). Each clip or utterance is transcribed
one at a time: for the 580M architecture one side in memory at a time; for
the tiny model each side runs all utterances in a block, the sides in turn,
twice round (never file by file: torch's and onnxruntime's thread pools
slow each other when called in turn); peak resident set of
each side in its own worker process; the machine's load (``uptime``) and
CPU flags are printed with the table.

Usage::

    python bench/inference.py [--model results/demo/inference] [--files 64] [--batch-size 16]
    python bench/inference.py --int8 [--files 40]
    python bench/inference.py --onnx [--clips 3] [--onnx-int8-methods dynamic,nbits8] [--skip-580m]
"""

import argparse
import glob
import json
import os
import shutil
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


def onnx_side(label, folder, onnx_folder, savedir):
    """A transcriber of one bench side: ``torch-fp32``, ``torch-int8`` (the
    EncoderASR folder), ``onnx-fp32`` or ``onnx-int8-<method>`` (an ONNX
    folder per int8 method). onnxruntime's threads do not spin between
    calls: the sides alternate in one process, and a spinning pool would
    take the cores from the side that runs next."""
    if label.startswith("torch"):
        from speechbrain_w2vbert.inference.folder import load_asr
        from speechbrain_w2vbert.inference.quantization import quantize_asr_int8
        from speechbrain_w2vbert.inference.transcriber import Transcriber

        asr = load_asr(folder, tempfile.mkdtemp(prefix="bench-sb-", dir=savedir))
        if label == "torch-int8":
            quantize_asr_int8(asr)
        return Transcriber(asr, segmenter=None, chunk_length=60)
    from speechbrain_w2vbert.onnx.runtime import OnnxTranscriber

    method = label.split("-", 2)[2] if label.startswith("onnx-int8") else None
    path = onnx_folder if method is None else f"{onnx_folder}-{method}"
    return OnnxTranscriber(path, "int8" if method else "fp32", segmenter=None, chunk_length=60,
                           num_threads=torch.get_num_threads(), spinning=False)


def onnx_memory_worker(args):
    """One side's peak resident set, in its own process (see ``int8_memory_worker``)."""
    import numpy as np

    from common import reset_peak_rss, rss_mb

    side = onnx_side(args.onnx_memory, args.folder, args.onnx_folder, os.path.dirname(args.onnx_folder))
    wavs = [np.load(path) for path in args.wavs.split(",")]
    convert = (lambda w: torch.from_numpy(w)) if args.onnx_memory.startswith("torch") else (lambda w: w)
    side.transcribe_waveforms([convert(wavs[0])])
    base = reset_peak_rss()
    for wav in wavs:
        side.transcribe_waveforms([convert(wav)])
    print(json.dumps({"peak_mb": rss_mb("VmHWM") - base, "process_peak_mb": rss_mb("VmHWM")}))


def _folder_mb(paths):
    return sum(os.path.getsize(p) for p in paths) / 1e6


def onnx_bench(args):
    """PyTorch vs ONNX runtime, fp32 and int8, side by side (see the module docstring)."""
    import csv
    import statistics

    import numpy as np
    from common import run_worker
    from transformers import Wav2Vec2BertConfig

    from speechbrain_w2vbert.onnx.export import export_onnx_folder
    from speechbrain_w2vbert.inference.folder import asr_model, load_asr
    from speechbrain_w2vbert.onnx.quantize import quantize_int8
    from speechbrain_w2vbert.text.scoring import error_counts

    sys.path.insert(0, os.path.join(ROOT, "recipes", "OpenSLR54"))
    from openslr54_prepare import prepare_openslr54

    methods = [m for m in args.onnx_int8_methods.split(",") if m]
    labels = ["torch-fp32", "torch-int8", "onnx-fp32"] + [f"onnx-int8-{m}" for m in methods]
    rows_out = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        prepare_openslr54(SAMPLE_DATA, os.path.join(workdir, "prep"), extract_folder=os.path.join(workdir, "corpus"))
        with open(os.path.join(workdir, "prep", "test.csv"), encoding="utf-8") as f:
            test = list(csv.DictReader(f))
        utterances = [sf.read(r["wav"], dtype="float32")[0] for r in test]
        joined = np.concatenate(utterances * 3)
        clips = [joined[i * 160000:(i + 1) * 160000] for i in range(args.clips)]
        models = [("tiny test model (trained)", os.path.join(ROOT, "tests", "data", "tiny_ne_model"), utterances,
                   True)]
        if not args.skip_580m:
            models.insert(0, ("w2v-BERT 2.0 580M (random)", random_folder(os.path.join(workdir, "big"),
                                                                          Wav2Vec2BertConfig()), clips, False))
        for name, folder, wavs, score in models:
            onnx_folder = os.path.join(workdir, name[:4] + "-onnx")
            asr = load_asr(folder, os.path.join(workdir, name[:4] + "-sb"))
            start = time.perf_counter()
            export_onnx_folder(onnx_folder, asr_model(asr), asr.tokenizer)
            export_s = time.perf_counter() - start
            del asr
            sizes = {"torch-fp32": _folder_mb([os.path.join(folder, n) for n in ("encoder.ckpt", "ctc_head.ckpt")]),
                     "onnx-fp32": _folder_mb([os.path.join(onnx_folder, n) for n in ("model.onnx", "model.onnx.data")])}
            for method in methods:
                target = f"{onnx_folder}-{method}"
                shutil.copytree(onnx_folder, target)
                start = time.perf_counter()
                quantize_int8(os.path.join(target, "model.onnx"), os.path.join(target, "model.int8.onnx"), method)
                print(f"# {name}: int8 {method} in {time.perf_counter() - start:.0f} s", flush=True)
                manifest = json.load(open(os.path.join(target, "manifest.json"), encoding="utf-8"))
                manifest["models"]["int8"] = "model.int8.onnx"
                from speechbrain_w2vbert.inference.manifest import write_manifest

                write_manifest(target, "onnx", **{k: v for k, v in manifest.items()
                                                  if k not in ("format", "version", "kind", "files")})
                sizes[f"onnx-int8-{method}"] = _folder_mb([os.path.join(target, "model.int8.onnx")])
            audio = sum(len(w) for w in wavs) / 16000
            times = {label: [] for label in labels}
            texts = {label: [] for label in labels}
            sides = {}
            for label in labels:  # one at a time in memory for the 580M model
                side = onnx_side(label, folder, onnx_folder, workdir)
                convert = (lambda w: torch.from_numpy(w)) if label.startswith("torch") else (lambda w: w)
                side.transcribe_waveforms([convert(wavs[0])])  # warm-up
                sides[label] = (side, convert)
                if not score:  # the big model: one side alive at a time, its files timed together
                    for wav in wavs:
                        start = time.perf_counter()
                        texts[label].append(side.transcribe_waveforms([convert(wav)])[0].text)
                        times[label].append(time.perf_counter() - start)
                    sides.pop(label)
                    del side
            # The small model: each side transcribes all files in a block, sides in turn, twice round (load on the
            # machine hits every side). Not file by file: torch's and onnxruntime's thread pools calling in turn
            # slow each other (torch 3x on 2 cores), which no program using one of them sees.
            for round_ in range(2 if score else 0):
                for label, (side, convert) in sides.items():
                    for wav in wavs:
                        start = time.perf_counter()
                        text = side.transcribe_waveforms([convert(wav)])[0].text
                        times[label].append(time.perf_counter() - start)
                        if round_ == 0:
                            texts[label].append(text)
            sides.clear()
            paths = []
            for i, wav in enumerate(wavs[:6]):
                paths.append(os.path.join(workdir, f"wav{i}.npy"))
                np.save(paths[-1], wav)
            for label in labels:
                memory = run_worker([sys.executable, os.path.abspath(__file__), "--onnx-memory", label, "--folder",
                                     folder, "--onnx-folder", onnx_folder, "--wavs", ",".join(paths), "--threads",
                                     str(args.threads)], "cpu")
                row = {"model": name, "side": label, "rtf": sum(times[label]) / (audio * len(times[label]) / len(wavs)),
                       "median_ms": 1000 * statistics.median(times[label]), "worst_ms": 1000 * max(times[label]),
                       "process_peak_mb": memory["process_peak_mb"], "activations_mb": memory["peak_mb"],
                       "file_mb": sizes.get(label, sizes["torch-fp32"] if label == "torch-int8" else None),
                       "same_text_as_torch_fp32": sum(a == b for a, b in zip(texts[label], texts["torch-fp32"])),
                       "items": len(wavs), "export_s": export_s}
                if score:
                    counts = error_counts(texts[label], [r["wrd"] for r in test])
                    row["cer"] = 100.0 * counts["char_errors"] / counts["chars"]
                rows_out.append(row)
            print(f"# {name}: {len(wavs)} items, {audio:.0f} s of audio, one at a time, {args.threads} threads; "
                  f"ONNX export {export_s:.0f} s", flush=True)
    header = (f"{'model':<28} {'side':<20} {'RTF':>7} {'median ms':>10} {'worst ms':>9} {'peak RSS MB':>11} "
              f"{'file MB':>8} {'CER %':>6} {'same':>5} {'vs torch fp32':>13}")
    print(header)
    print("-" * len(header))
    for row in rows_out:
        base = next(r for r in rows_out if r["model"] == row["model"] and r["side"] == "torch-fp32")
        cer = f"{row['cer']:6.2f}" if "cer" in row else f"{'-':>6}"
        size = f"{row['file_mb']:8.1f}" if row["file_mb"] is not None else f"{'-':>8}"
        print(f"{row['model']:<28} {row['side']:<20} {row['rtf']:7.4f} {row['median_ms']:10.1f} {row['worst_ms']:9.1f} "
              f"{row['process_peak_mb']:11.0f} {size} {cer} {row['same_text_as_torch_fp32']:>2}/{row['items']:<2} "
              f"{base['rtf'] / row['rtf']:12.2f}x")
    for row in rows_out:
        base = next(r for r in rows_out if r["model"] == row["model"] and r["side"] == "torch-fp32")
        row["speed_up"] = base["rtf"] / row["rtf"]
    emit({"bench": "inference_onnx", "rows": rows_out}, args.json, args.threads)


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
    parser.add_argument("--onnx", action="store_true", help="PyTorch vs ONNX runtime, fp32 and int8 (see above)")
    parser.add_argument("--clips", type=int, default=3, help="--onnx: 10 s clips for the 580M model")
    parser.add_argument("--onnx-int8-methods", default="dynamic,nbits8",
                        help="--onnx: int8 methods, comma-separated (speechbrain_w2vbert.onnx.quantize.METHODS)")
    parser.add_argument("--skip-580m", action="store_true", help="--onnx: the tiny model only")
    parser.add_argument("--workdir", default=None, help="--onnx: where the models are written (default: TMPDIR)")
    parser.add_argument("--onnx-memory", help=argparse.SUPPRESS)  # worker of --onnx
    parser.add_argument("--onnx-folder", help=argparse.SUPPRESS)
    parser.add_argument("--wavs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.onnx_memory:
        return onnx_memory_worker(args)
    if args.onnx:
        return onnx_bench(args)
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
