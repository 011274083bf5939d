"""Helpers shared by the benchmark scripts (run as ``python bench/<name>.py``).

CPU peak memory is measured as the growth of the process's peak resident set
(``VmHWM``) over its resident set at the start of the measured steps, with
the peak reset there (``/proc/self/clear_refs``). glibc would otherwise keep
freed blocks of an earlier step resident and hide the peak of later ones, so
each CPU worker runs twice: once as it is, for the times, and once with
``MALLOC_MMAP_THRESHOLD_`` fixed, for the peak: there every block of 64 KiB or
more is mapped on allocation and returned to the system when freed, so the
resident set follows the live tensors (at the price of page faults, which is
why that run's times are not used).

Every bench also states where it ran: :func:`emit` prints its JSON line with
a ``host`` record (command, date, commit, CPU and the flags that matter,
threads, library versions) and, with ``--json FILE`` (:func:`add_json_option`),
writes the same to FILE, which ``bench/report.py`` turns into
``docs/benchmarks.md``.
"""

import datetime
import json
import os
import shlex
import subprocess
import sys
from importlib import metadata

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: /proc/cpuinfo flags that change what the benches measure: vector widths,
#: the int8 dot-product units fbgemm uses (VNNI), bf16/int8 matrix units (AMX).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
             "amx_int8")
#: Distributions whose versions a result carries (those installed).
LIBRARIES = ("torch", "torchaudio", "transformers", "speechbrain", "numpy", "onnxruntime", "ufal.kenlm",
             "pyctcdecode", "silero-vad", "soundfile")


def durations(count, seed):
    """OpenSLR 54-like utterance durations in seconds (the training and
    frontend benches' mix): log-normal around 4 s, clipped to 1-15 s."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(np.log(3.6), 0.45, count), 1.0, 15.0)


def rss_mb(field: str) -> float:
    """A memory field of /proc/self/status in MB: ``VmRSS`` (now) or ``VmHWM`` (peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> float:
    """Resets ``VmHWM`` to the current resident set; returns that set in MB."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # 5: reset the peak resident set size
    return rss_mb("VmRSS")


def run_worker(command: list, device: str) -> dict:
    """Runs a worker process that prints one JSON line with ``peak_mb``; on a
    CPU, a second run measures ``peak_mb`` (see the module docstring).
    Raises ``RuntimeError`` with the worker's last stderr line if it fails."""
    passes = [dict(os.environ)]
    if device == "cpu":
        passes.append(dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(64 * 1024)))
    results = []
    for env in passes:
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["(no output)"]
            raise RuntimeError(lines[-1])
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    result = results[0]
    result["peak_mb"] = results[-1]["peak_mb"]
    return result


def cpu_info() -> dict:
    """The CPU as /proc/cpuinfo names it: ``model`` (with family and model
    numbers, which tell generations apart where the name does not), and the
    :data:`CPU_FLAGS` it has."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    model = fields.get("model name", "unknown CPU")
    if "cpu family" in fields:
        model += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    flags = set(fields.get("flags", "").split())
    return {"model": model, "flags": [flag for flag in CPU_FLAGS if flag in flags]}


def git_commit() -> str:
    """The checkout's commit (short), ``-dirty`` when tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short=10", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def command_line(argv=None) -> str:
    """The bench's command as a user types it from the repository root,
    without ``--json FILE`` (which does not change what is measured)."""
    argv = list(sys.argv if argv is None else argv)
    script = os.path.relpath(os.path.abspath(argv[0]), ROOT)
    args, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith("--json="):
            args.append(arg)
    return " ".join(shlex.quote(a) for a in ["python", script, *args])


def host_info(threads: int) -> dict:
    """Where and with what a bench ran (see the module docstring)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    info = {"command": command_line(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(), "cpu": cpu_info(), "cpus": os.cpu_count(), "threads": threads,
            "versions": versions}
    import torch  # loaded already, except in the benches' parent processes

    info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # the kernels torch dispatches to
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def add_json_option(parser) -> None:
    """``--json FILE``: also write the result with its host to FILE."""
    parser.add_argument("--json", metavar="FILE", help="also write the JSON result, with the host it ran on, to FILE")


def emit(result: dict, json_file, threads: int) -> dict:
    """Adds the ``host`` record to a bench's result, prints it as the last
    line of output and writes it to ``json_file`` (atomically) if given."""
    result["host"] = host_info(threads)
    text = json.dumps(result)
    print(text)
    if json_file:
        write_atomic(json_file, text + "\n")
    return result


def write_atomic(path: str, text: str) -> None:
    """Writes ``path`` through a temporary file and a rename: a reader never
    sees half a file, and a failed write leaves the old one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
