"""Subtitles people can read: SubRip (SRT) and WebVTT cues made of speech
segments and their word timestamps.

The conventions subtitle editors expect (e.g. the Netflix and BBC timed-text
guidelines): a cue holds at most two lines of at most ~42 characters and
lasts at most ~7 s and at least ~0.8 s; lines and cues break at word
boundaries; a cue never spans two speech segments (a pause ends it) and no
cue overlaps the next. Characters are counted as they take space on screen:
Devanagari's non-spacing signs (virama, anusvara, u/uu signs...) and
ZWJ/ZWNJ do not count.

Example
-------
>>> from speechbrain_w2vbert.inference.results import Segment, Word
>>> words = [Word("नमस्ते", 0.5, 1.1), Word("साथी", 1.2, 1.6, confidence=0.3)]
>>> cues = subtitle_cues([Segment(0.4, 1.8, "नमस्ते साथी", words)], mark_below=0.5)
>>> print(to_srt(cues))
1
00:00:00,500 --> 00:00:01,600
नमस्ते <i>साथी</i>
<BLANKLINE>
>>> print(to_vtt(cues))
WEBVTT
<BLANKLINE>
1
00:00:00.500 --> 00:00:01.600
नमस्ते <i>साथी</i>
<BLANKLINE>

Authors: speechbrain-w2vbert contributors
"""

import unicodedata
from dataclasses import dataclass
from typing import List, Optional, Sequence

from speechbrain_w2vbert.inference.results import Segment, Word

__all__ = ["Cue", "display_length", "subtitle_cues", "to_srt", "to_vtt"]


@dataclass
class Cue:
    """One subtitle: ``start`` and ``end`` in seconds, its ``lines``."""

    start: float
    end: float
    lines: List[str]


def display_length(text: str) -> int:
    """Characters of ``text`` that take space on screen (combining
    non-spacing marks and format characters such as ZWJ do not).

    Example
    -------
    >>> len("क्षेत्र"), display_length("क्षेत्र")
    (7, 4)
    """
    return sum(unicodedata.category(c) not in ("Mn", "Me", "Cf") for c in text)


def _lines(words: Sequence[str], max_chars: int, max_lines: int) -> Optional[List[str]]:
    """``words`` on at most ``max_lines`` lines of at most ``max_chars``,
    as balanced as possible (two lines: the break that makes the longer line
    shortest); None if they do not fit (one word longer than a line fits
    alone, on its own line)."""
    one = " ".join(words)
    if display_length(one) <= max_chars or len(words) == 1:
        return [one]
    if max_lines < 2:
        return None
    best = None
    for cut in range(1, len(words)):
        first, rest = " ".join(words[:cut]), words[cut:]
        if display_length(first) > max_chars and cut > 1:
            break
        tail = _lines(rest, max_chars, max_lines - 1)
        if tail is None:
            continue
        longest = max(display_length(line) for line in [first] + tail)
        if best is None or longest < best[0]:
            best = (longest, [first] + tail)
    return None if best is None else best[1]


def _balanced_cues(words: List[Word], max_chars: int, max_lines: int, max_duration: float) -> List[List[Word]]:
    """The words of one segment in as few cues as fit, then as evenly
    filled as possible, breaking preferably at pauses (a dynamic programme
    over the break points: no one-word cue left over after full ones)."""
    if not words:
        return []
    most = max_chars * max_lines // 2 + 1  # words a cue can hold at most (one character and a space each)
    best = [(0, 0.0, 0)] + [None] * len(words)  # (cues, badness, start of the last cue) of words[:j]
    for j in range(1, len(words) + 1):
        for i in range(max(0, j - most), j):
            cue = words[i:j]
            if best[i] is None or (j - i > 1 and (cue[-1].end - cue[0].start > max_duration
                                               or _lines([w.word for w in cue], max_chars, max_lines) is None)):
                continue
            fill = display_length(" ".join(w.word for w in cue)) / (max_chars * max_lines)
            pause = words[j].start - words[j - 1].end if j < len(words) else 1.0
            candidate = (best[i][0] + 1, best[i][1] + (1.0 - min(fill, 1.0)) ** 2 - 0.1 * min(pause, 1.0), i)
            if best[j] is None or candidate[:2] < best[j][:2]:
                best[j] = candidate
    cues, j = [], len(words)
    while j > 0:
        i = best[j][2]
        cues.append(words[i:j])
        j = i
    return cues[::-1]


def _mark(word: Word, mark_below: Optional[float]) -> str:
    if mark_below is not None and word.confidence is not None and word.confidence < mark_below:
        return f"<i>{word.word}</i>"
    return word.word


def subtitle_cues(segments: Sequence[Segment], max_chars: int = 42, max_lines: int = 2, max_duration: float = 7.0,
                  min_duration: float = 0.8, mark_below: Optional[float] = None) -> List[Cue]:
    """Cues of speech segments, split at word boundaries: as few cues per
    segment as the limits allow, as evenly filled as possible, breaking
    preferably at pauses between words.

    Arguments
    ---------
    segments : sequence of Segment
        With their words (what the transcriber returns with word times);
        segments without words give no cue.
    max_chars : int
        Most characters on a line (on-screen characters, see
        :func:`display_length`); a longer word gets a line of its own.
    max_lines : int
        Most lines per cue.
    max_duration : float
        Most seconds per cue (a single longer word is one cue).
    min_duration : float
        A shorter cue is lengthened to this many seconds where the next cue
        leaves room (never past the next cue's start or its segment's end).
    mark_below : float, optional
        Words whose confidence is below this are in italics (``<i>``),
        which SRT and WebVTT players show.

    Returns
    -------
    list of Cue
        In time order; a cue ends no later than the next one starts.
    """
    groups = []  # (segment, words of one cue)
    for segment in segments:
        for words in _balanced_cues(list(segment.words or []), max_chars, max_lines, max_duration):
            groups.append((segment, words))
    cues = []
    for i, (segment, words) in enumerate(groups):
        start, end = words[0].start, words[-1].end
        if end - start < min_duration:
            limit = segment.end
            if i + 1 < len(groups):
                limit = min(limit, groups[i + 1][1][0].start)
            end = max(end, min(start + min_duration, limit))
        plain = _lines([w.word for w in words], max_chars, max_lines)
        marked, lines, k = [_mark(w, mark_below) for w in words], [], 0
        for line in plain:
            n = len(line.split(" "))
            lines.append(" ".join(marked[k:k + n]))
            k += n
        cues.append(Cue(start, end, lines))
    return cues


def _time(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_blocks(cues: Sequence[Cue], separator: str) -> str:
    return "\n".join(f"{n}\n{_time(c.start, separator)} --> {_time(c.end, separator)}\n" + "\n".join(c.lines) + "\n"
                     for n, c in enumerate(cues, start=1))


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip text of cues (numbered from 1, ``HH:MM:SS,mmm`` times)."""
    return _cue_blocks(cues, ",")


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT text of cues (``WEBVTT`` header, ``HH:MM:SS.mmm`` times)."""
    return "WEBVTT\n\n" + _cue_blocks(cues, ".")
