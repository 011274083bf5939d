"""Long recordings in overlapping chunks on the encoder's frame grid.

Long files are cut as transformers' CTC pipeline does with
``chunk_length_s`` / ``stride_length_s``: each chunk of ``chunk`` seconds
overlaps its neighbours by ``stride`` seconds on each side; the frames of
those strides are dropped, the kept frames of all chunks are concatenated
into the frame sequence of the whole file, and that sequence is decoded
once (so a word at a chunk border is neither split nor repeated). Chunk
starts fall on the encoder's frame grid (320 samples = 20 ms for w2v-BERT
2.0), so the kept frames of neighbouring chunks tile the file exactly. The
encoder only ever sees chunk-sized inputs, ``batch_size`` chunks at a time.

Two departures from the pipeline: the last chunk is a whole chunk ending
at the end of the file (the pipeline's last chunk can be a few seconds of
audio with little context), and :func:`stitch_chunks` moves each border
between two chunks, within the middle half of their overlap, to where both
chunks are most confident of a blank (a pause or a gap between characters),
so that no character is dropped or doubled between two chunks that place it
a frame apart. Chunked text still differs from a one-pass transcript where
the cut context changes the model's output (tests/test_cli.py measures it).

Example
-------
>>> spans = chunk_spans(16000 * 50, chunk=16000 * 20, stride=16000 * 4, frame=320)
>>> [(s.start / 16000, s.end / 16000, s.keep_from, s.keep_to) for s in spans]
[(0.0, 20.0, 0, 800), (12.0, 32.0, 200, 800), (24.0, 44.0, 200, 800), (30.0, 50.0, 500, None)]

Nothing here needs torch (:func:`stitch_chunks` takes and returns torch
tensors or numpy arrays alike).

Authors: speechbrain-w2vbert contributors
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

__all__ = ["Span", "chunk_spans", "stitch_chunks"]


@dataclass
class Span:
    """One chunk: samples ``[start, end)`` of the file, and the range
    ``[keep_from, keep_to)`` of its output frames that is kept
    (``keep_to=None``: up to its last frame)."""

    start: int
    end: int
    keep_from: int
    keep_to: Optional[int]


def chunk_spans(num_samples: int, chunk: int, stride: int, frame: int) -> List[Span]:
    """Cut ``num_samples`` into overlapping chunks on the frame grid.

    Arguments
    ---------
    num_samples : int
        Length of the file.
    chunk : int
        Chunk length in samples.
    stride : int
        Context on each side of a chunk whose frames are dropped, in
        samples (the first chunk has none on the left, the last none on
        the right); ``chunk > 2 * stride``.
    frame : int
        Samples per output frame; chunk, stride and starts are rounded to
        multiples of it.

    Returns
    -------
    list of Span
        One span for a file no longer than a chunk. The last chunk ends at
        the end of the file and is a whole chunk (within a frame), so it
        keeps more than ``stride`` of left context.
    """
    chunk, stride = (chunk // frame) * frame, (stride // frame) * frame
    if stride < frame or chunk <= 2 * stride:
        raise ValueError(
            f"need chunk > 2 x stride and stride >= one frame, got chunk {chunk} and stride {stride} samples"
        )
    step = chunk - 2 * stride
    spans, start = [], 0
    while start + chunk < num_samples:
        spans.append(Span(start, start + chunk, 0 if start == 0 else stride // frame, (chunk - stride) // frame))
        start += step
    if not spans:
        return [Span(0, num_samples, 0, None)]
    kept_until = spans[-1].start + chunk - stride  # samples kept so far
    last = -(-(num_samples - chunk) // frame) * frame  # a whole chunk before the end, on the grid
    spans.append(Span(last, num_samples, (kept_until - last) // frame, None))
    return spans


def stitch_chunks(outputs: Sequence, spans: Sequence[Span], frame: int, blank_index: int = 0,
                  context: int = 3):
    """Joins the log-probabilities of overlapping chunks into those of the file.

    Each border sits at the frame, within the middle half of the kept
    strides around the nominal border (``keep_to`` of a chunk, ``keep_from``
    of the next), where the blank log-probabilities of both chunks summed
    over ``context`` frames on each side are largest (ties: the frame
    nearest the nominal border).

    Arguments
    ---------
    outputs : sequence of numpy.ndarray or torch.Tensor
        Log-probabilities [T_i, V] of each chunk (on the CPU).
    spans : sequence of Span
        The chunks, from :func:`chunk_spans`.
    frame : int
        Samples per output frame.
    blank_index : int
        Id of the CTC blank (default 0).
    context : int
        Frames on each side of a candidate border that must be blank too
        (default 3).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Log-probabilities [T, V] of the whole file, one row per frame, of
        the type of ``outputs``.

    Example
    -------
    >>> spans = chunk_spans(16000 * 30, 16000 * 20, 16000 * 4, 320)
    >>> blank = np.zeros((1500, 3), np.float32); blank[:, 1:] = -9  # 30 s of confident blanks
    >>> whole = stitch_chunks([blank[0:1000], blank[500:1500]], spans, 320)
    >>> whole.shape
    (1500, 3)
    """
    arrays = [np.asarray(out) for out in outputs]  # torch CPU tensors: views of the same memory
    pieces, begin = [], 0  # begin: first frame of the file not yet taken
    for i, (span, out) in enumerate(zip(spans, arrays)):
        offset = span.start // frame
        if i + 1 == len(spans):
            pieces.append(out[begin - offset:])
            break
        after, after_offset = arrays[i + 1], spans[i + 1].start // frame
        nominal = offset + span.keep_to
        reach = max(1, min(out.shape[0] - span.keep_to, spans[i + 1].keep_from) // 2)  # half the strides
        low = max(nominal - reach, after_offset + context, begin + 1)
        high = min(nominal + reach, offset + out.shape[0] - context - 1, after_offset + after.shape[0] - context - 1)
        border = nominal
        if low <= high:
            # score[t]: blank log-probability of both chunks over [t - context, t + context]
            window = np.arange(low - context, high + context + 1)
            blank = out[window - offset, blank_index] + after[window - after_offset, blank_index]
            score = np.lib.stride_tricks.sliding_window_view(blank, 2 * context + 1).sum(-1)  # [high - low + 1]
            distance = np.abs(np.arange(low, high + 1) - nominal)
            border = low + int(np.argmax(score - 1e-6 * distance))
        pieces.append(out[begin - offset:border - offset])
        begin = border
    whole = np.concatenate(pieces)
    if isinstance(outputs[0], np.ndarray):
        return whole
    import torch  # the torch backend's tensors in, a tensor out

    return torch.from_numpy(whole)
