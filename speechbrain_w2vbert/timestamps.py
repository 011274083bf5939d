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
from typing import Dict, List, Sequence

__all__ = ["token_strings", "word_timestamps", "to_srt"]


def token_strings(tokenizer) -> List[str]:
    """Text of each id for word timestamps: ``""`` for the blank, ``"|"``
    before a new word; SentencePiece pieces with ``▁`` as ``"|"`` + piece."""
    if hasattr(tokenizer, "tokens"):  # CharTokenizer
        return ["" if i == tokenizer.blank_index else t for i, t in enumerate(tokenizer.tokens)]
    pieces = [tokenizer.sp.id_to_piece(i) for i in range(tokenizer.sp.get_piece_size())]
    return [""] + ["|" + p[1:] if p.startswith("\u2581") else p for p in pieces]


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
    return [
        {"word": w["word"], "start": round(offset + w["start"] * seconds_per_frame, 3),
         "end": round(offset + w["end"] * seconds_per_frame, 3)}
        for w in words
    ]


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
