"""Helpers shared by the benchmark scripts (run as ``python bench/<name>.py``)."""


def rss_mb(field: str) -> float:
    """A memory field of /proc/self/status in MB: ``VmRSS`` (now) or ``VmHWM`` (peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")
