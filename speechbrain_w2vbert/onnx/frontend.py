"""What the ONNX runtime does to audio before the graph, in numpy: the
SeamlessM4T features (:func:`seamless_features`, the numpy twin of
:class:`~speechbrain_w2vbert.models.features.SeamlessFbank` and of
``transformers.SeamlessM4TFeatureExtractor``) and resampling
(:func:`resample`, the numpy twin of :func:`speechbrain_w2vbert.audio.resample`).

The features are computed in fp64 from the waveform to the normalised
values (transformers' extractor rounds its spectrum to complex64 and its
log-mel to float32; ``SeamlessFbank`` computes the spectrum in fp64 and the
rest in fp32): all three agree to ~1e-5 on speech and stay within 1e-4 on
the hard inputs of tests/test_features.py (digital silence, band-limited
audio, clipping). The window and the filterbank are built here with the
reference's formulas (Kaldi's mel scale, triangles in mel space, the Povey
window); tests/test_onnx.py checks them against transformers'.

Nothing here needs torch.

Example
-------
>>> wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
>>> feats, mask = batch_features([wav, wav[:8000]])
>>> feats.shape, feats.dtype, mask.sum(axis=1).tolist()
((2, 49, 160), dtype('float32'), [49, 24])
>>> bool(np.abs(feats[1, :24] - seamless_features(wav[:8000])).max() == 0)
True

Authors: speechbrain-w2vbert contributors
"""

import functools
from math import gcd
from typing import List, Sequence, Tuple

import numpy as np

__all__ = ["FRAME_LENGTH", "HOP_LENGTH", "FFT_LENGTH", "STRIDE", "N_MELS", "MIN_SAMPLES", "povey_window",
           "kaldi_mel_filters", "log_mel", "normalize_and_stack", "seamless_features", "batch_features",
           "num_frames", "resample"]

#: Samples per 25 ms window, per 10 ms hop, FFT size, frames stacked, mel bins (at 16 kHz).
FRAME_LENGTH, HOP_LENGTH, FFT_LENGTH, STRIDE, N_MELS = 400, 160, 512, 2, 80
PREEMPHASIS = 0.97
#: Floor of the mel energies before the log (float32 machine epsilon, as the reference).
MEL_FLOOR = 1.192092955078125e-07
#: Added to each bin's variance before the square root (the reference's value).
EPS = 1e-7
#: Fewest samples that give one output frame (two windows).
MIN_SAMPLES = FRAME_LENGTH + (STRIDE - 1) * HOP_LENGTH


@functools.lru_cache(maxsize=None)
def povey_window() -> np.ndarray:
    """Kaldi's Povey window of 400 samples (a Hann window to the power 0.85,
    symmetric), fp64 [400]."""
    return np.power(np.hanning(FRAME_LENGTH), 0.85)


