"""Service benchmark: ``w2vbert-asr serve`` under 1, 8 and 32 concurrent clients.

For each model (the committed tiny test model, and the 4 x 512 bench
encoder of bench/inference.py with random weights) the service runs as a
user starts it, in a process of its own (``python -m speechbrain_w2vbert.cli
serve``), and this process plays the clients: asyncio tasks, each sending
the sample corpus' recordings (FLAC, read once into memory) one after the
other to ``POST /v1/audio/transcriptions`` and waiting for each answer
(closed loop). Each level runs for at least ``--seconds`` and
``--requests`` requests after a warm-up; the levels of one model run in one
service process, one after the other.

Reported per level: audio seconds transcribed per second of wall time
(throughput), its ratio to one client's, and the request latency (upload
to answer) median and 99th percentile. Targets: at 32 clients, throughput
>= 3x one client's and p99 <= 3x p50. After each model's levels, with the
service stopped, the model alone (the same torch Transcriber in this
process) transcribes the recordings one at a time and as many per call as
the service batched at 32 clients: the most batching can give on this
machine, beside what the service got. The clients share the machine with
the service, as they do when it serves local users; the load average before
and after each model is printed (the machine may be shared).

Usage::

    python bench/serve.py [--seconds 15] [--requests 100] [--max-batch 32] [--max-wait-ms 5]
"""

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from common import add_json_option, emit  # noqa: E402  (bench/ is on sys.path when run as a script)
from inference import random_folder, sample_audio  # noqa: E402

LEVELS = (1, 8, 32)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def start_service(folder, workdir, args):
    """The service process and its URL, once ``/ready`` answers."""
    import httpx

    log = os.path.join(workdir, f"serve-{os.path.basename(folder)}.log")
    command = [sys.executable, "-m", "speechbrain_w2vbert.cli", "serve", folder, "--port", "0", "--log-level",
               "warning", "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms),
               "--max-queue", "256", "--batch-size", str(args.batch_size), "--savedir", os.path.join(workdir, "savedir-" + os.path.basename(folder))]
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, stderr=stderr, stdin=subprocess.DEVNULL,
                                   env=dict(os.environ, PYTHONPATH=ROOT))
    deadline = time.monotonic() + 300
    url = None
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the service did not start: {open(log).read()[-2000:]}")
        if url is None:
            lines = [line for line in open(log) if " on http://" in line]
            url = lines[0].split(" on ", 1)[1].split()[0] if lines else None
        if url is not None:
            try:
                if httpx.get(url + "/ready", timeout=5).status_code == 200:
                    return process, url
            except httpx.HTTPError:
                pass
        time.sleep(0.2)


async def level(url, files, clients, seconds, requests):
    """(throughput in audio s/s, latencies in s, requests, requests per model
    call, CPUs the clients used) of ``clients`` closed-loop clients."""
    import httpx

    latencies, audio = [], [0.0]
    counter = [0]
    stop_at = [None]

    async def client(http, index):
        k = index
        while True:
            if stop_at[0] is not None and time.perf_counter() >= stop_at[0] and counter[0] >= requests:
                return
            name, data, duration = files[k % len(files)]
            k += clients
            start = time.perf_counter()
            response = await http.post(url + "/v1/audio/transcriptions", data={"model": "m"},
                                       files={"file": (name, data, "audio/flac")})
            response.raise_for_status()
            if stop_at[0] is not None:
                latencies.append(time.perf_counter() - start)
                audio[0] += duration
                counter[0] += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        warm = [client_warmup(http, url, files[i % len(files)]) for i in range(clients)]
        await asyncio.gather(*warm)
        before = (await http.get(url + "/ready")).json()
        cpu_before = time.process_time()
        started = time.perf_counter()
        stop_at[0] = started + seconds
        await asyncio.gather(*(client(http, i) for i in range(clients)))
        wall = time.perf_counter() - started
        client_cpus = (time.process_time() - cpu_before) / wall
        after = (await http.get(url + "/ready")).json()
    mean_batch = (after["transcribed"] - before["transcribed"]) / max(1, after["model_calls"] - before["model_calls"])
    return audio[0] / wall, latencies, counter[0], round(mean_batch, 1), round(client_cpus, 2)


async def client_warmup(http, url, file):
    name, data, _ = file
    (await http.post(url + "/v1/audio/transcriptions", data={"model": "m"}, files={"file": (name, data)})
     ).raise_for_status()


