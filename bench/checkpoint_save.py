"""What atomic checkpoints cost: ``AtomicCheckpointer`` (a hidden folder,
the meta file last, fsync, rename) against SpeechBrain's ``Checkpointer``,
saving (``save_and_keep_only``, as the recipe does) and recovering the same
state: a stack of linear layers and its AdamW state after one step.

    python bench/checkpoint_save.py [--params 50e6] [--repeats 5] [--folder DIR]

The two sides alternate in one process on the same folder's file system;
times are wall-clock seconds as the recipe sees them (the fsync included),
median and worst of the repeats, and their ratio. The folder defaults to a
temporary one: point it at the disk your checkpoints go to.
"""

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import torch
from speechbrain.utils.checkpoints import Checkpointer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import add_json_option, emit  # noqa: E402

from speechbrain_w2vbert.training.checkpoints import AtomicCheckpointer, human_bytes  # noqa: E402


def state(params):
    """(model, AdamW after one step) with about ``params`` parameters."""
    width = 1024
    layers = max(1, round(params / (width * width + width)))
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, width)).sum().backward()
    optimizer.step()
    return model, optimizer


def cpu_model():
    """The CPU's model name (/proc/cpuinfo), or the machine type."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def timed(function):
    """Seconds a call takes."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=50e6, help="parameters of the model (default 50e6)")
    parser.add_argument("--repeats", type=int, default=5, help="saves and loads per side (default 5)")
    parser.add_argument("--folder", default=None, help="where to write (default: a temporary folder)")
    add_json_option(parser)
    args = parser.parse_args()
    model, optimizer = state(args.params)
    root = tempfile.mkdtemp(dir=args.folder)
    sides = {"SpeechBrain Checkpointer": Checkpointer, "AtomicCheckpointer": AtomicCheckpointer}
    checkpointers = {name: cls(os.path.join(root, name.split()[-1]), {"model": model, "optimizer": optimizer})
                     for name, cls in sides.items()}
    times = {name: {"save": [], "load": []} for name in sides}
    for _ in range(args.repeats):
        for name, checkpointer in checkpointers.items():  # alternating, same conditions
            times[name]["save"].append(timed(lambda: checkpointer.save_and_keep_only(num_to_keep=1)))
            times[name]["load"].append(timed(checkpointer.recover_if_possible))
    size = sum(os.path.getsize(p) for p in checkpointers["AtomicCheckpointer"].find_checkpoint().paramfiles.values())
    estimate = sum(checkpointers["AtomicCheckpointer"].checkpoint_bytes())
    print(f"checkpoint: {human_bytes(size)} written, {human_bytes(estimate)} estimated; "
          f"{args.repeats} repeats in {root}")
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'side':<26} {'save median':>12} {'save worst':>11} {'load median':>12} {'load worst':>11}")
    for name in sides:
        save, load = times[name]["save"], times[name]["load"]
        print(f"{name:<26} {statistics.median(save):>11.2f}s {max(save):>10.2f}s "
              f"{statistics.median(load):>11.2f}s {max(load):>10.2f}s")
    base, ours = times["SpeechBrain Checkpointer"], times["AtomicCheckpointer"]
    median = statistics.median
    print(f"ratio (atomic / SpeechBrain): save median {median(ours['save']) / median(base['save']):.2f}, "
          f"worst {max(ours['save']) / max(base['save']):.2f}; load median "
          f"{median(ours['load']) / median(base['load']):.2f}")
    shutil.rmtree(root)
    rows = [{"side": name, "save_median": median(times[name]["save"]), "save_worst": max(times[name]["save"]),
             "load_median": median(times[name]["load"]), "load_worst": max(times[name]["load"]),
             "save_vs_speechbrain": median(times[name]["save"]) / median(base["save"])} for name in sides]
    emit({"bench": "checkpoint_save", "params": args.params, "bytes": size, "estimated_bytes": estimate,
          "repeats": args.repeats, "rows": rows}, args.json, torch.get_num_threads())


if __name__ == "__main__":
    main()