def _hz_to_mel(hertz):
    return 1127.0 * np.log(1.0 + np.asarray(hertz, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=None)
def kaldi_mel_filters(sample_rate: int = 16000, n_mels: int = N_MELS) -> np.ndarray:
    """Kaldi's mel filterbank, fp64 [257, n_mels]: triangles spaced evenly
    on Kaldi's mel scale from 20 Hz to Nyquist, drawn in mel space (what
    ``transformers.audio_utils.mel_filter_bank(..., mel_scale="kaldi",
    triangularize_in_mel_space=True)`` gives)."""
    bins = FFT_LENGTH // 2 + 1
    mel_freqs = np.linspace(_hz_to_mel(20.0), _hz_to_mel(sample_rate // 2), n_mels + 2)
    fft_mels = _hz_to_mel(sample_rate / FFT_LENGTH * np.arange(bins))
    slopes = mel_freqs[None, :] - fft_mels[:, None]  # [257, n_mels + 2]
    widths = np.diff(mel_freqs)
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    return np.maximum(0.0, np.minimum(down, up))


def num_frames(num_samples: int) -> int:
    """Stacked 20 ms output frames of ``num_samples`` samples (0 when too short).

    Example
    -------
    >>> num_frames(399), num_frames(560), num_frames(16000)
    (0, 1, 49)
    """
    frames = max(0, (num_samples - FRAME_LENGTH) // HOP_LENGTH + 1)
    return frames // STRIDE


def log_mel(wav: np.ndarray) -> np.ndarray:
    """Kaldi log-mel energies of every 10 ms frame, fp64 [N, 80]: 16-bit
    scaling, 25 ms frames without edge padding, each frame's DC offset
    removed, pre-emphasis 0.97, Povey window, 512-point power spectrum,
    mel filterbank, natural log with a floor.

    Arguments
    ---------
    wav : numpy.ndarray
        Mono waveform [T] in [-1, 1] at 16 kHz, at least 400 samples.

    Returns
    -------
    numpy.ndarray
    """
    x = np.asarray(wav, dtype=np.float64) * 32768.0
    count = (len(x) - FRAME_LENGTH) // HOP_LENGTH + 1
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME_LENGTH)[::HOP_LENGTH][:count]  # [N, 400] view
    frames = frames - frames.mean(axis=1, keepdims=True)
    emphasized = np.empty_like(frames)
    emphasized[:, 1:] = frames[:, 1:] - PREEMPHASIS * frames[:, :-1]
    emphasized[:, 0] = frames[:, 0] * (1.0 - PREEMPHASIS)
    spectrum = np.fft.rfft(emphasized * povey_window(), n=FFT_LENGTH)  # [N, 257] complex128
    power = spectrum.real ** 2 + spectrum.imag ** 2
    return np.log(np.maximum(power @ kaldi_mel_filters(), MEL_FLOOR))


def normalize_and_stack(mel: np.ndarray) -> np.ndarray:
    """Each mel bin normalised to zero mean and unit (unbiased) variance over
    the utterance's frames, then frame pairs stacked: [N, 80] -> [N // 2,
    160] float32 (a trailing odd frame counts in the statistics and is
    dropped). Values are shifted by the first frame first, so that a bin
    constant over the utterance (digital silence) comes out exactly 0."""
    shifted = mel - mel[:1]
    centered = shifted - shifted.mean(axis=0, keepdims=True)
    var = (centered ** 2).sum(axis=0, keepdims=True) / max(1, len(mel) - 1)
    normed = centered / np.sqrt(var + EPS)
    frames = len(mel) // STRIDE
    return normed[: frames * STRIDE].reshape(frames, N_MELS * STRIDE).astype(np.float32)


def seamless_features(wav: np.ndarray) -> np.ndarray:
    """The normalised, stacked features of one utterance, float32 [T', 160]
    (:func:`log_mel` then :func:`normalize_and_stack`).

    Raises
    ------
    ValueError
        Fewer than :data:`MIN_SAMPLES` samples (no output frame).
    """
    if np.ndim(wav) != 1:
        raise ValueError(f"expected a 1-D waveform (mono), got shape {np.shape(wav)}")
    if len(wav) < MIN_SAMPLES:
        raise ValueError(f"{len(wav)} samples: the features need at least {MIN_SAMPLES} "
                         f"({1000 * MIN_SAMPLES // 16000} ms at 16 kHz)")
    return normalize_and_stack(log_mel(wav))


def batch_features(wavs: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """The features of several utterances, right-padded with zeros into one
    batch, and the attention mask (what transformers' extractor returns).

    Returns
    -------
    feats : numpy.ndarray
        float32 [B, T', 160].
    mask : numpy.ndarray
        int64 [B, T'], 1 on each utterance's frames.
    """
    each: List[np.ndarray] = [seamless_features(w) for w in wavs]
    longest = max(len(f) for f in each)
    feats = np.zeros((len(each), longest, N_MELS * STRIDE), dtype=np.float32)
    mask = np.zeros((len(each), longest), dtype=np.int64)
    for i, f in enumerate(each):
        feats[i, : len(f)] = f
        mask[i, : len(f)] = 1
    return feats, mask


# ---------------------------------------------------------------- resampling
@functools.lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int, lowpass_filter_width: int = 6, rolloff: float = 0.99):
    """torchaudio's ``sinc_interp_hann`` resampling kernel [new, taps] and its width."""
    base = min(orig, new) * rolloff
    width = int(np.ceil(lowpass_filter_width * orig / base))
    idx = np.arange(-width, width + orig, dtype=np.float64)[None, :] / orig  # [1, taps]
    t = np.arange(0, -new, -1, dtype=np.float64)[:, None] / new + idx  # [new, taps]
    t = np.clip(t * base, -lowpass_filter_width, lowpass_filter_width)
    window = np.cos(t * np.pi / lowpass_filter_width / 2) ** 2
    t = t * np.pi
    scale = base / orig
    kernels = np.where(t == 0, 1.0, np.sin(t) / np.where(t == 0, 1.0, t)) * window * scale
    return kernels.astype(np.float32), width


def resample(wav: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """A waveform ([T] or [T, C]) down-mixed to mono (the channels' mean)
    and resampled from ``sample_rate`` to ``target_rate`` with
    torchaudio's default band-limited sinc interpolation (Hann window, 6
    zero crossings, roll-off 0.99), as
    :func:`speechbrain_w2vbert.audio.resample` does in torch.

    Example
    -------
    >>> resample(np.zeros((8000, 2), np.float32), 8000, 16000).shape
    (16000,)
    """
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    if sample_rate == target_rate:
        return wav
    divisor = gcd(int(sample_rate), int(target_rate))
    orig, new = int(sample_rate) // divisor, int(target_rate) // divisor
    kernels, width = _sinc_kernel(orig, new)
    length = len(wav)
    padded = np.pad(wav, (width, width + orig))
    taps = kernels.shape[1]
    starts = np.arange(0, len(padded) - taps + 1, orig)
    windows = np.lib.stride_tricks.sliding_window_view(padded, taps)[starts]  # [n, taps]
    out = (windows @ kernels.T).reshape(-1)  # [n * new], interleaved phases
    target_length = int(np.ceil(new * length / orig))
    return np.ascontiguousarray(out[:target_length], dtype=np.float32)
