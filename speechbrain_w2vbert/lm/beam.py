"""CTC beam search with a word n-gram LM, hotwords, and the tuning of the
LM weight and word bonus.

:class:`LMBeamDecoder` runs SpeechBrain's own ``CTCBeamSearcher`` (KenLM
shallow fusion: ``score = log p_ctc + lm_weight * ln p_lm + word_bonus`` per
word) over the tokens of our tokenizers (``|`` is the word delimiter, id 0
the blank). Hotwords live here, in :class:`HotwordScorer`, a subclass of
SpeechBrain's ``KenlmScorer``: SpeechBrain 1.1.2's searchers have none, and
keeping them in the scorer lets the CLI, ``EncoderASR`` and the recipe use
one search. :func:`tune_lm_weights` picks the LM weight and word bonus on
dev log-probabilities computed once, the grid spread over CPU worker
processes.

Example
-------
>>> import torch
>>> tokens = ["[PAD]", "[UNK]", "|", "a", "b"]
>>> frames = torch.tensor([3, 0, 2, 4, 4, 0])  # a _ | b b _
>>> log_probs = torch.nn.functional.one_hot(frames, 5).float().clamp_min(1e-4).log()
>>> LMBeamDecoder(tokens, beam_size=10).decode([log_probs])
['a b']
"""

import hashlib
import json
import logging
import math
import multiprocessing
import os
import time
from typing import List, Optional, Sequence

import numpy as np
import torch
from pygtrie import CharTrie
from speechbrain.integrations.decoders.kenlm_scorer import KenlmScorer
from speechbrain.utils.checkpoints import mark_as_loader, register_checkpoint_hooks

from speechbrain_w2vbert.lm.ngram import LMError, NgramLM, quiet_native_stderr
from speechbrain_w2vbert.text.scoring import error_counts
from speechbrain_w2vbert.text.tokenizer import WORD_DELIMITER

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_HOTWORD_WEIGHT",
    "HotwordScorer",
    "LMBeamDecoder",
    "check_vocabulary",
    "tune_lm_weights",
]

#: Bonus (natural-log units) of a recognised hotword, pyctcdecode's default.
DEFAULT_HOTWORD_WEIGHT = 10.0


class HotwordScorer(KenlmScorer):
    """SpeechBrain's ``KenlmScorer`` with hotwords: each word of the given
    phrases earns ``hotword_weight`` (natural-log units) when the beam
    completes it (and is never penalised as unknown to the LM), and its
    prefixes a proportional share while it is being spelled, so the beam
    keeps them.

    Arguments
    ---------
    *args, **kwargs
        As for ``KenlmScorer``.
    hotwords : sequence of str
        Words or phrases (split at spaces).
    hotword_weight : float
        Bonus per hotword (default :data:`DEFAULT_HOTWORD_WEIGHT`).
    """

    def __init__(self, *args, hotwords: Sequence[str] = (), hotword_weight: float = DEFAULT_HOTWORD_WEIGHT, **kwargs):
        super().__init__(*args, **kwargs)
        self.hotwords = frozenset(word for phrase in hotwords for word in phrase.split())
        self.hotword_weight = hotword_weight
        self._hot_trie = CharTrie.fromkeys(self.hotwords)
        self._shortest = {}

    def score_partial_token(self, partial_token: str) -> float:
        """A hotword's prefix: its share of the bonus; else ``KenlmScorer``'s."""
        if partial_token and self._hot_trie.has_node(partial_token):
            if partial_token not in self._shortest:
                self._shortest[partial_token] = min(map(len, self._hot_trie.iterkeys(prefix=partial_token)))
            return self.hotword_weight * len(partial_token) / self._shortest[partial_token]
        return super().score_partial_token(partial_token)

    def score(self, prev_state, word: str, is_last_word: bool = False):
        """``KenlmScorer``'s score, plus the bonus of a hotword."""
        score, state = super().score(prev_state, word, is_last_word)
        if word in self.hotwords:
            if word not in self._unigram_set or word not in self._kenlm_model:
                score -= self.alpha * self.unk_score_offset / math.log10(math.e)
            score += self.hotword_weight
        return score, state


