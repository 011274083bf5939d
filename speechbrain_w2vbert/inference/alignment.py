"""Forced alignment of a known transcript to CTC log-probabilities, with
``torchaudio.functional.forced_align`` (the Viterbi path through the CTC
topology of the transcript's tokens).

A path gives every token, hence every character and word, its frames; the
posterior of the path's token on those frames is its alignment score (the
same measure as the word confidences of :mod:`speechbrain_w2vbert.inference.timestamps`).
A long recording is aligned segment by segment: each speech segment's
greedy transcript is matched to the known transcript character by character
(:func:`split_transcript`), which gives each segment its words, and each
segment is aligned alone (one forced alignment over an hour of audio would
need a trellis of frames x tokens, tens of GB).

Example
-------
>>> import torch
>>> log_probs = torch.full((8, 4), -9.0)
>>> log_probs[[0, 3, 4, 7], 0] = 0.0; log_probs[[1, 2], 2] = 0.0; log_probs[[5, 6], 3] = 0.0
>>> path, probs = align_ids(log_probs, [2, 3])
>>> path
[0, 2, 2, 0, 0, 3, 3, 0]

Authors: speechbrain-w2vbert contributors
"""

from typing import List, Sequence, Tuple

import torch

from speechbrain_w2vbert.inference.results import Word
from speechbrain_w2vbert.models.ctc import ctc_min_frames

#: Most cells of a forced-alignment trellis (frames x (2 x tokens + 1));
#: torchaudio keeps one byte per cell.
MAX_TRELLIS = 2 ** 31

__all__ = ["MAX_TRELLIS", "AlignmentError", "align_ids", "transcript_ids", "split_transcript", "to_textgrid"]


class AlignmentError(ValueError):
    """A transcript that cannot be aligned (empty, characters the model
    cannot write, too long for its audio)."""


def transcript_ids(tokenizer, text: str) -> List[int]:
    """Token ids of a normalised transcript for alignment.

    Raises
    ------
    AlignmentError
        The transcript is empty, or holds characters outside the model's
        vocabulary (named, with their code points).

    Example
    -------
    >>> from speechbrain_w2vbert.text.tokenizer import CharTokenizer
    >>> tok = CharTokenizer({"[PAD]": 0, "[UNK]": 1, "|": 2, "क": 3, "ख": 4})
    >>> transcript_ids(tok, "कख क")
    [3, 4, 2, 3]
    >>> transcript_ids(tok, "कग x")
    Traceback (most recent call last):
    ...
    speechbrain_w2vbert.inference.alignment.AlignmentError: characters outside the model's vocabulary: 'ग' (U+0917), 'x' (U+0078)
    """
    if not text.strip():
        raise AlignmentError("empty transcript (nothing left after normalisation)")
    unknown = [c for c in dict.fromkeys(text) if c != " " and tokenizer.unk_index in tokenizer.encode(c)]
    if unknown:
        named = ", ".join(f"'{c}' (U+{ord(c):04X})" for c in unknown)
        raise AlignmentError(f"characters outside the model's vocabulary: {named}")
    return tokenizer.encode(text)


def align_ids(log_probs: torch.Tensor, ids: Sequence[int], blank_index: int = 0,
              seconds_per_frame: float = 0.02) -> Tuple[List[int], List[float]]:
    """The CTC path of ``ids`` through ``log_probs`` that scores highest.

    Arguments
    ---------
    log_probs : torch.Tensor
        [T, V] log-probabilities of one utterance.
    ids : sequence of int
        Token ids of its transcript (no blanks).
    blank_index : int
        Id of the CTC blank (default 0).
    seconds_per_frame : float
        Frame period, for the error message (default 0.02).

    Returns
    -------
    path : list of int
        The id of every frame (``blank_index`` between tokens).
    probs : list of float
        The posterior of that id at every frame.

    Raises
    ------
    AlignmentError
        More tokens (a blank needed between repeated ones) than frames, or a
        trellis larger than :data:`MAX_TRELLIS` cells (segment the audio).
    """
    ids = list(ids)
    if not ids:
        raise AlignmentError("empty transcript")
    needed = int(ctc_min_frames(torch.tensor([ids]), torch.tensor([len(ids)]))[0])
    frames = log_probs.shape[0]
    if needed > frames:
        raise AlignmentError(
            f"transcript too long for the audio: its {len(ids)} tokens need at least {needed} frames "
            f"({needed * seconds_per_frame:.2f} s), the audio has {frames} ({frames * seconds_per_frame:.2f} s)")
    cells = frames * (2 * len(ids) + 1)
    if cells > MAX_TRELLIS:
        raise AlignmentError(
            f"too long to align in one piece: {frames * seconds_per_frame:.0f} s and {len(ids)} tokens need "
            f"{cells / 1e9:.1f} GB of trellis (at most {MAX_TRELLIS / 1e9:.1f}); segment the audio at pauses "
            "(--segment vad)")
    from torchaudio.functional import forced_align

    path, scores = forced_align(log_probs[None].float().cpu(), torch.tensor([ids], dtype=torch.int32),
                                blank=blank_index)
    return path[0].tolist(), scores[0].exp().tolist()


