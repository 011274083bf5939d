"""Runs the benchmarks and writes ``docs/benchmarks.md`` (``make bench-report``).

Each bench of :data:`BENCHES` runs as its own process, as a user would run
it, with ``--json FILE`` added: the bench writes there its result and the
host it ran on (``bench/common.py``: command, date, commit, CPU and flags,
threads, library versions). This script adds how long the bench took and
how busy the machine was meanwhile (CPU time of other processes, read from
``/proc/stat``: the machine may be shared), keeps each result in
``--results`` (``results/bench-report/<name>.json``), and writes one
markdown section per result. The options of :data:`BENCHES` keep the whole
report at about half an hour on 2 CPU cores; the benches' own defaults run
longer.

A bench that fails is named in its section with its last error line (the
others still run) and the exit status is 1. ``--only NAME...`` reruns some
benches and keeps the others' last results; ``--from-results`` reruns none
and only rewrites the markdown, byte for byte the same from the same
results. Every file is written atomically (a reader never sees half of it).

Usage::

    python bench/report.py [--output docs/benchmarks.md] [--results results/bench-report]
        [--only frontend attention ...] [--from-results]
"""

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from common import ROOT, write_atomic

OUTPUT = os.path.join(ROOT, "docs", "benchmarks.md")
RESULTS = os.path.join(ROOT, "results", "bench-report")
#: Other processes' mean CPU use (cores) above which a section says the machine was busy.
BUSY_CORES = 0.2


@dataclass
class Bench:
    """One section of the report: the bench's command (from the repository
    root, without ``python``), a title (its ``##`` heading), what its rows
    compare, and the function that makes its table of a result."""

    name: str
    args: List[str]
    title: str
    about: str
    table: Callable[[dict], List[str]]


# ------------------------------------------------------------------ tables
def markdown_table(header: Sequence[str], rows: Sequence[Sequence], align: str = "") -> List[str]:
    """Lines of a markdown table; ``align`` holds ``l`` or ``r`` per column (default: first left, rest right).

    Example
    -------
    >>> print("\\n".join(markdown_table(["a", "b"], [["x", 1.5]])))
    | a | b |
    | --- | ---: |
    | x | 1.5 |
    """
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"


