"""Scoring transcripts against references: the one rule that every reported
WER and CER of the project follows, and the counts behind them
(SpeechBrain's edit distance and ``ErrorRateStats``).

The rule (:class:`ScoringRule`):

- hypothesis and reference get the same normalisation,
  :func:`~speechbrain_w2vbert.text.normalize.normalize_nepali` (format
  characters removed, NFC, punctuation and danda to spaces, spaces
  collapsed, Latin lower-cased), so neither side is favoured;
- digits are scored as written: numbers are never spelled out; with
  ``digits="devanagari"`` (the default) ASCII ``0-9`` are mapped to ``०-९``
  on both sides (one way only), so ``2`` and ``२`` are the same word;
  ``digits="distinct"`` keeps the two scripts apart;
- WER counts whitespace-separated words; CER counts characters with the
  spaces between words (``ErrorRateStats(split_tokens=True)``).

Authors: speechbrain-w2vbert contributors
"""

import os
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

from speechbrain_w2vbert.text.normalize import normalize_nepali

__all__ = ["DIGIT_RULES", "ScoringRule", "error_counts", "stats_figures", "write_alignments"]

#: Values of :attr:`ScoringRule.digits`.
DIGIT_RULES = ("devanagari", "distinct")


@dataclass(frozen=True)
class ScoringRule:
    """How hypotheses and references are compared (see the module doc).

    Arguments
    ---------
    digits : str
        ``devanagari`` (default): ASCII digits are scored as the Devanagari
        digits they stand for, on both sides; ``distinct``: ``2`` and ``२``
        are different characters.

    Example
    -------
    >>> rule = ScoringRule()
    >>> rule.normalize("म 2 वटा किताब किन्छु।")
    'म २ वटा किताब किन्छु'
    >>> ScoringRule("distinct").normalize("म 2 वटा")
    'म 2 वटा'
    >>> wer, cer = rule.score(["a"], ["म २ वटा"], ["म 2 वटा।"])
    >>> wer.summarize("error_rate"), cer.summarize("error_rate")
    (0.0, 0.0)
    """

    digits: str = "devanagari"

    def __post_init__(self):
        if self.digits not in DIGIT_RULES:
            raise ValueError(f"digits must be one of {DIGIT_RULES}, got {self.digits!r}")

    def normalize(self, text: str) -> str:
        """``text`` as it is scored (hypothesis and reference alike)."""
        return normalize_nepali(text, ascii_digits_to_devanagari=self.digits == "devanagari")

    def describe(self) -> str:
        """The rule in one sentence, for result tables and model cards."""
        digits = ("ASCII digits scored as the Devanagari digits they stand for (2 = २), numbers as written"
                  if self.digits == "devanagari" else "digits as written, ASCII and Devanagari digits distinct")
        return ("Hypotheses and references normalised alike (normalize_nepali: punctuation and danda removed, "
                f"NFC, spaces collapsed); {digits}; WER over words, CER over characters with the spaces "
                "between words (SpeechBrain's ErrorRateStats).")

    def score(self, ids: Sequence[str], hyps: Sequence[str], refs: Sequence[str]):
        """Word and character error statistics of hypotheses against references.

        Arguments
        ---------
        ids : sequence of str
            Utterance ids (unique), for the per-utterance alignments.
        hyps, refs : sequence of str
            Transcripts, as decoded and as written (normalised here).

        Returns
        -------
        wer, cer : speechbrain.utils.metric_stats.ErrorRateStats
            Words; characters (``split_tokens=True``). ``summarize()`` gives
            the figures, ``write_stats`` the alignments.
        """
        from speechbrain.utils.metric_stats import ErrorRateStats

        if not len(ids) == len(hyps) == len(refs):
            raise ValueError(f"{len(ids)} ids, {len(hyps)} hypotheses and {len(refs)} references")
        hyp_words = [self.normalize(h).split() for h in hyps]
        ref_words = [self.normalize(r).split() for r in refs]
        wer, cer = ErrorRateStats(), ErrorRateStats(split_tokens=True)
        if ids:
            for stats in (wer, cer):
                stats.append(list(ids), hyp_words, ref_words)
        return wer, cer


