"""Training helpers of the recipe: per-step seeding (exact resume),
checkpointed counters, a gradient finiteness check and a fault-tolerant
audio reader.

Authors: speechbrain-w2vbert contributors
"""

import hashlib
import json
import logging
import random
from typing import Dict, Iterable, Tuple

import numpy as np
import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

from speechbrain_w2vbert.audio import AudioError, read_audio

__all__ = ["step_seed", "seed_step", "Counters", "grads_are_finite", "AudioReader"]

logger = logging.getLogger(__name__)


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


@register_checkpoint_hooks
class Counters:
    """Named integer counters saved in checkpoints (e.g. infeasible CTC
    utterances, skipped non-finite updates, unreadable files).

    Arguments
    ---------
    names : iterable of str
        The counters, all starting at 0.

    Example
    -------
    >>> counters = Counters(["infeasible", "nonfinite"])
    >>> counters.add("infeasible", 2)
    >>> counters.as_dict()
    {'infeasible': 2, 'nonfinite': 0}
    """

    def __init__(self, names: Iterable[str]):
        self.counts: Dict[str, int] = {name: 0 for name in names}

    def add(self, name: str, value: int = 1) -> None:
        """Add ``value`` to counter ``name``."""
        self.counts[name] += int(value)

    def __getitem__(self, name: str) -> int:
        return self.counts[name]

    def as_dict(self) -> Dict[str, int]:
        """A copy of the counts."""
        return dict(self.counts)

    @mark_as_saver
    def save(self, path):
        """Write the counts (JSON)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.counts, f)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Read the counts."""
        del end_of_epoch
        with open(path, encoding="utf-8") as f:
            self.counts.update(json.load(f))


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


class AudioReader:
    """Reads an audio file as a mono float waveform at ``sample_rate``;
    an unreadable file becomes silence, with a warning naming it.

    Reading, down-mixing and resampling are
    :func:`speechbrain_w2vbert.audio.read_audio`'s (SpeechBrain's
    ``AudioNormalizer``, as ``EncoderASR.load_audio``), so training, the CLI
    and inference read audio identically.

    Arguments
    ---------
    sample_rate : int
        Output rate in Hz (default 16000).

    Example
    -------
    >>> reader = AudioReader()
    >>> wav, ok = reader("/nonexistent.flac", duration=1.5)
    >>> wav.shape, ok
    (torch.Size([24000]), False)
    """

    def __init__(self, sample_rate: int = 16000):
        self.sample_rate = sample_rate

    def __call__(self, path: str, duration: float) -> Tuple[torch.Tensor, bool]:
        """Return ``(waveform [T], True)``, or ``(zeros of duration, False)``
        when the file cannot be read (or is too short for the frontend).

        Arguments
        ---------
        path : str
            Audio file.
        duration : float
            Its duration in seconds (from the CSV), used for the silence.

        Returns
        -------
        waveform : torch.Tensor
        readable : bool
        """
        try:
            return read_audio(path, self.sample_rate), True
        except AudioError as err:  # never crash training on one file
            logger.warning("unreadable audio file %s (%s): left out of the loss", path, err)
            return torch.zeros(max(1, int(round(duration * self.sample_rate)))), False