def _prefix_distances(hypothesis: str, text: str):
    """Edit distance between ``hypothesis`` and every prefix of ``text``:
    ``[d(hyp, text[:0]), ..., d(hyp, text)]`` (one vectorised DP row per
    hypothesis character; insertions along a row by a running minimum)."""
    import numpy as np

    chars = np.array([ord(c) for c in text], dtype=np.int64)
    steps = np.arange(len(text) + 1)
    row = steps.copy()  # distance of the empty hypothesis to each prefix
    for c in hypothesis:
        base = np.empty_like(row)
        base[0] = row[0] + 1
        base[1:] = np.minimum(row[1:] + 1, row[:-1] + (chars != ord(c)))
        row = np.minimum.accumulate(base - steps) + steps
    return row


def split_transcript(words: Sequence[str], hypotheses: Sequence[str]) -> List[List[str]]:
    """Shares a transcript's words among segments, in order, by matching
    each segment's recognised text to the transcript.

    Segment by segment, the next words of the transcript whose characters
    are nearest (edit distance) to the segment's text are its share: a
    semi-global alignment that starts where the previous share ended and
    may end after any word, within a window of twice the text's length, so
    that the cost is linear in the recording's length and repeated sentences
    cannot pull a share elsewhere. The last segment takes the words left.

    Arguments
    ---------
    words : sequence of str
        The known transcript's words.
    hypotheses : sequence of str
        Each segment's recognised text.

    Returns
    -------
    list of list of str
        The words of each segment (possibly none).

    Example
    -------
    >>> split_transcript(["राम", "घर", "गयो", "भात", "खायो"], ["राम घर गय", "भत खयो"])
    [['राम', 'घर', 'गयो'], ['भात', 'खायो']]
    """
    parts: List[List[str]] = []
    first = 0  # index of the first word not yet shared out
    for k, hypothesis in enumerate(hypotheses):
        hypothesis = " ".join(hypothesis.split())
        if k + 1 == len(hypotheses):
            parts.append(list(words[first:]))
            break
        if not hypothesis:
            parts.append([])
            continue
        ends, length = [0], 0  # character ends of the next words (each with the space after it)
        for word in words[first:]:
            if length > 2 * len(hypothesis) + 20:
                break
            length += len(word) + 1
            ends.append(length - 1)
        text = " ".join(words[first:first + len(ends) - 1])
        distances = _prefix_distances(hypothesis, text)
        # the nearest word end; ties: the share whose length is nearest the text's
        count = min(range(len(ends)), key=lambda n: (distances[ends[n]], abs(ends[n] - len(hypothesis))))
        parts.append(list(words[first:first + count]))
        first += count
    return parts


def _tier(name: str, items: Sequence[Tuple[str, float, float]], duration: float) -> List[str]:
    """Lines of one IntervalTier: the items' intervals, gaps as empty ones."""
    intervals, time = [], 0.0
    for text, start, end in items:
        start, end = max(start, time), min(max(end, start), duration)
        if start > time:
            intervals.append(("", time, start))
        if end > start:
            intervals.append((text, start, end))
            time = end
    if time < duration or not intervals:
        intervals.append(("", time, duration))
    lines = ["    item [%d]:", '        class = "IntervalTier" ', f'        name = "{name}" ', "        xmin = 0 ",
             f"        xmax = {duration} ", f"        intervals: size = {len(intervals)} "]
    for k, (text, start, end) in enumerate(intervals, start=1):
        quoted = text.replace('"', '""')
        lines += [f"        intervals [{k}]:", f"            xmin = {start} ", f"            xmax = {end} ",
                  f'            text = "{quoted}" ']
    return lines


def to_textgrid(words: Sequence[Word], duration: float) -> str:
    """A Praat TextGrid (long text format) of aligned words: tiers ``words``
    and ``chars`` (when the words have ``chars``), gaps as empty intervals.

    Example
    -------
    >>> grid = to_textgrid([Word("घर", 0.1, 0.4)], duration=0.5)
    >>> print(grid.splitlines()[0]); print(grid.count("intervals ["))
    File type = "ooTextFile"
    3
    """
    tiers = [("words", [(w.word, w.start, w.end) for w in words])]
    if words and all(w.chars is not None for w in words):
        tiers.append(("chars", [(c.char, c.start, c.end) for w in words for c in w.chars]))
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0 ", f"xmax = {duration} ",
             "tiers? <exists> ", f"size = {len(tiers)} ", "item []: "]
    for number, (name, items) in enumerate(tiers, start=1):
        tier = _tier(name, items, duration)
        tier[0] = tier[0] % number
        lines += tier
    return "\n".join(lines) + "\n"