def stats_figures(wer, cer) -> Dict[str, float]:
    """The figures of :meth:`ScoringRule.score`'s statistics: ``WER`` and
    ``CER`` (percent) with the edit and reference counts behind them.

    Example
    -------
    >>> stats_figures(*ScoringRule().score(["a"], ["क ख"], ["क ग"]))
    {'WER': 50.0, 'CER': 33.333333333333336, 'word_errors': 1, 'words': 2, 'char_errors': 1, 'chars': 3}
    """
    def counts(stats) -> Tuple[int, int]:
        """(edits, reference tokens); none scored: (0, 0)."""
        if not stats.scores:
            return 0, 0
        summary = stats.summarize()
        return int(summary["num_edits"]), int(summary["num_scored_tokens"])

    (word_errors, words), (char_errors, chars) = counts(wer), counts(cer)
    return {"WER": 100.0 * word_errors / words if words else 0.0,
            "CER": 100.0 * char_errors / chars if chars else 0.0,
            "word_errors": word_errors, "words": words, "char_errors": char_errors, "chars": chars}


def error_counts(hyps: Sequence[str], refs: Sequence[str]) -> Dict[str, int]:
    """Word and character edit counts of transcripts against references
    (characters with spaces, as the recipe's CER counts them), without
    normalisation (the texts are compared as given).

    Example
    -------
    >>> error_counts(["a b", "c"], ["a b d", "c"])
    {'word_errors': 1, 'words': 4, 'char_errors': 2, 'chars': 6}
    """
    from speechbrain.utils.edit_distance import accumulatable_wer_stats

    def edits(stats):
        """(edits, reference tokens) of accumulated WER statistics."""
        return int(stats["insertions"] + stats["deletions"] + stats["substitutions"]), int(stats["num_ref_tokens"])

    ref_words, hyp_words = [r.split() for r in refs], [h.split() for h in hyps]
    word_errors, words = edits(accumulatable_wer_stats(ref_words, hyp_words, Counter()))
    char_errors, chars = edits(accumulatable_wer_stats([list(" ".join(w)) for w in ref_words],
                                                       [list(" ".join(w)) for w in hyp_words], Counter()))
    return {"word_errors": word_errors, "words": words, "char_errors": char_errors, "chars": chars}


def write_alignments(path: str, cer, wer, title: str = "") -> None:
    """Write CER and WER statistics with per-utterance alignments (what
    ``ErrorRateStats.write_stats`` writes), after an optional title line;
    atomically (a reader never sees half of the file).

    Arguments
    ---------
    path : str
        The text file to write.
    cer, wer : speechbrain.utils.metric_stats.ErrorRateStats
        Character and word statistics.
    title : str
        First line (default none).

    Example
    -------
    >>> import os, tempfile
    >>> from speechbrain.utils.metric_stats import ErrorRateStats
    >>> wer, cer = ErrorRateStats(), ErrorRateStats(split_tokens=True)
    >>> for stats in (wer, cer):
    ...     stats.append(["u1"], [["a", "b"]], [["a", "c"]])
    >>> path = os.path.join(tempfile.mkdtemp(), "wer.txt")
    >>> write_alignments(path, cer, wer, "Greedy")
    >>> open(path, encoding="utf-8").read().split("\\n")[:3]
    ['Greedy', '', 'CER']
    """
    with open(path + ".tmp", "w", encoding="utf-8") as w:
        w.write(f"{title}\n\nCER\n" if title else "CER\n")
        cer.write_stats(w)
        w.write("\nWER\n")
        wer.write_stats(w)
    os.replace(path + ".tmp", path)
