"""What each training step of the recipe does beside SpeechBrain's
``Brain``: seed the random number generators from where training is (exact
resumption, see docs/design.md#exact-resumption), and check that the
gradients are finite before an update.

Authors: speechbrain-w2vbert contributors
"""

import hashlib
import random
from typing import Iterable

import numpy as np
import torch

__all__ = ["step_seed", "seed_step", "grads_are_finite"]


def step_seed(seed: int, epoch: int, step: int, rank: int = 0) -> int:
    """A 63-bit seed determined by (seed, epoch, step within the epoch, rank).

    Example
    -------
    >>> step_seed(1, 2, 3) == step_seed(1, 2, 3), step_seed(1, 2, 3) == step_seed(1, 2, 4)
    (True, False)
    """
    digest = hashlib.sha256(f"{seed}/{epoch}/{step}/{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seed_step(seed: int, epoch: int, step: int, rank: int = 0) -> None:
    """Seed torch (CPU and CUDA), numpy's and Python's global RNGs for one
    training step.

    Dropout, LayerDrop (torch) and transformers' SpecAugment mask sampling
    (``_compute_mask_indices`` draws from numpy's *global* RNG) then depend
    only on where training is, not on its history: a run resumed from a
    mid-epoch checkpoint draws exactly the masks of an uninterrupted run.
    Ranks get different streams, so DDP replicas drop different units.

    Arguments
    ---------
    seed : int
        The experiment's seed.
    epoch : int
        Current epoch (1-based, as SpeechBrain counts).
    step : int
        Batch index within the epoch (``Brain.step``).
    rank : int
        Process rank under DDP (default 0).

    Example
    -------
    >>> seed_step(3, 1, 5); a = (torch.rand(1), np.random.rand())
    >>> seed_step(3, 1, 5); b = (torch.rand(1), np.random.rand())
    >>> bool(a[0] == b[0]) and a[1] == b[1]
    True
    """
    value = step_seed(seed, epoch, step, rank)
    torch.manual_seed(value)  # seeds every CUDA device too
    np.random.seed(value % 2**32)
    random.seed(value)


def grads_are_finite(parameters: Iterable[torch.nn.Parameter]) -> bool:
    """Whether every gradient of ``parameters`` is finite (one device sync).

    Under DDP the gradients are all-reduced before this is called, so one
    rank's NaN reaches every rank and all of them take the same decision.

    Example
    -------
    >>> layer = torch.nn.Linear(2, 1)
    >>> layer(torch.ones(1, 2)).sum().backward()
    >>> grads_are_finite(layer.parameters())
    True
    >>> layer.weight.grad[0, 0] = float("nan")
    >>> grads_are_finite(layer.parameters())
    False
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return True
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(grads, norm_type=2.0)))
