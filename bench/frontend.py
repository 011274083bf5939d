"""Frontend benchmark: transformers' SeamlessM4TFeatureExtractor vs SeamlessFbank.

Both run in this one process on the same synthetic batches (speech-like
noise bursts, 16 kHz): the reference on the CPU as the Hugging Face recipe
uses it (a list of numpy arrays in, padded features out), SeamlessFbank on
the CPU and, when present, on CUDA (input already on the device, as in
training). Prints a table and one JSON line.

Usage::

    python bench/frontend.py [--threads 2] [--repeats 3]
"""

import argparse
import json
import platform
import time

import numpy as np
import torch
from transformers import SeamlessM4TFeatureExtractor

from speechbrain_w2vbert.features import SeamlessFbank

SAMPLE_RATE = 16000
WORKLOADS = [(16, 10.0), (64, 4.0)]  # (utterances, seconds each)


def make_batch(count, seconds, seed=0):
    """Noise bursts with a slow envelope, slightly different lengths."""
    rng = np.random.default_rng(seed)
    wavs = []
    for _ in range(count):
        length = int(seconds * SAMPLE_RATE * rng.uniform(0.9, 1.0))
        envelope = np.abs(np.sin(np.linspace(0, rng.uniform(5, 20), length)))
        wavs.append((0.2 * envelope * rng.standard_normal(length)).astype(np.float32))
    return wavs


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (best is kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    reference = SeamlessM4TFeatureExtractor()
    rows = []
    for count, seconds in WORKLOADS:
        wavs = make_batch(count, seconds)
        audio = sum(len(w) for w in wavs) / SAMPLE_RATE
        length = max(len(w) for w in wavs)
        batch = torch.zeros(count, length)
        for i, wav in enumerate(wavs):
            batch[i, : len(wav)] = torch.from_numpy(wav)
        lens = torch.tensor([len(w) / length for w in wavs])

        ref_out = reference(wavs, sampling_rate=SAMPLE_RATE, return_tensors="np")
        ref_time = best_time(lambda: reference(wavs, sampling_rate=SAMPLE_RATE, return_tensors="np"), args.repeats)
        rows.append(dict(workload=f"{count} x {seconds:g} s", impl="transformers (numpy, CPU)", seconds=ref_time,
                         audio=audio))

        targets = [("cpu", lambda: None)]
        if torch.cuda.is_available():
            targets.append(("cuda", torch.cuda.synchronize))
        for device, sync in targets:
            fbank = SeamlessFbank().to(device)
            dev_batch, dev_lens = batch.to(device), lens.to(device)
            elapsed = best_time(lambda: fbank(dev_batch, dev_lens), args.repeats, sync)
            feats, feat_lens = fbank(dev_batch, dev_lens)
            # The reference pads to a multiple of 2 frames, so it may hold one
            # (masked) frame more; every valid frame lies in both.
            frames = feats.shape[1]
            mask = ref_out["attention_mask"].astype(bool)[:, :frames]
            diff = float(np.abs(feats.cpu().numpy()[mask] - ref_out["input_features"][:, :frames][mask]).max())
            name = f"SeamlessFbank (torch, {device.upper()})"
            if device == "cuda":
                name += f" {torch.cuda.get_device_name()}"
            rows.append(dict(workload=f"{count} x {seconds:g} s", impl=name, seconds=elapsed, audio=audio,
                             ratio=ref_time / elapsed, max_abs_diff=diff))

    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} CPU threads, best of {args.repeats}")
    header = f"{'workload':<12} {'implementation':<48} {'seconds':>9} {'x real time':>12} {'ratio':>7} {'max |diff|':>11}"
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = f"{row['ratio']:.1f}x" if "ratio" in row else "1.0x"
        diff = f"{row['max_abs_diff']:.1e}" if "max_abs_diff" in row else "-"
        print(f"{row['workload']:<12} {row['impl']:<48} {row['seconds']:>9.4f} "
              f"{row['audio'] / row['seconds']:>12.0f} {ratio:>7} {diff:>11}")
    print(json.dumps({"bench": "frontend", "threads": args.threads, "rows": rows}))


if __name__ == "__main__":
    main()
