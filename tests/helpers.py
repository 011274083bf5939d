"""Helpers (not fixtures) used by several test modules."""

import os

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
#: Utterances per split of the recipe tests' slices of the sample corpus (the ``recipe_data`` fixture).
SLICE_TRAIN, SLICE_EVAL = 24, 5


def pad_batch(wavs):
    """Right-pads 1-D float arrays into ([B, T] tensor, relative lengths [B])."""
    length = max(len(w) for w in wavs)
    batch = torch.zeros(len(wavs), length)
    for i, wav in enumerate(wavs):
        batch[i, : len(wav)] = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    return batch, torch.tensor([len(w) / length for w in wavs])
