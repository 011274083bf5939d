"""Word and character error counts of transcripts against references, as
the recipe scores them (SpeechBrain's edit distance; characters counted
with the spaces between words).

Authors: speechbrain-w2vbert contributors
"""

from collections import Counter
from typing import Dict, Sequence

__all__ = ["error_counts"]


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