def model_alone(folder, wavs, batch, seconds, savedir):
    """What batching gives the model itself, without the service: audio
    seconds per second of the torch Transcriber the service runs (greedy,
    files shorter than a chunk are not segmented) on the same recordings, in
    the same order, one at a time and ``batch`` at a time; each for at least
    ``seconds``. Returns (batch 1 audio s/s, ``batch`` audio s/s)."""
    from speechbrain_w2vbert.inference.folder import load_asr
    from speechbrain_w2vbert.inference.transcriber import Transcriber

    transcriber = Transcriber(load_asr(folder, savedir), progress=False)
    transcriber.transcribe_waveforms(wavs[:batch])  # warm-up
    speeds = []
    for size in (1, batch):
        groups = [wavs[i:i + size] for i in range(0, len(wavs) - size + 1, size)]
        audio, started, k = 0.0, time.perf_counter(), 0
        while time.perf_counter() - started < seconds or k < len(groups):
            group = groups[k % len(groups)]
            transcriber.transcribe_waveforms(group)
            audio += sum(len(w) for w in group) / 16000
            k += 1
        speeds.append(audio / (time.perf_counter() - started))
    return speeds[0], speeds[1]


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per level at least (default 15)")
    parser.add_argument("--requests", type=int, default=100, help="requests per level at least (default 100)")
    parser.add_argument("--files", type=int, default=64, help="sample recordings sent in turn (default 64)")
    parser.add_argument("--max-batch", type=int, default=32, help="the service's --max-batch (default 32)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="the service's --max-wait-ms (default 10)")
    parser.add_argument("--batch-size", type=int, default=32, help="the service's --batch-size (default 32)")
    add_json_option(parser)
    args = parser.parse_args()

    import torch
    from transformers import Wav2Vec2BertConfig

    files = []
    wavs = sample_audio(args.files)
    for i, wav in enumerate(wavs):
        buffer = io.BytesIO()
        sf.write(buffer, wav, 16000, format="FLAC")
        files.append((f"sample{i}.flac", buffer.getvalue(), len(wav) / 16000))
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads; {len(files)} recordings of "
          f"{statistics.mean(f[2] for f in files):.2f} s on average; service --max-batch {args.max_batch} "
          f"--max-wait-ms {args.max_wait_ms:g}")
    rows, ceilings = [], []
    with tempfile.TemporaryDirectory() as workdir:
        bench_config = Wav2Vec2BertConfig(hidden_size=512, num_hidden_layers=4, num_attention_heads=8,
                                          intermediate_size=2048)
        models = [("tiny test model", os.path.join(ROOT, "tests", "data", "tiny_ne_model")),
                  ("4 x 512 bench encoder", random_folder(os.path.join(workdir, "b"), bench_config))]
        for name, folder in models:
            process, url = start_service(folder, workdir, args)
            try:
                load = os.getloadavg()[0]
                base = None
                for clients in LEVELS:
                    throughput, latencies, count, mean_batch, client_cpus = asyncio.run(
                        level(url, files, clients, args.seconds, args.requests))
                    base = base or throughput
                    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
                    rows.append({"model": name, "clients": clients, "requests": count,
                                 "audio_s_per_s": round(throughput, 2), "vs_1_client": round(throughput / base, 2),
                                 "p50_ms": round(p50 * 1000, 1), "p99_ms": round(p99 * 1000, 1),
                                 "p99_over_p50": round(p99 / p50, 2), "mean_batch": mean_batch,
                                 "client_cpus": client_cpus, "load_before": round(load, 2),
                                 "load_after": round(os.getloadavg()[0], 2)})
                    print(json.dumps(rows[-1]), flush=True)
            finally:
                process.terminate()
                process.wait(60)
            batch = max(1, round(rows[-1]["mean_batch"]))  # the 32-client level's requests per model call
            alone_1, alone_b = model_alone(folder, wavs, batch, args.seconds,
                                           os.path.join(workdir, "alone-" + os.path.basename(folder)))
            ceilings.append({"model": name, "batch": batch, "alone_1_audio_s_per_s": round(alone_1, 2),
                             "alone_batch_audio_s_per_s": round(alone_b, 2), "gain": round(alone_b / alone_1, 2),
                             "service_gain": rows[-1]["vs_1_client"]})
            print(json.dumps(ceilings[-1]), flush=True)
    print()
    print("| model | clients | requests | audio s/s | vs 1 client | p50 ms | p99 ms | p99/p50 | requests per model call "
          "| CPUs the clients used | load (1 min) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['model']} | {r['clients']} | {r['requests']} | {r['audio_s_per_s']} | {r['vs_1_client']}x | "
              f"{r['p50_ms']} | {r['p99_ms']} | {r['p99_over_p50']} | {r['mean_batch']} | {r['client_cpus']} | "
              f"{r['load_before']} -> {r['load_after']} |")
    for name in dict.fromkeys(r["model"] for r in rows):
        top = [r for r in rows if r["model"] == name and r["clients"] == 32][0]
        print(f"{name}: 32 clients: throughput {top['vs_1_client']}x one client's (target >= 3), "
              f"p99/p50 {top['p99_over_p50']} (target <= 3)")
    for c in ceilings:
        print(f"{c['model']}: the model alone, {c['batch']} recordings per call: {c['gain']}x its audio s/s one at a "
              f"time (the service at 32 clients: {c['service_gain']}x)")
    emit({"bench": "serve", "files": len(files), "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
          "mean_audio_s": statistics.mean(f[2] for f in files), "rows": rows, "ceilings": ceilings}, args.json,
         torch.get_num_threads())


if __name__ == "__main__":
    main()
