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
"""

import json
import os
import subprocess


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
