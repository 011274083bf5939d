"""How much of a test set a model's training text and LM already hold: the
test sentences found verbatim in the training (or LM) text, and the test
words out of the LM's vocabulary. An LM gain on a set whose sentences the
LM was estimated from says little; an OOV rate says how much of the set the
LM cannot propose at all.

Authors: speechbrain-w2vbert contributors
"""

from typing import Callable, Dict, Iterable, Optional, Sequence

__all__ = ["text_overlap"]


def text_overlap(refs: Sequence[str], training_sentences: Optional[Iterable[str]] = None,
                 lm_words: Optional[Iterable[str]] = None,
                 normalize: Callable[[str], str] = lambda text: " ".join(text.split())) -> Dict:
    """Overlap of test references with training sentences and an LM's words.

    Every text (references, training sentences, LM words) goes through
    ``normalize`` first (the scoring's normalisation), so a sentence counts
    as seen when it would score as identical. A reference occurring several
    times counts each time.

    Arguments
    ---------
    refs : sequence of str
        The test set's reference transcripts.
    training_sentences : iterable of str, optional
        The training (and LM) text, a sentence per item; None: unknown.
    lm_words : iterable of str, optional
        The LM's vocabulary (``NgramLM.words()``); None: no LM.
    normalize : callable
        Text -> text as scored (default: whitespace collapsed).

    Returns
    -------
    dict
        ``sentences`` (references), ``in_training_text`` (of them found
        verbatim; None without training text), ``words`` (reference words),
        ``oov_words`` (of them not in ``lm_words``) and ``oov_rate`` (their
        fraction; both None without an LM).

    Example
    -------
    >>> text_overlap(["राम घर जान्छ", "सीता बजार"], ["राम घर जान्छ", "राम बजार जान्छ"], ["राम", "घर", "जान्छ", "बजार"])
    {'sentences': 2, 'in_training_text': 1, 'words': 5, 'oov_words': 1, 'oov_rate': 0.2}
    >>> text_overlap(["क ख"])["in_training_text"] is None
    True
    """
    refs = [normalize(r) for r in refs]
    words = [w for r in refs for w in r.split()]
    result: Dict = {"sentences": len(refs), "in_training_text": None, "words": len(words),
                    "oov_words": None, "oov_rate": None}
    if training_sentences is not None:
        seen = {normalize(s) for s in training_sentences}
        result["in_training_text"] = sum(r in seen for r in refs)
    if lm_words is not None:
        vocabulary = {w for word in lm_words for w in normalize(word).split()}
        oov = sum(w not in vocabulary for w in words)
        result["oov_words"] = oov
        result["oov_rate"] = oov / len(words) if words else 0.0
    return result