@register_checkpoint_hooks
class LMBeamDecoder:
    """CTC beam search (SpeechBrain's ``CTCBeamSearcher``) with an optional
    KenLM word n-gram LM and hotwords.

    The search is built on first use, so a folder's LM file can be given
    after construction (:meth:`load_lm`, the ``Pretrainer`` hook) and
    greedy users never load it.

    Arguments
    ---------
    tokens : list of str
        The token of each label id (``CharTokenizer.tokens``); ``|`` is the
        word delimiter.
    blank_index : int
        Id of the CTC blank (default 0).
    lm_path : str, optional
        ARPA (or KenLM binary) word LM; None: beam search without LM.
    beam_size : int
        Beams kept per frame (default 50).
    lm_weight : float
        LM weight (alpha), >= 0 (default 0.5).
    word_bonus : float
        Score added per word (beta), natural-log units (default 1.0).
    hotwords : sequence of str
        Words or phrases to favour (needs an LM).
    hotword_weight : float
        Bonus per hotword (default :data:`DEFAULT_HOTWORD_WEIGHT`).
    beam_prune_logp : float
        Beams this far below the best are dropped (default -10.0).
    token_prune_min_logp : float
        Tokens with a frame log-probability below this are not expanded
        (default -5.0).
    """

    def __init__(
        self,
        tokens: Sequence[str],
        blank_index: int = 0,
        lm_path: Optional[str] = None,
        beam_size: int = 50,
        lm_weight: float = 0.5,
        word_bonus: float = 1.0,
        hotwords: Sequence[str] = (),
        hotword_weight: float = DEFAULT_HOTWORD_WEIGHT,
        beam_prune_logp: float = -10.0,
        token_prune_min_logp: float = -5.0,
    ):
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        if lm_weight < 0:
            raise ValueError(f"lm_weight must be >= 0, got {lm_weight}")
        self.tokens = list(tokens)
        self.blank_index = blank_index
        self.lm_path = lm_path
        self.beam_size = beam_size
        self.lm_weight = lm_weight
        self.word_bonus = word_bonus
        self.hotwords = [h for h in hotwords if h.strip()]
        self.hotword_weight = hotword_weight
        self.beam_prune_logp = beam_prune_logp
        self.token_prune_min_logp = token_prune_min_logp
        self._searcher = None

    def __getstate__(self):  # worker processes rebuild the search (kenlm models do not pickle)
        state = dict(self.__dict__)
        state["_searcher"] = None
        return state

    @mark_as_loader
    def load_lm(self, path, end_of_epoch=False):
        """Uses the LM file at ``path`` (the ``Pretrainer``'s loader hook;
        the file is read on first decoding)."""
        del end_of_epoch
        self.lm_path = str(path)
        self._searcher = None

    @property
    def uses_lm(self) -> bool:
        """Whether an LM file is set."""
        return self.lm_path is not None

    @property
    def searcher(self):
        """The ``CTCBeamSearcher`` (built, and the LM loaded, on first use)."""
        if self._searcher is None:
            from speechbrain.decoders.ctc import CTCBeamSearcher

            if self.hotwords and not self.uses_lm:
                raise ValueError("hotwords need a language model (lm_path)")
            unigrams = None
            if self.uses_lm:
                unigrams = NgramLM(self.lm_path).words()
                check_vocabulary(unigrams, self.tokens, self.lm_path)
            try:
                with quiet_native_stderr():  # kenlm's loading progress; its errors are raised
                    searcher = CTCBeamSearcher(
                        blank_index=self.blank_index, vocab_list=self.tokens, space_token=WORD_DELIMITER,
                        kenlm_model_path=self.lm_path, unigrams=unigrams, alpha=self.lm_weight,
                        beta=self.word_bonus, beam_size=self.beam_size, beam_prune_logp=self.beam_prune_logp,
                        token_prune_min_logp=self.token_prune_min_logp,
                    )
            except (OSError, RuntimeError) as error:  # kenlm's errors on a corrupt file
                lines = str(error).strip().splitlines()
                raise LMError(f"{self.lm_path}: kenlm cannot read this language model "
                              f"({lines[0] if lines else error})") from None
            if self.hotwords:
                lm = searcher.lm
                searcher.lm = HotwordScorer(
                    kenlm_model=searcher.kenlm_model, unigrams=unigrams, alpha=lm.alpha, beta=lm.beta,
                    unk_score_offset=lm.unk_score_offset, score_boundary=lm.score_boundary,
                    hotwords=self.hotwords, hotword_weight=self.hotword_weight,
                )
            self._searcher = searcher
        return self._searcher

    def set_weights(self, lm_weight: float, word_bonus: float) -> None:
        """Changes the LM weight and word bonus without reloading the LM."""
        self.lm_weight, self.word_bonus = lm_weight, word_bonus
        if self._searcher is not None and self._searcher.lm is not None:
            self._searcher.lm.alpha, self._searcher.lm.beta = lm_weight, word_bonus

    def decode(self, log_probs: Sequence) -> List[str]:
        """Transcripts of utterances' log-probabilities.

        Arguments
        ---------
        log_probs : sequence of torch.Tensor or numpy.ndarray
            One [T_i, V] array per utterance (its valid frames).

        Returns
        -------
        list of str
        """
        return [text for text, _ in self.decode_with_words(log_probs)]

    def decode_with_words(self, log_probs: Sequence) -> List[tuple]:
        """As :meth:`decode`, with each transcript's words and their first
        and last frames: ``(text, [(word, start_frame, end_frame), ...])``."""
        searcher = self.searcher
        results = []
        for lp in log_probs:
            array = lp.detach().float().cpu().numpy() if isinstance(lp, torch.Tensor) else np.asarray(lp, np.float32)
            hyps = searcher.decode_log_probs(array, array.shape[0])
            if not hyps:
                results.append(("", []))
                continue
            results.append((hyps[0].text, [(word, int(s), int(e)) for word, (s, e) in hyps[0].text_frames]))
        return results

    def with_options(self, **options) -> "LMBeamDecoder":
        """A decoder with the same LM and some arguments changed (those
        given and not None)."""
        kwargs = {name: getattr(self, name) for name in (
            "tokens", "blank_index", "lm_path", "beam_size", "lm_weight", "word_bonus", "hotwords",
            "hotword_weight", "beam_prune_logp", "token_prune_min_logp")}
        kwargs.update({k: v for k, v in options.items() if v is not None})
        return LMBeamDecoder(**kwargs)


