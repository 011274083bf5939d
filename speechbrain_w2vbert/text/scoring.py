"""Word and character error counts of transcripts against references, as
the recipe scores them (SpeechBrain's edit distance; characters counted
with the spaces between words), and the alignment files it writes.

Authors: speechbrain-w2vbert contributors
"""

from collections import Counter
from typing import Dict, Sequence

__all__ = ["error_counts", "write_alignments"]


def error_counts(hyps: Sequence[str], refs: Sequence[str]) -> Dict[str, int]:
    """Word and character edit counts of transcripts against references
    (characters with spaces, as the recipe's CER counts them).

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
    ``ErrorRateStats.write_stats`` writes), after an optional title line.

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
    with open(path, "w", encoding="utf-8") as w:
        w.write(f"{title}\n\nCER\n" if title else "CER\n")
        cer.write_stats(w)
        w.write("\nWER\n")
        wer.write_stats(w)
