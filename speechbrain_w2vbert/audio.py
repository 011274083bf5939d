"""Reading audio for training, inference and the CLI: any format soundfile
reads, at any rate and channel count, down-mixed to mono and resampled as
``EncoderASR.load_audio`` does.

Authors: speechbrain-w2vbert contributors
"""

import functools
from typing import Callable, Optional

__all__ = ["AudioError", "read_audio", "resample"]


@functools.lru_cache(maxsize=None)
def _normalizer(sample_rate: int):
    """SpeechBrain's ``AudioNormalizer`` (average to mono, resample), the one
    ``EncoderASR.load_audio`` uses; it caches its resamplers, so one per rate."""
    from speechbrain.dataio.preprocess import AudioNormalizer

    return AudioNormalizer(sample_rate=sample_rate, mix="avg-to-mono")


def resample(wav, sample_rate: int, target_rate: int):
    """A waveform ([T] or [T, C]) down-mixed to mono and resampled from
    ``sample_rate`` to ``target_rate``, as files are by :func:`read_audio`
    (SpeechBrain's ``AudioNormalizer``, one cached resampler per rate pair).

    Example
    -------
    >>> import torch
    >>> resample(torch.zeros(8000), 8000, 16000).shape
    torch.Size([16000])
    """
    return _normalizer(target_rate)(wav, sample_rate)


class AudioError(ValueError):
    """A file that cannot be transcribed (unreadable, empty, too short)."""


def _read_samples(path: str):
    """The samples of any file soundfile reads, float32 [T, C] in [-1, 1],
    and its rate.

    Raises
    ------
    AudioError
        The file is unreadable, empty, or holds samples that are not finite.
    """
    import numpy as np
    import soundfile

    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)  # [T, C]
    except Exception as error:  # libsndfile's errors are of several types
        raise AudioError(f"unreadable: {error}") from None
    if data.shape[0] == 0:
        raise AudioError("empty: no audio samples")
    finite = np.isfinite(data)
    if not finite.all():
        raise AudioError(f"{int(finite.size - finite.sum())} samples are not finite numbers (NaN or infinity): "
                         "a damaged float recording")
    return data, rate


def read_audio(path: str, sample_rate: int = 16000, min_samples: int = 1, resampler: Optional[Callable] = None):
    """Read any file soundfile reads, down-mixed to mono and resampled.

    Training (:class:`speechbrain_w2vbert.training.data.AudioReader`), the CLI and
    the tests all read audio through this one function.

    Arguments
    ---------
    path : str
        Audio file (WAV, FLAC, OGG, MP3... whatever libsndfile reads).
    sample_rate : int
        Target rate in Hz.
    min_samples : int
        Fewest samples (at ``sample_rate``) the waveform must have: the
        encoder's ``min_samples``, the shortest input that gives it one
        output frame (default 1).
    resampler : callable, optional
        ``resampler(samples [T, C] float32 numpy, rate, sample_rate)`` -> 1-D
        waveform; default :func:`resample` (torch). The ONNX runtime passes
        its numpy twin (:func:`speechbrain_w2vbert.onnx.frontend.resample`).

    Returns
    -------
    torch.Tensor
        1-D float32 waveform in [-1, 1] (what ``resampler`` returns).

    Raises
    ------
    AudioError
        The file is unreadable, empty, holds samples that are not finite
        numbers, or is shorter than ``min_samples``.

    Example
    -------
    >>> import os, tempfile, soundfile, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "stereo.wav")
    >>> soundfile.write(path, torch.zeros(8000, 2).numpy(), 8000)
    >>> read_audio(path).shape
    torch.Size([16000])
    >>> soundfile.write(path, torch.full((100, 1), float("nan")).numpy(), 8000, subtype="FLOAT")
    >>> read_audio(path)
    Traceback (most recent call last):
    ...
    speechbrain_w2vbert.audio.AudioError: 100 samples are not finite numbers (NaN or infinity): a damaged float recording
    >>> soundfile.write(path, torch.zeros(100, 1).numpy(), 8000)
    >>> read_audio(path, min_samples=560)
    Traceback (most recent call last):
    ...
    speechbrain_w2vbert.audio.AudioError: too short: 0.013 s (200 samples at 16000 Hz; at least 560 needed)
    """
    data, rate = _read_samples(path)
    if resampler is None:
        import torch

        wav = resample(torch.from_numpy(data), rate, sample_rate)
    else:
        wav = resampler(data, rate, sample_rate)
    if wav.shape[0] < min_samples:
        raise AudioError(
            f"too short: {wav.shape[0] / sample_rate:.3f} s ({wav.shape[0]} samples at {sample_rate} Hz; "
            f"at least {min_samples} needed)"
        )
    return wav