def frontend_table(result: dict) -> List[str]:
    names = {"reference": "transformers (numpy)"}
    lines = []
    if result.get("loop"):
        lines += [f"In the loop: {result['calls']} calls per workload, each a new shape after other work; "
                  "per-call median and worst, after one warm-up call per side (`first s`).", ""]
        lines += markdown_table(
            ["workload", "implementation", "first s", "median s", "worst s", "x real time", "speed vs transformers",
             "worst / median", "max abs diff"],
            [[r["workload"], names.get(r["impl"], r["impl"]), f"{r['first']:.4f}", f"{r['median']:.4f}",
              f"{r['worst']:.4f}", f"{r['audio'] / r['total']:.0f}", ratio(r.get("ratio", 1.0)),
              f"{r['worst_over_median']:.2f}" if "worst_over_median" in r else "-",
              f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-"] for r in result["loop"]], "llrrrrrrr")
    if result.get("back_to_back"):
        lines += ["", f"Back to back (best case): best of {result['repeats']} immediate repeats of one fixed shape.",
                  ""]
        lines += markdown_table(
            ["workload", "implementation", "best s", "x real time", "speed vs transformers", "max abs diff"],
            [[r["workload"], names.get(r["impl"], r["impl"]), f"{r['median']:.4f}", f"{r['audio'] / r['median']:.0f}",
              ratio(r.get("ratio", 1.0)), f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-"]
             for r in result["back_to_back"]], "llrrrr")
    return lines


ATTENTION_NAMES = {"eager": "transformers eager", "sdpa": "transformers sdpa",
                   "sdpa_bucketed": "ours (`sdpa_bucketed`, time-major convolution)"}


def attention_table(result: dict) -> List[str]:
    lines = [f"Encoder {result['config']}, batch {result['batch']} (one utterance padded to 80%), "
             f"{result['precision']}, device {result['device']}, best of {result['repeats']} step(s).", ""]
    rows = []
    for r in result["rows"]:
        name = ATTENTION_NAMES.get(r["impl"], r["impl"])
        if "error" in r:
            rows.append([r["frames"], name, f"failed: {r['error']}", "", "", ""])
            continue
        rows.append([f"{r['frames']} ({r['frames'] / 50:g} s)", name, f"{r['seconds']:.2f}", f"{r['peak_mb']:,.0f}",
                     ratio(r.get("time_vs_sdpa")), ratio(r.get("memory_vs_sdpa"))])
    return lines + markdown_table(["frames", "attention", "s/step", "peak MB", "time vs sdpa", "memory vs sdpa"],
                                  rows, "rlrrrr")


TRAIN_NAMES = {"hf": "HF blog", "hf_nockpt": "HF blog without checkpointing", "ours": "ours",
               "ours_ckpt": "ours with checkpointing", "ours_ckpt2": "ours, checkpointing every 2nd layer"}


def train_step_table(result: dict) -> List[str]:
    precision = result["precision"] + (f" (HF rows: {result['hf_precision']})"
                                       if result["hf_precision"] != result["precision"] else "")
    lines = [f"Encoder {result['config']}, {precision}, device {result['device']}: {result['steps']} optimiser steps "
             f"per side from an epoch of {result['pool']:,} utterances (mean {result['mean_utterance_s']:.1f} s), "
             f"{result['seconds_per_step']:g} s of audio per step on average; the first step is the epoch's largest "
             "batch. Speed and memory relative to the first row.", ""]
    rows = [[TRAIN_NAMES.get(r["impl"], r["impl"]), f"{r['utterances_per_step']:.1f}", f"{r['audio_s_per_s']:.2f}",
             f"{100 * r['padding_fraction']:.1f}%", f"{r['peak_mb']:,.0f}",
             f"{100 * r['mfu']:.1f}%" if "mfu" in r else "-", ratio(r["speed_ratio"]), ratio(r["memory_ratio"])]
            for r in result["rows"]]
    return lines + markdown_table(["recipe", "utterances/step", "audio s per s", "padding", "peak MB", "MFU", "speed",
                                   "memory"], rows, "lrrrrrrr")


AGREEMENT = {"pipeline_vs_encoderasr_one_at_a_time": "`transformers.pipeline` and `EncoderASR` one file at a time",
             "encoderasr_batched_vs_one_at_a_time": "`EncoderASR` batched and one file at a time",
             "pipeline_batched_vs_one_at_a_time": "`transformers.pipeline` batched and one file at a time"}


def inference_table(result: dict) -> List[str]:
    lines = [f"{result['files']} sample-corpus files, {result['audio_s']:.0f} s of audio; model: {result['model']}.",
             ""]
    lines += markdown_table(["mode", "implementation", "seconds", "RTF", "speed vs pipeline"],
                            [[r["mode"], f"`{r['impl']}`", f"{r['seconds']:.2f}", f"{r['rtf']:.4f}",
                              ratio(r["vs_pipeline"])] for r in result["rows"]], "llrrr")
    lines.append("")
    lines += [f"Identical transcripts, {AGREEMENT.get(name, name)}: {count}/{result['files']}."
              for name, count in result["identical"].items()]
    return lines


def int8_table(result: dict) -> List[str]:
    first = result["rows"][0]
    lines = [f"{first['files']} files ({first['audio_s']:.0f} s of audio) one at a time, fp32 and int8 alternating "
             "file by file; peak RSS: the worker process's peak, activations: its growth while transcribing.", ""]
    rows = [[r["model"], r["precision"], f"{r['rtf']:.4f}", f"{r['median_ms']:.1f}", f"{r['worst_ms']:.1f}",
             f"{r['process_peak_mb']:,.0f}", f"{r['activations_mb']:.1f}", f"{r['weights_mb']:.1f}",
             f"{r['cer']:.2f}" if "cer" in r else "-", ratio(r["speed_up"])] for r in result["rows"]]
    return lines + markdown_table(["model", "precision", "RTF", "median ms", "worst ms", "peak RSS MB",
                                   "activations MB", "weights MB", "CER %", "speed-up"], rows, "llrrrrrrrr")


def onnx_table(result: dict) -> List[str]:
    lines = ["The committed tiny test model as an `EncoderASR` folder (torch fp32, torch int8) and as its ONNX export "
             "(onnxruntime fp32, int8 by each method), the sample test speaker's utterances one at a time, each side "
             "all of them in a block, the sides in turn, twice round; peak RSS in a worker process per side. "
             "The 580M architecture's rows "
             "(`--onnx` without `--skip-580m`, several minutes) are in docs/onnx.md.", ""]
    rows = [[r["model"], r["side"], f"{r['rtf']:.4f}", f"{r['median_ms']:.1f}", f"{r['worst_ms']:.1f}",
             f"{r['process_peak_mb']:,.0f}", f"{r['file_mb']:.1f}" if r.get("file_mb") is not None else "-",
             f"{r['cer']:.2f}" if "cer" in r else "-", f"{r['same_text_as_torch_fp32']}/{r['items']}",
             ratio(r["speed_up"])] for r in result["rows"]]
    return lines + markdown_table(["model", "side", "RTF", "median ms", "worst ms", "peak RSS MB", "file MB", "CER %",
                                   "same text as torch fp32", "speed vs torch fp32"], rows, "llrrrrrrrr")


def serve_table(result: dict) -> List[str]:
    lines = [f"`w2vbert-asr serve --max-batch {result['max_batch']} --max-wait-ms {result['max_wait_ms']:g}` in its "
             f"own process; closed-loop clients (asyncio tasks in the bench's process, on the same machine) sending "
             f"{result['files']} sample recordings of {result['mean_audio_s']:.1f} s on average. Throughput: audio "
             "seconds transcribed per second; latency: upload to answer.", ""]
    rows = [[r["model"], r["clients"], r["requests"], f"{r['audio_s_per_s']:.2f}", ratio(r["vs_1_client"]),
             f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}", f"{r['p99_over_p50']:.2f}", f"{r['mean_batch']:.1f}",
             f"{r['client_cpus']:.2f}" if "client_cpus" in r else "-"]
            for r in result["rows"]]
    lines += markdown_table(["model", "clients", "requests", "audio s/s", "vs 1 client", "p50 ms", "p99 ms",
                             "p99/p50", "requests per model call", "CPUs the clients used"], rows, "lrrrrrrrrr")
    if result.get("ceilings"):
        lines += ["", "What batching gives the model itself on this machine (the same transcriber in the bench's "
                      "process, the service stopped), beside what the service got at 32 clients:", ""]
        lines += markdown_table(
            ["model", "recordings per call", "alone: audio s/s one at a time", "alone: audio s/s batched",
             "alone: batched vs one", "service: 32 clients vs 1"],
            [[c["model"], c["batch"], f"{c['alone_1_audio_s_per_s']:.2f}", f"{c['alone_batch_audio_s_per_s']:.2f}",
              ratio(c["gain"]), ratio(c["service_gain"])] for c in result["ceilings"]], "lrrrrr")
    return lines


def jobs_table(result: dict) -> List[str]:
    lines = [f"`w2vbert-asr transcribe --manifest --output-dir` on {result['files']} files "
             f"({result['audio_s']:.0f} s of audio), one process against two (`torchrun`-style ranks, one thread "
             "each); end to end includes starting the processes and loading the model.", ""]
    rows = [[r["processes"], f"{r['end_to_end_median']:,.0f}", f"{r['end_to_end_worst']:,.0f}",
             f"{r['steady_median']:,.0f}", f"{r['steady_worst']:,.0f}", ratio(r["speed_up"])] for r in result["rows"]]
    return lines + markdown_table(["processes", "files/hour end to end", "worst", "files/hour steady", "worst",
                                   "vs 1 process"], rows, "rrrrrr")


def checkpoint_table(result: dict) -> List[str]:
    lines = [f"A {result['params'] / 1e6:.0f}M-parameter model with its AdamW state ({result['bytes'] / 1e9:.2f} GB "
             f"written, {result['estimated_bytes'] / 1e9:.2f} GB estimated before training), saved and recovered "
             f"{result['repeats']} times per side, alternating, on the temporary folder's disk.", ""]
    rows = [[r["side"], f"{r['save_median']:.2f}", f"{r['save_worst']:.2f}", f"{r['load_median']:.2f}",
             f"{r['load_worst']:.2f}", ratio(r["save_vs_speechbrain"])] for r in result["rows"]]
    return lines + markdown_table(["side", "save s median", "worst", "recover s median", "worst",
                                   "save vs SpeechBrain"], rows, "lrrrrr")


def decode_table(result: dict) -> List[str]:
    lines = [f"{result['utterances']} test utterances of the sample corpus ({result['audio_seconds']:.1f} s) under "
             f"`{result['model']}`; {result['order']}-gram LM of the sample train transcripts ({result['estimator']}), "
             f"weight {result['lm_weight']:g}, word bonus {result['word_bonus']:g}; each utterance decoded by every "
             "method in turn. RTF: decoding time per second of audio.", ""]
    n = result["utterances"]
    rows = [[r["beam"], r["method"], f"{r['ms_median']:.1f}", f"{r['ms_worst']:.1f}", f"{r['rtf']:.4f}",
             f"{r['WER']:.1f}", f"{r['CER']:.1f}", f"{r['same_as_speechbrain_lm']}/{n}"] for r in result["rows"]]
    return lines + markdown_table(["beam", "method", "ms/utterance median", "worst", "RTF", "WER %", "CER %",
                                   "same text as SpeechBrain + LM"], rows, "rlrrrrrr")


def prepare_table(result: dict) -> List[str]:
    lines = [f"A synthetic extracted corpus of {result['n']:,} FLACs of {result['seconds_per_file']:g} s, in the page "
             f"cache (warm: the CPU cost of the pass, not the disk's); {result['workers']} worker processes.", ""]
    seconds = result.get("seconds", {})
    rows = [[step, f"{seconds[step]:.2f}" if step in seconds else "-", f"{rate:,}"]
            for step, rate in result["utt_per_s"].items()]
    return lines + markdown_table(["step", "seconds", "utterances/s"], rows)


#: The report's benches, in order, with options that keep it near half an hour on 2 cores.
BENCHES = [
    Bench("frontend", ["bench/frontend.py", "--mode", "both"], "Frontend",
          "transformers' `SeamlessM4TFeatureExtractor` (numpy) against `SeamlessFbank` on the same waveforms, "
          "in one process: the recipe's training batches and single CLI files as the programs call them, and "
          "back to back on two fixed shapes.", frontend_table),
    Bench("attention", ["bench/attention.py", "--repeats", "2"], "Attention",
          "Encoder forward + backward with transformers' `eager` and `sdpa` attention (both build the "
          "(L, L, 64) relative-position tensor) and with ours, each cell in its own process. Our row also runs "
          "the time-major convolution modules (`W2VBert`'s defaults); transformers' rows run its own.",
          attention_table),
    Bench("train_step", ["bench/train_step.py", "--steps", "10"], "Training step",
          "A training step of the Hugging Face blog recipe (features precomputed, `Wav2Vec2BertForCTC` with sdpa "
          "and gradient checkpointing, fixed batch size with `group_by_length`) against ours (features on the fly, "
          "dynamic batches by seconds), on the same synthetic epoch, each side in its own process. 10 steps per "
          "side (the bench's default is 30): the epoch's largest batch weighs more in the mean.", train_step_table),
    Bench("inference", ["bench/inference.py"], "Inference",
          "SpeechBrain `EncoderASR` against `transformers.pipeline` on the same weights (a random tiny model: speed "
          "does not depend on the weights), one file at a time and in batches, alternating.", inference_table),
    Bench("int8", ["bench/inference.py", "--int8"], "Int8 inference",
          "fp32 against int8 dynamic quantisation of the encoder's linear layers (`w2vbert-asr --int8`) on the "
          "4 x 512 bench encoder (random weights) and the committed tiny test model (its CER on the sample test "
          "speaker). fbgemm's int8 kernels use VNNI where the CPU has it (see the host line).", int8_table),
    Bench("onnx", ["bench/inference.py", "--onnx", "--skip-580m"], "ONNX runtime",
          "PyTorch against the ONNX export run by onnxruntime without torch (`w2vbert-asr transcribe --backend "
          "onnx`), fp32 and int8.", onnx_table),
    Bench("decode", ["bench/decode.py"], "Decoding",
          "Greedy, SpeechBrain's `CTCBeamSearcher` without and with the word n-gram LM, and pyctcdecode with the "
          "same LM, on log-probabilities computed once; one thread.", decode_table),
    Bench("serve", ["bench/serve.py", "--seconds", "10", "--requests", "60"], "Service",
          "The HTTP service under 1, 8 and 32 concurrent clients, with the committed tiny test model and the "
          "4 x 512 bench encoder (random weights).", serve_table),
    Bench("jobs", ["bench/jobs.py", "--files", "100"], "Batch jobs",
          "A resumable batch job over a manifest with the committed tiny test model.", jobs_table),
    Bench("checkpoint_save", ["bench/checkpoint_save.py", "--repeats", "3"], "Checkpoints",
          "Atomic checkpoints (`AtomicCheckpointer`: a hidden folder, fsync, the meta file last, a rename) against "
          "SpeechBrain's `Checkpointer`.", checkpoint_table),
    Bench("prepare", ["bench/prepare.py", "--n", "10000"], "Data preparation",
          "The OpenSLR 54 metadata pass (`openslr54_prepare.py`) on a synthetic extracted corpus: listing the files, "
          "reading each file's header in one process, a thread pool and a process pool, and the whole preparation "
          "(10,000 files; the bench's default is 20,000).", prepare_table),
]


# ------------------------------------------------------------- host lines
def flag_summary(flags: Sequence[str]) -> str:
    """The CPU features that change the figures, each with yes or no."""
    have = set(flags)
    vnni = [name for flag, name in (("avx512_vnni", "AVX-512"), ("avx_vnni", "AVX")) if flag in have]
    amx = [flag[4:] for flag in ("amx_tile", "amx_bf16", "amx_int8") if flag in have]
    parts = [f"AVX2 {'yes' if 'avx2' in have else 'no'}", f"AVX-512 {'yes' if 'avx512f' in have else 'no'}",
             f"VNNI {'yes (' + ', '.join(vnni) + ')' if vnni else 'no'}",
             f"AMX {'yes (' + ', '.join(amx) + ')' if amx else 'no'}"]
    return " · ".join(parts)


def minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def busy(result: dict) -> bool:
    return result.get("run", {}).get("other_cores", 0.0) > BUSY_CORES


def host_lines(result: dict) -> List[str]:
    """The bullet list that says how, when and where a result was measured."""
    host, run = result["host"], result.get("run", {})
    when = f"{host['date'].replace('T', ' ').replace('+00:00', ' UTC')}, commit `{host['commit']}`"
    if run:
        when += (f", {minutes(run['wall_s'])}; other processes used {run['other_cores']:.2f} of the "
                 f"{host['cpus']} CPUs on average, steal {100 * run['steal']:.1f}%")
    cpu = f"{host['cpu']['model']}, {host['cpus']} CPUs; {flag_summary(host['cpu']['flags'])}"
    if host.get("torch_cpu_capability"):
        cpu += f" (torch kernels: {host['torch_cpu_capability']})"
    if host.get("gpu"):
        cpu += f"; GPU {host['gpu']}"
    unit = "worker process" if result.get("bench") == "prepare" else "torch thread"
    unit += "" if host["threads"] == 1 else "es" if unit.endswith("process") else "s"
    versions = host["versions"]
    libraries = ", ".join(f"{name} {versions[name]}" for name in versions)
    if "onnxruntime" not in versions:
        libraries += ", onnxruntime not installed"
    lines = [f"- Command: `{host['command']}`", f"- Run: {when}", f"- Host: {cpu}; {host['threads']} {unit}",
             f"- Libraries: {libraries}"]
    if busy(result):
        lines.append(f"- **The machine was busy**: other processes took {run['other_cores']:.2f} CPUs on average "
                     "during this bench, so its times are slower, and its ratios noisier, than on a quiet machine.")
    return lines


def section(bench: Bench, result: Optional[dict]) -> List[str]:
    lines = [f"## {bench.title}", "", bench.about, ""]
    command = "python " + " ".join(bench.args)
    if result is None:
        return lines + [f"Not run yet: `python bench/report.py --only {bench.name}` runs `{command}`.", ""]
    if "error" in result:
        return lines + [f"`{command}` failed ({result['date']}): {result['error']}", ""]
    return lines + host_lines(result) + [""] + bench.table(result) + [""]


def total_wall(results: Sequence[dict]) -> float:
    """Seconds the benches of ``results`` took, as recorded."""
    return sum(r.get("run", {}).get("wall_s", 0.0) for r in results)


def render(results: Dict[str, Optional[dict]]) -> str:
    """The whole markdown document of the results (None: not run)."""
    done = [r for r in results.values() if r and "host" in r]
    lines = ["# Benchmarks", "",
             "<!-- Generated by `make bench-report` (bench/report.py) from the benches' JSON results: do not edit; "
             "rerun it. -->", "",
             "Every figure here comes from one of the `bench/` scripts, which run the baseline and ours side by side "
             "in one run, on the same data. Each section names its command, when and at which commit it ran, the "
             "machine (CPU, the vector and matrix units that change the figures, threads) and the library versions; "
             f"`make bench-report` runs them all again (here {minutes(total_wall(done))} in all) and rewrites this "
             "file. Ratios compare rows of the same run; compare absolute times only between runs on the same host. "
             "The design behind the figures is in [design.md](design.md).", ""]
    busy_ones = [bench.title for bench in BENCHES if results.get(bench.name) and busy(results[bench.name])]
    if busy_ones:
        lines += [f"**Measured on a busy machine**: other processes used more than {BUSY_CORES:g} CPUs on average "
                  f"during {', '.join(busy_ones)} (figures in each section); those times are pessimistic.", ""]
    elif done:
        lines += [f"The machine was quiet during every bench: other processes used at most "
                  f"{max(r.get('run', {}).get('other_cores', 0.0) for r in done):.2f} CPUs on average.", ""]
    for bench in BENCHES:
        lines.append(f"- [{bench.title}](#{bench.title.lower().replace(' ', '-')})")
    lines.append("")
    for bench in BENCHES:
        lines += section(bench, results.get(bench.name))
    return "\n".join(lines).rstrip("\n") + "\n"


# ------------------------------------------------------------------ running
def cpu_times() -> List[int]:
    """The first line of ``/proc/stat``: jiffies of all CPUs by state."""
    with open("/proc/stat", encoding="utf-8") as f:
        return [int(v) for v in f.readline().split()[1:]]


def other_load(before: Sequence[int], after: Sequence[int], own_cpu_s: float, wall_s: float) -> dict:
    """Mean CPUs used by processes other than the bench's over a run, and
    the fraction of CPU time the hypervisor took (steal), from two readings
    of :func:`cpu_times` and the bench's own CPU seconds.

    Example
    -------
    >>> hz = os.sysconf("SC_CLK_TCK")
    >>> before, after = [0] * 8, [10 * hz, 0, 2 * hz, 7 * hz, 0, 0, 0, 1 * hz]
    >>> other_load(before, after, own_cpu_s=8.0, wall_s=10.0)
    {'other_cores': 0.4, 'steal': 0.05}
    """
    hz = os.sysconf("SC_CLK_TCK")
    delta = [b - a for a, b in zip(before, after)]
    total = sum(delta[:8]) or 1  # user nice system idle iowait irq softirq steal (guest is inside user)
    busy_s = (delta[0] + delta[1] + delta[2] + delta[5] + delta[6]) / hz
    return {"other_cores": round(max(0.0, busy_s - own_cpu_s) / max(wall_s, 1e-9), 3),
            "steal": round(delta[7] / total, 4)}


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_bench(bench: Bench, results_dir: str) -> dict:
    """Runs one bench (its output goes to this terminal); returns its result
    with ``run`` (wall time, other processes' load), or ``error``."""
    path = os.path.join(results_dir, bench.name + ".json")
    command = [sys.executable, *bench.args, "--json", path]
    print(f"\n=== {bench.name}: python {' '.join(bench.args)}", flush=True)
    if os.path.exists(path):
        os.remove(path)
    before, own, start = cpu_times(), children_cpu_s(), time.monotonic()
    last = collections.deque(maxlen=1)  # the last non-empty line of stderr, which is also shown as it comes
    with subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True, errors="replace") as process:
        for line in process.stderr:
            sys.stderr.write(line)
            if line.strip():
                last.append(line.strip())
    wall = time.monotonic() - start
    load = other_load(before, cpu_times(), children_cpu_s() - own, wall)
    if process.returncode != 0 or not os.path.exists(path):
        error = last[0] if last else f"exit status {process.returncode}"
        result = {"error": error, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    else:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
        result["run"] = {"wall_s": round(wall, 1), **load}
    write_atomic(path, json.dumps(result) + "\n")
    return result


def load_results(results_dir: str) -> Dict[str, Optional[dict]]:
    results = {}
    for bench in BENCHES:
        path = os.path.join(results_dir, bench.name + ".json")
        results[bench.name] = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                results[bench.name] = json.load(f)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=OUTPUT, help="the markdown file (default docs/benchmarks.md)")
    parser.add_argument("--results", default=RESULTS, help="folder of the benches' JSON results")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES], help="run only these benches")
    parser.add_argument("--from-results", action="store_true", help="run nothing: rewrite the markdown only")
    args = parser.parse_args(argv)
    failed = []
    if not args.from_results:
        for bench in BENCHES:
            if args.only is None or bench.name in args.only:
                if "error" in run_bench(bench, args.results):
                    failed.append(bench.name)
    write_atomic(args.output, render(load_results(args.results)))
    print(f"\nwrote {os.path.relpath(args.output)}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
