"""Helpers (not fixtures) used by several test modules, and the faults the
fault-injecting runners share."""

import os
import signal

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(ROOT, "tests", "data")
#: The demo's 2M-parameter model trained on the sample corpus (an EncoderASR
#: folder written by speechbrain-w2vbert 0.1.0: it also proves such folders load).
MODEL = os.path.join(DATA_DIR, "tiny_ne_model")
HPARAMS_DIR = os.path.join(ROOT, "hparams")
TINY_HPARAMS = os.path.join(HPARAMS_DIR, "w2vbert_ctc_tiny.yaml")
RECIPE_DIR = os.path.join(ROOT, "recipes", "OpenSLR54")
#: Threads per test process: the cores shared among pytest-xdist's workers
#: (each worker's torch, and the trainings it starts, use this many).
THREADS = max(1, (os.cpu_count() or 2) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
#: Utterances per split of the recipe tests' slices of the sample corpus (the ``recipe_data`` fixture).
SLICE_TRAIN, SLICE_EVAL = 24, 5


def pad_batch(wavs):
    """Right-pads 1-D float arrays into ([B, T] tensor, relative lengths [B])."""
    length = max(len(w) for w in wavs)
    batch = torch.zeros(len(wavs), length)
    for i, wav in enumerate(wavs):
        batch[i, : len(wav)] = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    return batch, torch.tensor([len(w) / length for w in wavs])


def levenshtein(a, b):
    """Edit distance between two sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def cli(*args, check=True):
    """Runs ``w2vbert-asr`` in-process: (exit status, stdout, stderr)."""
    import contextlib
    import io

    from speechbrain_w2vbert.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in args])
    if check:
        assert status == 0, err.getvalue()[-3000:]
    return status, out.getvalue(), err.getvalue()


def die():
    """SIGKILL this process: no handler, no cleanup (a hard crash)."""
    os.kill(os.getpid(), signal.SIGKILL)


def kill_action(when):
    """A fault for a file being written: ``action(path, write)`` dies
    before ``write()`` runs, with half of the file on disk (``during``), or
    right after it (``after``)."""

    def action(path, write):
        if when == "before":
            die()
        write()
        if when == "during":
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
        die()

    return action
