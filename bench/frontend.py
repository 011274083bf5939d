"""Frontend benchmark: transformers' SeamlessM4TFeatureExtractor vs SeamlessFbank.

Both run in this one process, call for call on the same waveforms, in one of
two modes:

- ``loop`` (the default figure): as the programs call them. Each call gets a
  new shape and follows unrelated work that churns memory (a few hundred MB
  allocated, written and freed, and a matrix product), as a training step or
  the CLI's decoding does between two frontend calls, after one warm-up call
  per side (one-time set-up: MKL, FFT plans; its time is the "first s"
  column). Two workloads: the
  batches the recipe's dynamic batcher makes (``hparams/w2vbert_ctc.yaml``'s
  ``max_batch_length``, ``num_buckets`` and ``max_batch_ex``) from the
  OpenSLR 54-like duration mix of ``bench/train_step.py``, and
  batch-1 files of 2-15 s as ``w2vbert-asr transcribe`` sends them. Reported:
  the median and the worst call of each side, and the ratio of the medians.
- ``back-to-back``: the best of ``--repeats`` immediate repeats of one call
  on one fixed shape (16 x 10 s and 64 x 4 s), after a warm-up: the best case.

The reference is timed as the Hugging Face recipe calls it (a list of numpy
arrays in, padded features out), SeamlessFbank as the recipe does (a padded
batch tensor with relative lengths, on the CPU and, when present, on CUDA
with the input already on the device). Every call's valid frames are
compared; the table gives the largest absolute difference. Prints a table
and one JSON line.

Usage::

    python bench/frontend.py [--mode loop|back-to-back|both] [--threads 2] [--calls 40]
"""

import argparse
import os
import platform
import re
import statistics
import time

import numpy as np
import torch
from common import add_json_option, durations, emit  # durations: the training bench's OpenSLR 54-like mix
from transformers import SeamlessM4TFeatureExtractor

from speechbrain_w2vbert.models.features import SeamlessFbank

SAMPLE_RATE = 16000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE_HPARAMS = os.path.join(ROOT, "hparams", "w2vbert_ctc.yaml")
BACK_TO_BACK = [(16, 10.0), (64, 4.0)]  # (utterances, seconds each)


