"""Reading the recipe's audio for training: a fault-tolerant reader that
turns an unreadable file into silence left out of the loss, never a crash.

Authors: speechbrain-w2vbert contributors
"""

import logging
from typing import Tuple

import torch

from speechbrain_w2vbert.audio import AudioError, read_audio

__all__ = ["AudioReader"]

logger = logging.getLogger(__name__)


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
    min_samples : int
        Shorter files count as unreadable: the encoder's ``min_samples``
        (default 1).

    Example
    -------
    >>> reader = AudioReader()
    >>> wav, ok = reader("/nonexistent.flac", duration=1.5)
    >>> wav.shape, ok
    (torch.Size([24000]), False)
    """

    def __init__(self, sample_rate: int = 16000, min_samples: int = 1):
        self.sample_rate = sample_rate
        self.min_samples = min_samples

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
            return read_audio(path, self.sample_rate, self.min_samples), True
        except AudioError as err:  # never crash training on one file
            logger.warning("unreadable audio file %s (%s): left out of the loss", path, err)
            return torch.zeros(max(1, int(round(duration * self.sample_rate)))), False
