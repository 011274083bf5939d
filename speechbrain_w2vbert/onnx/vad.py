"""Speech segments of long recordings without torch: silero-vad's ONNX
model (shipped in the ``silero-vad`` wheel, found on disk without importing
the package, which imports torch) run with onnxruntime, and silero-vad's
rule from speech probabilities to speech spans, in numpy;
the joining and padding of :mod:`speechbrain_w2vbert.inference.segmentation`
follow unchanged (:class:`OnnxVoiceActivitySegmenter` is a
``VoiceActivitySegmenter`` with another detector).

tests/test_onnx.py checks the spans against silero-vad's own
``get_speech_timestamps`` on the same ONNX model.

Nothing here needs torch.

Authors: speechbrain-w2vbert contributors
"""

import functools
import importlib.util
import os
from typing import List, Sequence, Tuple

import numpy as np

from speechbrain_w2vbert.inference.segmentation import VoiceActivitySegmenter

__all__ = ["silero_onnx_path", "speech_probabilities", "speech_spans", "OnnxVoiceActivitySegmenter"]

Span = Tuple[int, int]


def silero_onnx_path() -> str:
    """The path of ``silero_vad.onnx`` inside the installed ``silero-vad``
    package (located, not imported).

    Raises
    ------
    ImportError
        silero-vad is not installed (``pip install silero-vad --no-deps``:
        the ONNX model needs none of its dependencies).
    """
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("segmenting long files needs silero-vad's ONNX model: "
                          "pip install --no-deps 'silero-vad>=6.2.3,<7' (or --segment fixed)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "silero_vad.onnx")
    if not os.path.isfile(path):
        raise ImportError(f"{path}: missing from the installed silero-vad; reinstall silero-vad 6.x")
    return path


@functools.lru_cache(maxsize=None)
def _session():
    """silero-vad's ONNX model in an onnxruntime session (one thread: it is
    called once per 32 ms window), once per process."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(silero_onnx_path(), options, providers=["CPUExecutionProvider"])


def speech_probabilities(wav: np.ndarray, sample_rate: int = 16000) -> List[float]:
    """silero-vad's speech probability of every window of 512 samples (256
    at 8 kHz) of a 1-D waveform, the last one zero-padded, each window seen
    with the 64 (32) samples before it and the model's recurrent state, as
    silero-vad's ``OnnxWrapper`` runs it.

    Example
    -------
    >>> probs = speech_probabilities(np.zeros(16000, np.float32))
    >>> len(probs), max(probs) < 0.1
    (32, True)
    """
    if sample_rate not in (8000, 16000):
        raise ValueError(f"silero-vad runs at 8000 or 16000 Hz, not {sample_rate}")
    window, context = (512, 64) if sample_rate == 16000 else (256, 32)
    wav = np.asarray(wav, dtype=np.float32)
    padded = np.concatenate([np.zeros(context, np.float32), wav,
                             np.zeros(-len(wav) % window, np.float32)])
    session = _session()
    state = np.zeros((2, 1, 128), dtype=np.float32)
    rate = np.array(sample_rate, dtype=np.int64)
    probs = []
    for start in range(0, len(padded) - context, window):
        chunk = padded[start:start + context + window][None]
        out, state = session.run(None, {"input": chunk, "state": state, "sr": rate})
        probs.append(float(out.reshape(-1)[0]))
    return probs


def speech_spans(probs: Sequence[float], num_samples: int, sample_rate: int = 16000, threshold: float = 0.5,
                 min_speech_ms: int = 250, min_silence_ms: int = 100) -> List[Span]:
    """Speech spans (samples) of silero-vad's window probabilities, by its
    rule (``get_speech_timestamps`` without padding or a longest segment):
    speech starts at a window of probability >= ``threshold`` and ends at
    the first window below ``threshold - 0.15`` followed by at least
    ``min_silence_ms`` without a window at or above ``threshold``; spans
    not longer than ``min_speech_ms`` are dropped.

    Example
    -------
    >>> speech_spans([0.0] + [0.9] * 8 + [0.1] * 5, 14 * 512)
    [(512, 4608)]
    """
    window = 512 if sample_rate == 16000 else 256
    min_speech = sample_rate * min_speech_ms / 1000
    min_silence = sample_rate * min_silence_ms / 1000
    negative = max(threshold - 0.15, 0.01)
    spans, start, temp_end = [], None, 0
    for i, prob in enumerate(probs):
        sample = window * i
        if prob >= threshold and temp_end:
            temp_end = 0
        if prob >= threshold and start is None:
            start = sample
            continue
        if prob < negative and start is not None:
            if not temp_end:
                temp_end = sample
            if sample - temp_end < min_silence:
                continue
            if temp_end - start > min_speech:
                spans.append((int(start), int(temp_end)))
            start, temp_end = None, 0
    if start is not None and num_samples - start > min_speech:
        spans.append((int(start), int(num_samples)))
    return spans


class OnnxVoiceActivitySegmenter(VoiceActivitySegmenter):
    """:class:`~speechbrain_w2vbert.inference.segmentation.VoiceActivitySegmenter`
    (same arguments, same steps) on numpy waveforms, with silero-vad's ONNX
    model run by onnxruntime.

    Example
    -------
    >>> OnnxVoiceActivitySegmenter()(np.zeros(32000, np.float32))  # digital silence: no speech
    []
    """

    def speech(self, wav: np.ndarray) -> List[Span]:
        """silero-vad's speech spans (samples of ``wav``), cut at pauses of
        at least ``min_pause``, unpadded."""
        from speechbrain_w2vbert.onnx.frontend import resample

        rate = self.sample_rate
        if rate not in (8000, 16000):
            wav, rate = resample(wav, self.sample_rate, 16000), 16000
        spans = speech_spans(speech_probabilities(wav, rate), len(wav), rate, self.threshold,
                             int(self.min_speech * 1000), int(self.min_pause * 1000))
        scale = self.sample_rate / rate
        return [(int(s * scale), int(e * scale)) for s, e in spans]
