"""Speech segments of long recordings, cut at pauses found by a
voice-activity detector (silero-vad, whose model ships inside its wheel: no
download).

A recognizer given a long recording in fixed chunks sees chunks that start
and end inside words and silence that shifts its output; given the speech
between pauses it sees what it was trained on: utterances. The detector's
own defaults cut at pauses of 0.1 s, which splits utterances, and even
words, at their short inner pauses, so here:

1. speech is what silero-vad marks as speech (probability ``threshold``),
   bursts shorter than ``min_speech`` dropped;
2. segments are cut only at pauses of at least ``min_pause`` seconds;
3. a segment shorter than ``min_segment`` is joined to its nearer neighbour
   when the pause between them is at most ``join_pause``;
4. each segment is widened by ``pad_before`` seconds of audio before and
   ``pad_after`` after (at most half the pause to its neighbour), so that no
   word's onset or tail is cut off (the defaults: docs/design.md#long-recordings).

The PyTorch backend runs silero-vad's TorchScript model here; the ONNX
runtime runs its ONNX model with the same steps
(:class:`speechbrain_w2vbert.onnx.vad.OnnxVoiceActivitySegmenter`).
Nothing here needs torch until a segmenter runs.

Segments longer than the transcriber's chunk are cut again into
overlapping chunks inside (:mod:`speechbrain_w2vbert.inference.chunking`).

Example
-------
>>> import torch
>>> from speechbrain_w2vbert.inference.segmentation import join_segments
>>> join_segments([(0, 16000), (20000, 22000), (80000, 112000)], sample_rate=16000)
[(0, 22000), (80000, 112000)]

Authors: speechbrain-w2vbert contributors
"""

import functools
from typing import List, Sequence, Tuple

from speechbrain_w2vbert.audio import resample

__all__ = ["VoiceActivitySegmenter", "join_segments", "pad_segments"]

Span = Tuple[int, int]  # samples [start, end)


@functools.lru_cache(maxsize=None)
def _silero_model():
    """silero-vad's TorchScript model, loaded once per process from its wheel."""
    import warnings

    from silero_vad import load_silero_vad

    with warnings.catch_warnings():  # its importlib.resources.path and torch.jit.load deprecations
        warnings.simplefilter("ignore", DeprecationWarning)
        return load_silero_vad()


def join_segments(spans: Sequence[Span], sample_rate: int, min_segment: float = 1.0,
                  join_pause: float = 2.0) -> List[Span]:
    """Joins each segment shorter than ``min_segment`` seconds to its nearer
    neighbour if the pause between them is at most ``join_pause`` seconds
    (shortest first; a segment with no neighbour that near stays alone).

    Arguments
    ---------
    spans : sequence of (int, int)
        Speech ``[start, end)`` in samples, in order, not overlapping.
    sample_rate : int
        Hz.
    min_segment : float
        Seconds.
    join_pause : float
        Seconds.

    Returns
    -------
    list of (int, int)
    """
    spans = [tuple(s) for s in spans]
    while True:
        for i in sorted(range(len(spans)), key=lambda i: spans[i][1] - spans[i][0]):
            if spans[i][1] - spans[i][0] >= min_segment * sample_rate:
                return spans  # this one and all after it are long enough
            pauses = [(spans[j][0] - spans[i][1] if j > i else spans[i][0] - spans[j][1], j)
                      for j in (i - 1, i + 1) if 0 <= j < len(spans)]
            pauses = [p for p in pauses if p[0] <= join_pause * sample_rate]
            if pauses:
                a, b = sorted((i, min(pauses)[1]))
                spans[a:b + 1] = [(spans[a][0], spans[b][1])]
                break  # lengths changed: start again
        else:
            return spans


def pad_segments(spans: Sequence[Span], num_samples: int, before: int, after: int) -> List[Span]:
    """Each span widened by ``before`` samples before it and ``after`` after
    it, by at most half the pause to its neighbours and never past the
    recording.

    Example
    -------
    >>> pad_segments([(100, 200), (260, 400)], num_samples=420, before=50, after=50)
    [(50, 230), (230, 420)]
    """
    out = []
    for i, (start, end) in enumerate(spans):
        room_before = start if i == 0 else (start - spans[i - 1][1]) // 2
        room_after = num_samples - end if i + 1 == len(spans) else (spans[i + 1][0] - end) // 2
        out.append((start - min(before, room_before), end + min(after, room_after)))
    return out


class VoiceActivitySegmenter:
    """Cuts a waveform into speech segments at pauses (see the module's
    description for the steps).

    Arguments
    ---------
    sample_rate : int
        Rate of the waveforms it is given (silero-vad runs at 16 kHz and
        8 kHz; other rates are resampled for the detector only).
    threshold : float
        Speech probability above which a 32 ms window is speech (silero-vad's
        default 0.5).
    min_pause : float
        Seconds of non-speech that end a segment (default 0.5); shorter
        pauses stay inside it.
    min_speech : float
        Seconds: shorter speech bursts are dropped (default 0.25).
    min_segment : float
        Seconds: a shorter segment is joined to a neighbour (default 1.0).
    join_pause : float
        Seconds: the longest pause a short segment is joined across (default 2.0).
    pad_before : float
        Seconds of audio kept before each segment (default 0.1).
    pad_after : float
        Seconds of audio kept after each segment (default 0.4).

    Example
    -------
    >>> import torch
    >>> segmenter = VoiceActivitySegmenter()
    >>> segmenter(torch.zeros(32000))  # digital silence: no speech
    []
    """

    def __init__(self, sample_rate: int = 16000, threshold: float = 0.5, min_pause: float = 0.5,
                 min_speech: float = 0.25, min_segment: float = 1.0, join_pause: float = 2.0, pad_before: float = 0.1,
                 pad_after: float = 0.4):
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"VAD threshold must be in (0, 1), got {threshold}")
        if min(min_pause, min_speech, min_segment, join_pause, pad_before, pad_after) < 0:
            raise ValueError("VAD durations must be >= 0 s")
        self.sample_rate = sample_rate
        self.threshold = threshold
        self.min_pause = min_pause
        self.min_speech = min_speech
        self.min_segment = min_segment
        self.join_pause = join_pause
        self.pad_before = pad_before
        self.pad_after = pad_after

    def speech(self, wav) -> List[Span]:
        """silero-vad's speech spans (samples of ``wav``), cut at pauses of
        at least ``min_pause``, unpadded."""
        import torch
        from silero_vad import get_speech_timestamps

        rate = self.sample_rate
        if rate not in (8000, 16000):
            wav, rate = resample(wav, self.sample_rate, 16000), 16000
        with torch.no_grad():
            stamps = get_speech_timestamps(
                wav.float(), _silero_model(), threshold=self.threshold, sampling_rate=rate,
                min_speech_duration_ms=int(self.min_speech * 1000),
                min_silence_duration_ms=int(self.min_pause * 1000), speech_pad_ms=0)
        scale = self.sample_rate / rate
        return [(int(s["start"] * scale), int(s["end"] * scale)) for s in stamps]

    def __call__(self, wav) -> List[Span]:
        """Speech segments ``[(start, end), ...]`` of a 1-D waveform, in
        samples, in order, not overlapping; ``[]`` when it holds no speech."""
        spans = join_segments(self.speech(wav), self.sample_rate, self.min_segment, self.join_pause)
        rate = self.sample_rate
        return pad_segments(spans, wav.shape[0], int(self.pad_before * rate), int(self.pad_after * rate))