def check_vocabulary(words: Sequence[str], tokens: Sequence[str], lm_path: str = "the LM") -> None:
    """Raises when no word of an LM can be spelled with a character
    vocabulary's tokens (an LM for another model); warns with examples when
    some cannot. SentencePiece vocabularies (``▁`` pieces) are not checked.

    Example
    -------
    >>> check_vocabulary(["ab", "ba"], ["[PAD]", "[UNK]", "|", "a", "b"])
    >>> check_vocabulary(["xy"], ["[PAD]", "[UNK]", "|", "a", "b"], "lm.arpa")
    Traceback (most recent call last):
    ...
    speechbrain_w2vbert.lm.ngram.LMError: lm.arpa: none of its 1 words can be spelled with the model's 5 tokens (e.g. xy): an LM for another vocabulary
    """
    if any(t.startswith("\u2581") for t in tokens):
        return
    chars = {t for t in tokens if len(t) == 1}
    unfit = [w for w in words if not set(w) <= chars]
    if words and len(unfit) == len(words):
        raise LMError(f"{lm_path}: none of its {len(words)} words can be spelled with the model's {len(tokens)} "
                      f"tokens (e.g. {', '.join(unfit[:5])}): an LM for another vocabulary")
    if unfit:
        logger.warning("%s: %d of its %d words hold characters the model cannot emit (e.g. %s)", lm_path,
                       len(unfit), len(words), ", ".join(unfit[:5]))


# --------------------------------------------------------------- tuning
_WORKER = {}