def make_wav(seconds, seed):
    """Noise bursts with a slow envelope and a little silence at both ends."""
    rng = np.random.default_rng(seed)
    length = int(seconds * SAMPLE_RATE)
    envelope = np.abs(np.sin(np.linspace(0, rng.uniform(5, 20), length)))
    wav = (0.2 * envelope * rng.standard_normal(length)).astype(np.float32)
    edge = min(length // 10, 1600)
    wav[:edge] = 0.0
    wav[length - edge :] = 0.0
    return wav


def recipe_batching():
    """The training batcher's settings in the GPU recipe's hparams file."""
    with open(RECIPE_HPARAMS, encoding="utf-8") as f:
        text = f.read()
    return {key: float(re.search(rf"^{key}: ([0-9.]+)", text, re.M).group(1))
            for key in ("max_batch_length", "num_buckets", "max_batch_ex")}


def recipe_batches(calls, seed):
    """``calls`` batches (lists of durations) drawn from one epoch of the
    recipe's DynamicBatchSampler over 20,000 utterances, its largest first."""
    from speechbrain.dataio.dataset import DynamicItemDataset
    from speechbrain.dataio.sampler import DynamicBatchSampler

    lengths = durations(20000, seed)
    settings = recipe_batching()
    dataset = DynamicItemDataset({str(i): {"duration": float(d)} for i, d in enumerate(lengths)})
    sampler = DynamicBatchSampler(
        dataset, max_batch_length=settings["max_batch_length"], num_buckets=int(settings["num_buckets"]),
        max_batch_ex=int(settings["max_batch_ex"]), length_func=lambda x: x["duration"], shuffle=True,
        batch_ordering="random", seed=seed,
    )
    batches = [[float(lengths[int(i)]) for i in batch] for batch in sampler]
    largest = max(range(len(batches)), key=lambda i: len(batches[i]) * max(batches[i]))
    rng = np.random.default_rng(seed)
    others = rng.choice([i for i in range(len(batches)) if i != largest], size=calls - 1, replace=False)
    return [batches[largest]] + [batches[i] for i in others]


def cli_files(calls, seed):
    """Batch-1 'files' of 2-15 s."""
    rng = np.random.default_rng(seed + 1)
    return [[float(rng.uniform(2.0, 15.0))] for _ in range(calls)]


def pad(wavs):
    """([B, T] float32 tensor, relative lengths [B]) as SpeechBrain's collate makes them."""
    length = max(len(w) for w in wavs)
    batch = torch.zeros(len(wavs), length)
    for i, wav in enumerate(wavs):
        batch[i, : len(wav)] = torch.from_numpy(wav)
    return batch, torch.tensor([len(w) / length for w in wavs])


def other_work(rng):
    """Work between two frontend calls: a few hundred MB allocated, written
    and freed (allocator and caches in another state), and a matrix product."""
    blocks = [torch.empty(int(rng.integers(4, 64)) * 2**20 // 4).fill_(1.0) for _ in range(4)]
    a = torch.randn(768, 768)
    (a @ a).sum().item()
    del blocks


def max_diff(feats, feat_lens, reference_out):
    """Largest |ours - reference| over every valid frame of a batch."""
    frames = feats.shape[1]
    valid = torch.round(feat_lens * frames).long().cpu().numpy()
    ref = reference_out["input_features"]
    ours = feats.cpu().numpy()
    return max(float(np.abs(ours[i, :n] - ref[i, :n]).max()) for i, n in enumerate(valid))


def loop_rows(reference, targets, workloads, seed):
    """Per-call times of every side on every workload (see the module docstring)."""
    rows = []
    rng = np.random.default_rng(seed)
    for name, batches in workloads:
        times = {label: [] for label, *_ in targets}
        times["reference"] = []
        diffs = {label: 0.0 for label, *_ in targets}
        audio = 0.0
        first = {}
        for call, seconds in enumerate([batches[0]] + batches):  # call 0: the warm-up, not counted
            wavs = [make_wav(s, seed * 100003 + call * 131 + i) for i, s in enumerate(seconds)]
            batch, lens = pad(wavs)
            other_work(rng)
            start = time.perf_counter()
            ref_out = reference(wavs, sampling_rate=SAMPLE_RATE, return_tensors="np")
            elapsed = {"reference": time.perf_counter() - start}
            for label, fbank, device, sync in targets:
                other_work(rng)
                start = time.perf_counter()
                feats, feat_lens = fbank(batch.to(device), lens.to(device))
                sync()
                elapsed[label] = time.perf_counter() - start
                diffs[label] = max(diffs[label], max_diff(feats, feat_lens, ref_out))
            if call == 0:
                first = elapsed
                continue
            audio += sum(len(w) for w in wavs) / SAMPLE_RATE
            for label, value in elapsed.items():
                times[label].append(value)
        for label in ["reference", *(t[0] for t in targets)]:
            calls = times[label]
            median = statistics.median(calls)
            row = dict(workload=name, impl=label, calls=len(calls), audio=audio, median=median, worst=max(calls),
                       total=sum(calls), first=first[label])
            if label != "reference":
                ref_median = statistics.median(times["reference"])
                row.update(ratio=ref_median / median, worst_over_median=max(calls) / median,
                           max_abs_diff=diffs[label])
            rows.append(row)
    return rows


def best_time(fn, repeats, sync=lambda: None):
    """Best wall time of ``repeats`` runs after one warm-up."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def back_to_back_rows(reference, targets, repeats):
    rows = []
    for count, seconds in BACK_TO_BACK:
        rng = np.random.default_rng(0)
        wavs = [make_wav(seconds * rng.uniform(0.9, 1.0), i) for i in range(count)]
        audio = sum(len(w) for w in wavs) / SAMPLE_RATE
        batch, lens = pad(wavs)
        ref_out = reference(wavs, sampling_rate=SAMPLE_RATE, return_tensors="np")
        ref_time = best_time(lambda: reference(wavs, sampling_rate=SAMPLE_RATE, return_tensors="np"), repeats)
        name = f"{count} x {seconds:g} s"
        rows.append(dict(workload=name, impl="reference", audio=audio, median=ref_time))
        for label, fbank, device, sync in targets:
            dev_batch, dev_lens = batch.to(device), lens.to(device)
            elapsed = best_time(lambda: fbank(dev_batch, dev_lens), repeats, sync)
            feats, feat_lens = fbank(dev_batch, dev_lens)
            rows.append(dict(workload=name, impl=label, audio=audio, median=elapsed, ratio=ref_time / elapsed,
                             max_abs_diff=max_diff(feats, feat_lens, ref_out)))
    return rows


def print_table(title, rows, per_call):
    print(title)
    names = {"reference": "transformers (numpy, CPU)"}
    if per_call:
        header = (f"{'workload':<34} {'implementation':<36} {'calls':>5} {'first s':>8} {'median s':>9} {'worst s':>9} "
                  f"{'x real time':>11} {'ratio':>7} {'worst/med':>9} {'max |diff|':>10}")
    else:
        header = f"{'workload':<34} {'implementation':<36} {'best s':>9} {'x real time':>11} {'ratio':>7} {'max |diff|':>10}"
    print(header)
    print("-" * len(header))
    for row in rows:
        impl = names.get(row["impl"], row["impl"])
        ratio = f"{row['ratio']:.1f}x" if "ratio" in row else "1.0x"
        diff = f"{row['max_abs_diff']:.1e}" if "max_abs_diff" in row else "-"
        if per_call:
            realtime = row["audio"] / row["total"]
            spread = f"{row['worst_over_median']:.2f}" if "worst_over_median" in row else "-"
            print(f"{row['workload']:<34} {impl:<36} {row['calls']:>5} {row['first']:>8.4f} {row['median']:>9.4f} {row['worst']:>9.4f} "
                  f"{realtime:>11.0f} {ratio:>7} {spread:>9} {diff:>10}")
        else:
            print(f"{row['workload']:<34} {impl:<36} {row['median']:>9.4f} {row['audio'] / row['median']:>11.0f} "
                  f"{ratio:>7} {diff:>10}")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("loop", "back-to-back", "both"), default="loop")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--calls", type=int, default=40, help="calls per loop workload")
    parser.add_argument("--repeats", type=int, default=3, help="back-to-back: timed repeats per cell (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tile-frames", type=int, help="SeamlessFbank's tile_frames (default: its own)")
    parser.add_argument("--fp32-spectra", action="store_true", help="also time spectral_dtype=float32 (inexact)")
    add_json_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    reference = SeamlessM4TFeatureExtractor()
    options = {} if args.tile_frames is None else {"tile_frames": args.tile_frames}
    targets = [("SeamlessFbank (torch, CPU)", SeamlessFbank(**options), "cpu", lambda: None)]
    if args.fp32_spectra:
        targets.append(("SeamlessFbank, fp32 spectra (CPU)", SeamlessFbank(spectral_dtype=torch.float32, **options),
                        "cpu", lambda: None))
    if torch.cuda.is_available():
        name = f"SeamlessFbank (torch, CUDA {torch.cuda.get_device_name()})"
        targets.append((name, SeamlessFbank().to("cuda"), "cuda", torch.cuda.synchronize))
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} CPU threads"
    result = {"bench": "frontend", "threads": args.threads, "calls": args.calls, "repeats": args.repeats}
    if args.mode in ("loop", "both"):
        settings = recipe_batching()
        workloads = [
            (f"recipe batches (<= {settings['max_batch_length']:g} s)", recipe_batches(args.calls, args.seed)),
            ("CLI files (1 x 2-15 s)", cli_files(args.calls, args.seed)),
        ]
        rows = loop_rows(reference, targets, workloads, args.seed)
        print_table(f"# in the loop: {machine}; each call a new shape after other work; per-call median and worst",
                    rows, per_call=True)
        result["loop"] = rows
    if args.mode in ("back-to-back", "both"):
        rows = back_to_back_rows(reference, targets, args.repeats)
        print_table(f"# back to back (best case): {machine}; best of {args.repeats} immediate repeats", rows,
                    per_call=False)
        result["back_to_back"] = rows
    emit(result, args.json, args.threads)


if __name__ == "__main__":
    main()
