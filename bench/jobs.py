"""Batch-job benchmark: files per hour of ``w2vbert-asr transcribe --manifest
FILES.txt --output-dir DIR`` with 1 process and with 2 (``torchrun
--nproc-per-node 2``, one shard each, CPU).

The sample corpus' recordings (FLAC files written once into a temporary
folder, ``--files`` of them, cycled) are transcribed by the committed tiny
test model, or by ``--model``. Each side runs as a user runs it, in fresh
processes, alternating (1, 2, 1, 2... ``--repeats`` times) so that machine
load hits both alike; files per hour are reported end to end (the command's
wall time: start-up and model loading included) and in steady state (from
each rank's log: its first file's start to its last file's end). The load
average before and after is printed (the machine may be shared).

Usage::

    python bench/jobs.py [--files 200] [--repeats 2] [--model tests/data/tiny_ne_model]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from common import add_json_option, emit  # noqa: E402  (bench/ is on sys.path when run as a script)
from inference import sample_audio  # noqa: E402
from serve import cpu_name  # noqa: E402


def run_job(model, manifest, out, processes, batch_size):
    """(wall seconds, steady-state seconds) of one job."""
    job = ["-m", "speechbrain_w2vbert.cli", "transcribe", model, "--manifest", manifest, "--output-dir", out,
           "--batch-size", str(batch_size)]
    if processes == 1:
        command = [sys.executable, *job]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                   str(processes), *job]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    first, last = [], []
    for name in os.listdir(os.path.join(out, "logs")):
        with open(os.path.join(out, "logs", name), encoding="utf-8") as f:
            lines = [json.loads(line) for line in f]
        first.append(lines[0]["time"] - lines[0]["seconds"] * batch_size)  # the first group's start
        last.append(lines[-1]["time"])
    return wall, max(last) - min(first)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="files per job (default 200)")
    parser.add_argument("--repeats", type=int, default=2, help="jobs per side (default 2)")
    parser.add_argument("--batch-size", type=int, default=8, help="files per forward pass (default 8)")
    parser.add_argument("--model", default=os.path.join(ROOT, "tests", "data", "tiny_ne_model"))
    add_json_option(parser)
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory() as workdir:
        wavs = sample_audio(args.files)
        paths = []
        for i in range(args.files):
            path = os.path.join(workdir, "audio", f"{i:05d}.flac")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            sf.write(path, wavs[i % len(wavs)], 16000)
            paths.append(path)
        manifest = os.path.join(workdir, "files.txt")
        with open(manifest, "w", encoding="utf-8") as f:
            f.write("\n".join(paths) + "\n")
        audio_hours = sum(len(wavs[i % len(wavs)]) for i in range(args.files)) / 16000 / 3600
        print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}; {args.files} files, "
              f"{audio_hours * 3600:.0f} s of audio; model {os.path.relpath(args.model, ROOT)}; "
              f"load before {os.getloadavg()[0]:.2f}")
        results = {1: [], 2: []}
        for repeat in range(args.repeats):
            for processes in (1, 2):
                out = os.path.join(workdir, f"out-{processes}-{repeat}")
                results[processes].append(run_job(args.model, manifest, out, processes, args.batch_size))
                print(f"{processes} process(es), run {repeat + 1}: {results[processes][-1][0]:.1f} s wall, "
                      f"{results[processes][-1][1]:.1f} s steady", flush=True)
        print(f"load after {os.getloadavg()[0]:.2f}\n")
        print("| processes | files/hour end to end (median, worst) | files/hour steady state (median, worst) | "
              "vs 1 process (end to end, steady) |")
        print("| --- | --- | --- | --- |")
        rows = {}
        for processes, runs in results.items():
            wall = [args.files / w * 3600 for w, _ in runs]
            steady = [args.files / s * 3600 for _, s in runs]
            rows[processes] = {"end_to_end": (statistics.median(wall), min(wall)),
                               "steady": (statistics.median(steady), min(steady))}
        for processes, row in rows.items():
            ratios = (row["end_to_end"][0] / rows[1]["end_to_end"][0], row["steady"][0] / rows[1]["steady"][0])
            print(f"| {processes} | {row['end_to_end'][0]:.0f}, {row['end_to_end'][1]:.0f} | "
                  f"{row['steady'][0]:.0f}, {row['steady'][1]:.0f} | {ratios[0]:.2f}x, {ratios[1]:.2f}x |")
        emit({"bench": "jobs", "files": args.files, "audio_s": audio_hours * 3600, "batch_size": args.batch_size,
              "rows": [{"processes": p, "end_to_end_median": r["end_to_end"][0], "end_to_end_worst": r["end_to_end"][1],
                        "steady_median": r["steady"][0], "steady_worst": r["steady"][1],
                        "speed_up": r["end_to_end"][0] / rows[1]["end_to_end"][0]} for p, r in rows.items()]},
             args.json, torch.get_num_threads())


if __name__ == "__main__":
    main()