def _init_worker(decoder, log_probs, refs, worker_process=True):
    if worker_process:  # one thread per worker; the calling process keeps its own setting
        torch.set_num_threads(1)
    _WORKER.update(decoder=decoder, log_probs=log_probs, refs=refs)


def _score_point(point):
    decoder = _WORKER["decoder"]
    decoder.set_weights(*point)
    start = time.perf_counter()
    hyps = decoder.decode(_WORKER["log_probs"])
    return point, error_counts(hyps, _WORKER["refs"]), time.perf_counter() - start


def tune_lm_weights(decoder: LMBeamDecoder, log_probs: Sequence[np.ndarray], refs: Sequence[str],
                    lm_weights: Sequence[float], word_bonuses: Sequence[float], workers: int = 1,
                    cache_file: Optional[str] = None, cache_key: str = "") -> dict:
    """Grid search of the LM weight and word bonus on dev log-probabilities
    (computed once, decoded at every grid point), optionally cached.

    Arguments
    ---------
    decoder : LMBeamDecoder
        With the LM; its weights are set to the best point on return.
    log_probs : sequence of numpy.ndarray
        [T_i, V] per dev utterance.
    refs : sequence of str
        Their reference transcripts.
    lm_weights, word_bonuses : sequence of float
        The grid.
    workers : int
        Worker processes (each loads the LM once); 1 runs in this process.
    cache_file : str, optional
        JSON file of the result: reused when the log-probabilities, the
        grid, the beam size and ``cache_key`` are those it was made with.
    cache_key : str
        Identifies the LM (e.g. its report's ``fingerprint``).

    Returns
    -------
    dict
        ``lm_weight``, ``word_bonus``, ``WER`` and ``CER`` (percent) of the
        best point (fewest word errors, then character errors, then the
        smaller weight and bonus), the whole ``grid``, ``utterances``,
        ``seconds`` (wall), ``decode_seconds`` (summed over points) and the
        ``fingerprint`` of its inputs.
    """
    if not decoder.uses_lm:
        raise ValueError("tune_lm_weights needs a decoder with an LM")
    points = [(float(a), float(b)) for a in lm_weights for b in word_bonuses]
    if not points or not len(log_probs):
        raise ValueError("tune_lm_weights needs a non-empty grid and at least one utterance")
    arrays = [np.ascontiguousarray(lp, np.float32) for lp in log_probs]
    digest = hashlib.sha256(json.dumps([cache_key, points, decoder.beam_size, list(refs)]).encode("utf-8"))
    for array in arrays:
        digest.update(array.tobytes())
    fingerprint = digest.hexdigest()
    if cache_file and os.path.isfile(cache_file):
        with open(cache_file, encoding="utf-8") as f:
            cached = json.load(f)
        if cached.get("fingerprint") == fingerprint:
            decoder.set_weights(cached["lm_weight"], cached["word_bonus"])
            return cached
    start = time.perf_counter()
    workers = max(1, min(workers, len(points)))
    if workers == 1:
        _init_worker(decoder, arrays, list(refs), worker_process=False)
        results = [_score_point(p) for p in points]
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers, _init_worker, (decoder, arrays, list(refs))) as pool:
            results = pool.map(_score_point, points)
    _WORKER.clear()
    grid = [{"lm_weight": a, "word_bonus": b, "WER": 100.0 * c["word_errors"] / max(1, c["words"]),
             "CER": 100.0 * c["char_errors"] / max(1, c["chars"]), **c} for (a, b), c, _ in results]
    best = min(grid, key=lambda g: (g["word_errors"], g["char_errors"], g["lm_weight"], g["word_bonus"]))
    decoder.set_weights(best["lm_weight"], best["word_bonus"])
    result = {"lm_weight": best["lm_weight"], "word_bonus": best["word_bonus"], "WER": best["WER"],
              "CER": best["CER"], "grid": grid, "utterances": len(arrays), "workers": workers,
              "seconds": round(time.perf_counter() - start, 2),
              "decode_seconds": round(sum(r[2] for r in results), 2), "fingerprint": fingerprint}
    if cache_file:
        with open(cache_file + ".tmp", "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        os.replace(cache_file + ".tmp", cache_file)
    return result
