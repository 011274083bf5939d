"""Transcripts and alignments in the service's response formats.

Transcriptions, as OpenAI's ``/v1/audio/transcriptions`` answers them:
``json`` (``{"text", "usage"}``), ``text``, ``srt``, ``vtt`` and
``verbose_json``: ``task``, ``language``, ``duration``, ``text``, ``usage``,
and with the timestamp granularities asked for (``segment`` when none is)
``segments`` and ``words``. A segment is one stretch the model decoded on
its own (a speech segment between pauses, or a whole short file); OpenAI's
Whisper-specific fields get the nearest meaning a CTC model has:

- ``id``: its index; ``seek``: its start in centiseconds (Whisper's frame
  offset unit); ``temperature``: 0.0 (decoding is deterministic);
- ``tokens``: [] (a CTC model has no token stream to continue from);
- ``avg_logprob``: the natural log of the mean confidence of its words
  (the CTC posteriors of their tokens), 0.0 without words;
- ``compression_ratio``: its UTF-8 text's length over its zlib-compressed
  length, as Whisper computes it (repetitive text scores high);
- ``no_speech_prob``: 1.0 when nothing was recognised in it, else 0.0.

Words are ``{"word", "start", "end", "confidence"}``: OpenAI's fields
plus this model's confidence in [0, 1].

Alignments (the ``/v1/audio/alignments`` extension) come in the forms of
``w2vbert-asr align``: ``json`` (the JSON form of
:class:`~speechbrain_w2vbert.inference.results.Alignment`), ``srt``,
``vtt`` and ``textgrid``.

Example
-------
>>> from speechbrain_w2vbert.inference.results import Segment, Transcript, Word
>>> t = Transcript("घर", 1.2, [Segment(0.0, 1.2, "घर", [Word("घर", 0.5, 0.74, confidence=0.91)])])
>>> verbose_json(t, "nepali", ["word"])["words"]
[{'word': 'घर', 'start': 0.5, 'end': 0.74, 'confidence': 0.91}]
>>> print(transcription_body(t, "srt", "nepali", ()))
1
00:00:00,500 --> 00:00:01,200
घर
<BLANKLINE>

Authors: speechbrain-w2vbert contributors
"""

import math
import zlib
from typing import Dict, Sequence, Union

from speechbrain_w2vbert.inference.alignment import to_textgrid
from speechbrain_w2vbert.inference.results import Alignment, Segment, Transcript
from speechbrain_w2vbert.inference.subtitles import subtitle_cues, to_srt, to_vtt

__all__ = ["TRANSCRIPTION_FORMATS", "ALIGNMENT_FORMATS", "MEDIA_TYPES", "segment_json", "verbose_json",
           "transcription_body", "alignment_body"]

TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
ALIGNMENT_FORMATS = ("json", "srt", "vtt", "textgrid")
#: The response's media type of each format.
MEDIA_TYPES = {"json": "application/json", "verbose_json": "application/json", "text": "text/plain; charset=utf-8",
               "srt": "application/x-subrip; charset=utf-8", "vtt": "text/vtt; charset=utf-8",
               "textgrid": "text/plain; charset=utf-8"}


def compression_ratio(text: str) -> float:
    """Whisper's compression ratio: UTF-8 bytes over zlib-compressed bytes
    (0.0 for no text).

    Example
    -------
    >>> compression_ratio("क ख " * 50) > 2.4 > compression_ratio("राम घर गयो")
    True
    """
    data = text.encode("utf-8")
    return round(len(data) / len(zlib.compress(data)), 4) if data else 0.0


def segment_json(index: int, segment: Segment) -> Dict:
    """One segment in OpenAI's ``TranscriptionSegment`` fields (see the module doc)."""
    confidences = [w.confidence for w in segment.words or [] if w.confidence is not None]
    mean = sum(confidences) / len(confidences) if confidences else None
    return {"id": index, "seek": int(round(segment.start * 100)), "start": segment.start, "end": segment.end,
            "text": segment.text, "tokens": [], "temperature": 0.0,
            "avg_logprob": round(math.log(max(mean, 1e-10)), 4) if mean is not None else 0.0,
            "compression_ratio": compression_ratio(segment.text),
            "no_speech_prob": 0.0 if segment.text.strip() else 1.0}


def _usage(transcript: Transcript) -> Dict:
    return {"type": "duration", "seconds": transcript.duration}


def verbose_json(transcript: Transcript, language: str, granularities: Sequence[str]) -> Dict:
    """The ``verbose_json`` body: segments with ``segment`` (or no
    granularity), words with ``word``."""
    body = {"task": "transcribe", "language": language, "duration": transcript.duration, "text": transcript.text,
            "usage": _usage(transcript)}
    if "segment" in granularities or not granularities:
        body["segments"] = [segment_json(i, s) for i, s in enumerate(transcript.segments)]
    if "word" in granularities:
        body["words"] = [{"word": w.word, "start": w.start, "end": w.end, "confidence": w.confidence}
                         for w in transcript.words or []]
    return body


def transcription_body(transcript: Transcript, fmt: str, language: str,
                       granularities: Sequence[str]) -> Union[Dict, str]:
    """The response body of ``fmt`` (a dict for the JSON formats)."""
    if fmt == "json":
        return {"text": transcript.text, "usage": _usage(transcript)}
    if fmt == "verbose_json":
        return verbose_json(transcript, language, granularities)
    if fmt == "text":
        return transcript.text + "\n"
    cues = subtitle_cues(transcript.segments)
    return to_srt(cues) if fmt == "srt" else to_vtt(cues)


def alignment_body(alignment: Alignment, fmt: str) -> Union[Dict, str]:
    """The response body of an alignment in ``fmt`` (the forms of
    ``w2vbert-asr align``; a dict for ``json``)."""
    if fmt == "json":
        return alignment.to_json()
    if fmt == "textgrid":
        return to_textgrid(alignment.words, alignment.duration)
    cues = subtitle_cues(alignment.segments)
    return to_srt(cues) if fmt == "srt" else to_vtt(cues)
