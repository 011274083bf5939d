"""Word start and end times from greedy CTC frames, and SRT subtitles.

Example
-------
>>> words = word_timestamps([0, 5, 5, 0, 6, 2, 2, 7, 0, 0], ["", "[UNK]", "|", "क", "ख", "र", "म", "घ"],
...                         seconds_per_frame=0.02)
>>> words
[{'word': 'रम', 'start': 0.02, 'end': 0.1}, {'word': 'घ', 'start': 0.14, 'end': 0.16}]
>>> print(to_srt(words))
1
00:00:00,020 --> 00:00:00,100
रम
<BLANKLINE>
2
00:00:00,140 --> 00:00:00,160
घ
<BLANKLINE>

Authors: speechbrain-w2vbert contributors
"""

from itertools import groupby
from typing import Dict, List, Sequence, Tuple

__all__ = ["token_strings", "word_timestamps", "word_times", "to_srt"]


def token_strings(tokenizer) -> List[str]:
    """Text of each id for word timestamps: ``""`` for the blank, ``"|"``
    before a new word; SentencePiece pieces with ``▁`` as ``"|"`` + piece."""
    tokens = ["" if i == tokenizer.blank_index else t for i, t in enumerate(tokenizer.tokens)]
    return ["|" + t[1:] if t.startswith("\u2581") else t for t in tokens]  # SentencePiece word starts


def word_timestamps(frame_ids: Sequence[int], tokens: Sequence[str], seconds_per_frame: float,
                    offset: float = 0.0) -> List[Dict]:
    """Words with start and end times from greedy CTC frame ids.

    A token starts at the first frame of its run of repeated ids and ends
    after its last; a word runs from its first token's start to its last
    token's end; ``|`` (or a SentencePiece ``▁``) separates words.

    Arguments
    ---------
    frame_ids : sequence of int
        Argmax id of every frame.
    tokens : sequence of str
        :func:`token_strings` of the tokenizer.
    seconds_per_frame : float
        Frame period (0.02 for w2v-BERT 2.0 without adapter).
    offset : float
        Time of frame 0, in seconds.

    Returns
    -------
    list of dict
        ``{"word", "start", "end"}``, times in seconds rounded to 1 ms.
    """
    words, current, frame = [], None, 0
    for token_id, run in groupby(frame_ids):
        length = len(list(run))
        text = tokens[token_id]
        if text:
            if text.startswith("|"):
                current, text = None, text[1:]
            if text and current is None:
                current = {"word": "", "start": frame, "end": frame}
                words.append(current)
            if current is not None:
                current["word"] += text
                current["end"] = frame + length
        frame += length
    return word_times([(w["word"], w["start"], w["end"]) for w in words], seconds_per_frame, offset)


def word_times(spans: Sequence[Tuple[str, int, int]], seconds_per_frame: float, offset: float = 0.0) -> List[Dict]:
    """``{"word", "start", "end"}`` dicts of words' frame spans
    ``(word, first frame, frame after the last)``, in seconds rounded to 1 ms
    (what :func:`word_timestamps` returns, and the CLI's beam search).

    Example
    -------
    >>> word_times([("राम", 0, 12), ("घर", 15, 30)], 0.02)
    [{'word': 'राम', 'start': 0.0, 'end': 0.24}, {'word': 'घर', 'start': 0.3, 'end': 0.6}]
    """
    return [{"word": word, "start": round(offset + start * seconds_per_frame, 3),
             "end": round(offset + end * seconds_per_frame, 3)} for word, start, end in spans]


def _srt_time(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def to_srt(words: Sequence[Dict], words_per_cue: int = 1) -> str:
    """SubRip subtitles: one cue per ``words_per_cue`` words."""
    cues = []
    for n, i in enumerate(range(0, len(words), words_per_cue), start=1):
        group = words[i:i + words_per_cue]
        text = " ".join(w["word"] for w in group)
        cues.append(f"{n}\n{_srt_time(group[0]['start'])} --> {_srt_time(group[-1]['end'])}\n{text}\n")
    return "\n".join(cues)
