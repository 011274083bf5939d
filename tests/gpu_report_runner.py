"""Runs ``bench/gpu_report.py`` with two test-only parts added:
``rows_then_sleep`` records a result for its first cell and then sleeps past
any budget; ``fails`` raises. None of this belongs in the report itself.
The parts are registered only when this file runs as a script, so that
importing it (pytest's doctest collection) leaves the report's parts alone."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import gpu_report  # noqa: E402


def rows_then_sleep(ctx):
    """Records its first cell, then outlives any budget."""
    ctx.plan(["first", "second"])
    ctx.row("result", cell="first", value=1)
    time.sleep(600)


def fails(ctx):
    """Fails at once."""
    ctx.plan(["only"])
    raise RuntimeError("this part fails on purpose")


if __name__ == "__main__":
    gpu_report.part("rows_then_sleep", "A part that outlives its budget")(rows_then_sleep)
    gpu_report.part("fails", "A part that fails")(fails)
    sys.exit(gpu_report.main())
