"""What transcription and alignment return: :class:`Word` (with its
:class:`Char` tokens), :class:`Segment`, :class:`Transcript` and
:class:`Alignment`, each with one JSON form (``to_json`` / ``from_json``)
that the CLI, the Python API, the scripts and the service all write.

Times are in seconds from the start of the recording, rounded to 1 ms;
a confidence is the mean posterior of the decoded (or aligned) tokens on
their frames, in [0, 1] (see docs/design.md#word-confidences). Optional
fields are left out of the JSON when they are None.

Nothing here needs torch.

Example
-------
>>> word = Word("घर", 0.5, 0.74, confidence=0.91)
>>> transcript = Transcript("घर", 1.2, [Segment(0.0, 1.2, "घर", [word])])
>>> transcript.to_json()
{'text': 'घर', 'duration': 1.2, 'words': [{'word': 'घर', 'start': 0.5, 'end': 0.74, 'confidence': 0.91}], 'segments': [{'start': 0.0, 'end': 1.2, 'text': 'घर', 'words': [{'word': 'घर', 'start': 0.5, 'end': 0.74, 'confidence': 0.91}]}]}
>>> Transcript.from_json(transcript.to_json()) == transcript
True

Authors: speechbrain-w2vbert contributors
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

__all__ = ["Char", "Word", "Segment", "Transcript", "Alignment"]


def _without_none(items) -> Dict:
    return {key: value for key, value in items if value is not None}


@dataclass
class Char:
    """One token of a word (a character, or a SentencePiece piece) with its times."""

    char: str
    start: float
    end: float
    confidence: Optional[float] = None

    def to_json(self) -> Dict:
        """``{"char", "start", "end"[, "confidence"]}``."""
        return _without_none(vars(self).items())

    @classmethod
    def from_json(cls, data: Dict) -> "Char":
        """The inverse of :meth:`to_json`."""
        return cls(data["char"], data["start"], data["end"], data.get("confidence"))


@dataclass
class Word:
    """A word with its start and end, its confidence and (forced alignment)
    its tokens."""

    word: str
    start: float
    end: float
    confidence: Optional[float] = None
    chars: Optional[List[Char]] = None

    def to_json(self) -> Dict:
        """``{"word", "start", "end"[, "confidence"][, "chars"]}``."""
        chars = None if self.chars is None else [c.to_json() for c in self.chars]
        return _without_none([("word", self.word), ("start", self.start), ("end", self.end),
                              ("confidence", self.confidence), ("chars", chars)])

    @classmethod
    def from_json(cls, data: Dict) -> "Word":
        """The inverse of :meth:`to_json`."""
        chars = data.get("chars")
        return cls(data["word"], data["start"], data["end"], data.get("confidence"),
                   None if chars is None else [Char.from_json(c) for c in chars])


@dataclass
class Segment:
    """A stretch of a recording decoded (or aligned) on its own: a speech
    segment between pauses, or the whole of a short file; ``words`` when
    word times were asked for (None otherwise)."""

    start: float
    end: float
    text: str
    words: Optional[List[Word]] = None

    def to_json(self) -> Dict:
        """``{"start", "end", "text"[, "words"]}``."""
        words = None if self.words is None else [w.to_json() for w in self.words]
        return _without_none([("start", self.start), ("end", self.end), ("text", self.text), ("words", words)])

    @classmethod
    def from_json(cls, data: Dict) -> "Segment":
        """The inverse of :meth:`to_json`."""
        words = data.get("words")
        return cls(data["start"], data["end"], data["text"], None if words is None else
                   [Word.from_json(w) for w in words])


@dataclass
class Transcript:
    """The transcription of one recording: its text (the segments' texts
    joined by spaces), its duration and its segments; :attr:`words` are the
    segments' words, in order."""

    text: str
    duration: float
    segments: List[Segment] = field(default_factory=list)

    @property
    def words(self) -> Optional[List[Word]]:
        """All words of the segments, in order (None without word times)."""
        if any(s.words is None for s in self.segments):
            return None
        return [w for s in self.segments for w in s.words]

    def to_json(self) -> Dict:
        """``{"text", "duration"[, "words"], "segments"}``."""
        words = self.words
        return _without_none([("text", self.text), ("duration", self.duration),
                              ("words", None if words is None else [w.to_json() for w in words]),
                              ("segments", [s.to_json() for s in self.segments])])

    @classmethod
    def from_json(cls, data: Dict) -> "Transcript":
        """The inverse of :meth:`to_json` (the words are read from the segments)."""
        return cls(data["text"], data["duration"], [Segment.from_json(s) for s in data.get("segments", [])])


@dataclass
class Alignment(Transcript):
    """A known transcript aligned to a recording: every word with its
    tokens (``chars``), times and confidences; :attr:`confidence` is the
    mean of the words'."""

    @property
    def confidence(self) -> Optional[float]:
        """Mean confidence of the words (None without words)."""
        words = [w for w in self.words or [] if w.confidence is not None]
        return round(sum(w.confidence for w in words) / len(words), 4) if words else None

    def to_json(self) -> Dict:
        """``{"text", "duration", "confidence", "words", "segments"}``."""
        data = super().to_json()
        return {"text": data["text"], "duration": data["duration"], "confidence": self.confidence,
                **{k: v for k, v in data.items() if k not in ("text", "duration")}}
