#!/usr/bin/env python3
"""Benchmark the OpenSLR 54 metadata pass (target: >= 2,000 utterances/s).

Generates a synthetic *extracted* corpus in a temporary folder
(``asr_nepali/utt_spk_text.tsv`` + ``asr_nepali/data/<id[:2]>/<id>.flac``,
N small 16 kHz mono FLACs, 1.2 s by default), then times:

- ``scan``: listing the audio files (``scan_audio``);
- ``info serial`` / ``info thread`` / ``info process``: ``read_audio_info``
  (header + last-frame check per file) in this process, in a thread pool and
  in a process pool;
- ``prepare``: the whole ``prepare_openslr54`` (TSV, text, metadata with the
  default process pool, filters, split, CSV writing).

The files were just written, so they are in the page cache: these are
warm-cache figures (the CPU cost of the pass, not the disk's).
Prints a table and, last, one JSON line.

Usage::

    python bench/prepare.py [--n 20000] [--seconds 1.2] [--workers 2]
"""

import argparse
import io
import logging
import os
import random
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
from common import add_json_option, emit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "recipes", "OpenSLR54")]

import speechbrain_w2vbert.models.ctc  # noqa: E402,F401  loaded before timing, as train.py has it (the CTC filter uses it)
from openslr54_prepare import (  # noqa: E402
    prepare_openslr54,
    read_audio_info,
    scan_audio,
)

WORDS = ["राम", "घर", "जान्छ", "आज", "बजार", "भात", "खान्छ", "पानी"]


def make_corpus(folder: str, n: int, seconds: float = 1.2, seed: int = 0) -> str:
    """Write ``n`` FLACs of ``seconds`` and their TSV under ``folder/asr_nepali``.

    64 distinct tones (with a little noise) are encoded once and their bytes
    reused, which keeps generation fast.
    """
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    root = os.path.join(folder, "asr_nepali")
    t = np.arange(int(seconds * 16000)) / 16000.0
    payloads = []
    for _ in range(64):
        wave = 3000 * np.sin(2 * np.pi * rng.uniform(100, 400) * t)
        wave += noise.normal(0, 30, t.shape)
        buf = io.BytesIO()
        sf.write(buf, wave.astype(np.int16), 16000, format="FLAC", subtype="PCM_16")
        payloads.append(buf.getvalue())
    lines = []
    for i in range(n):
        uid = f"{rng.getrandbits(40):010x}"
        path = os.path.join(root, "data", uid[:2], uid + ".flac")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(payloads[i % len(payloads)])
        lines.append(f"{uid}\t{i % 500:05x}\t{' '.join(rng.sample(WORDS, 3))}\n")
    with open(os.path.join(root, "utt_spk_text.tsv"), "w", encoding="utf-8") as f:
        f.writelines(lines)
    return root


def timed(fn, *args, **kwargs):
    """Return ``(seconds, result)`` of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="number of utterances")
    parser.add_argument("--seconds", type=float, default=1.2, help="duration of each file")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="pool size")
    add_json_option(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        gen_s, root = timed(make_corpus, tmp, args.n, args.seconds)
        scan_s, audio = timed(scan_audio, root)
        paths = [entry.path for entry in audio.values()]
        rows = [("scan", scan_s)]
        for kind in ("serial", "thread", "process"):
            workers = 1 if kind == "serial" else args.workers
            executor = "thread" if kind == "thread" else "process"
            seconds, infos = timed(read_audio_info, paths, workers, executor)
            assert all(info.reason is None for info in infos), "synthetic files must all be valid"
            rows.append((f"info {kind}", seconds))
        prep_s, report = timed(
            prepare_openslr54, tmp, os.path.join(tmp, "prep"), num_workers=args.workers
        )
        rows.append(("prepare", prep_s))
    print(f"synthetic corpus: {args.n} FLACs of {args.seconds} s, generated in {gen_s:.1f} s; "
          f"{args.workers} workers on {os.cpu_count()} CPUs")
    print(f"{'step':<14}{'seconds':>9}{'utt/s':>10}")
    for name, seconds in rows:
        print(f"{name:<14}{seconds:>9.2f}{args.n / seconds:>10.0f}")
    result = {
        "bench": "prepare",
        "n": args.n,
        "seconds_per_file": args.seconds,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "utt_per_s": {name: round(args.n / s) for name, s in rows},
        "seconds": {name: round(s, 3) for name, s in rows},
        "kept": report["kept"]["utterances"],
        "target_utt_per_s": 2000,
    }
    emit(result, args.json, args.workers)


if __name__ == "__main__":
    main()
