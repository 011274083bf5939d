"""Word start and end times, and confidences, from a CTC frame path (the
greedy one or a forced alignment), as :class:`~speechbrain_w2vbert.inference.results.Word`
s. Subtitles are made of them in :mod:`speechbrain_w2vbert.inference.subtitles`.

Nothing here needs torch.

Example
-------
>>> tokens = ["", "[UNK]", "|", "क", "ख", "र", "म", "घ"]
>>> word_timestamps([0, 5, 5, 0, 6, 2, 2, 7, 0, 0], tokens, seconds_per_frame=0.02)
[Word(word='रम', start=0.02, end=0.1, confidence=None, chars=None), Word(word='घ', start=0.14, end=0.16, confidence=None, chars=None)]
>>> probs = [0.9, 0.8, 0.6, 0.9, 0.4, 0.9, 0.9, 0.5, 0.9, 0.9]
>>> word_timestamps([0, 5, 5, 0, 6, 2, 2, 7, 0, 0], tokens, 0.02, frame_probs=probs)[0].confidence
0.55

Authors: speechbrain-w2vbert contributors
"""

from itertools import groupby
from typing import List, Optional, Sequence, Tuple

from speechbrain_w2vbert.inference.results import Char, Word

__all__ = ["token_strings", "token_runs", "word_timestamps", "word_times"]


def token_strings(tokenizer) -> List[str]:
    """Text of each id for word timestamps: ``""`` for the blank, ``"|"``
    before a new word; SentencePiece pieces with ``▁`` as ``"|"`` + piece."""
    tokens = ["" if i == tokenizer.blank_index else t for i, t in enumerate(tokenizer.tokens)]
    return ["|" + t[1:] if t.startswith("\u2581") else t for t in tokens]  # SentencePiece word starts


def token_runs(frame_ids: Sequence[int], frame_probs: Optional[Sequence[float]] = None) -> List[Tuple[int, int, int, float]]:
    """Runs of repeated ids of a CTC frame path: ``(id, first frame, frame
    after the last, mean of frame_probs over the run)`` (mean 1.0 without
    ``frame_probs``); blank runs included.

    Example
    -------
    >>> token_runs([0, 3, 3, 0, 4], [0.9, 0.8, 0.6, 1.0, 0.5])
    [(0, 0, 1, 0.9), (3, 1, 3, 0.7), (0, 3, 4, 1.0), (4, 4, 5, 0.5)]
    """
    runs, frame = [], 0
    for token_id, run in groupby(frame_ids):
        length = len(list(run))
        mean = 1.0 if frame_probs is None else float(sum(frame_probs[frame:frame + length])) / length
        runs.append((token_id, frame, frame + length, round(mean, 6)))
        frame += length
    return runs


def word_timestamps(frame_ids: Sequence[int], tokens: Sequence[str], seconds_per_frame: float,
                    offset: float = 0.0, frame_probs: Optional[Sequence[float]] = None,
                    characters: bool = False) -> List[Word]:
    """Words with start and end times (and confidences) from a CTC frame path.

    A token starts at the first frame of its run of repeated ids and ends
    after its last; a word runs from its first token's start to its last
    token's end; ``|`` (or a SentencePiece ``▁``) separates words. The path
    is the greedy one (argmax ids) or a forced alignment
    (:mod:`speechbrain_w2vbert.inference.alignment`).

    Arguments
    ---------
    frame_ids : sequence of int
        Id of every frame on the path.
    tokens : sequence of str
        :func:`token_strings` of the tokenizer.
    seconds_per_frame : float
        Frame period (0.02 for w2v-BERT 2.0 without adapter).
    offset : float
        Time of frame 0, in seconds.
    frame_probs : sequence of float, optional
        Posterior of the path's id at every frame; each word then gets a
        ``confidence``: the mean over its tokens of their posterior averaged
        over the token's frames (in [0, 1]).
    characters : bool
        Also give each word's tokens (:attr:`Word.chars`).

    Returns
    -------
    list of Word
        Times in seconds rounded to 1 ms, confidences to 4 decimals.
    """
    words, current = [], None
    for token_id, first, after, prob in token_runs(frame_ids, frame_probs):
        text = tokens[token_id]
        if not text:
            continue
        if text.startswith("|"):
            current, text = None, text[1:]
        if text:
            if current is None:
                current = {"word": "", "start": first, "tokens": []}
                words.append(current)
            current["word"] += text
            current["end"] = after
            current["tokens"].append((text, first, after, prob))
    results = word_times([(w["word"], w["start"], w["end"]) for w in words], seconds_per_frame, offset)
    for result, word in zip(results, words):
        if frame_probs is not None:
            result.confidence = round(sum(t[3] for t in word["tokens"]) / len(word["tokens"]), 4)
        if characters:
            times = word_times([t[:3] for t in word["tokens"]], seconds_per_frame, offset)
            result.chars = [Char(t.word, t.start, t.end, None if frame_probs is None else round(token[3], 4))
                            for t, token in zip(times, word["tokens"])]
    return results


def word_times(spans: Sequence[Tuple[str, int, int]], seconds_per_frame: float, offset: float = 0.0) -> List[Word]:
    """:class:`Word` s of words' frame spans ``(word, first frame, frame after
    the last)``, in seconds rounded to 1 ms (what :func:`word_timestamps`
    returns, and the times of the beam search's words).

    Example
    -------
    >>> [(w.word, w.start, w.end) for w in word_times([("राम", 0, 12), ("घर", 15, 30)], 0.02)]
    [('राम', 0.0, 0.24), ('घर', 0.3, 0.6)]
    """
    return [Word(word, round(offset + start * seconds_per_frame, 3), round(offset + end * seconds_per_frame, 3))
            for word, start, end in spans]
