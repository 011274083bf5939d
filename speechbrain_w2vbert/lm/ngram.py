"""Word n-gram language models for CTC decoding: :class:`NgramLM`, an LM
on disk with its word list and report, built from the training
transcripts.

:meth:`NgramLM.build` estimates a word n-gram LM (ARPA) from the training
transcripts (and optional extra text files) after the normalisation the CTC
labels get, keeping only words the tokenizer can spell, with a real
estimator: KenLM's ``lmplz`` (modified Kneser-Ney) when it is on ``PATH``
(``make lmplz`` builds it), else ``kaldingram`` (pure Python, back-off
Kneser-Ney as SRILM computes it). Beside the ARPA it writes the word list
(``unigrams.txt``, what beam search and pyctcdecode use to tell words from
partial words) and ``lm_report.json`` (order, n-gram counts, dev perplexity
and OOV rate, build time, and the fingerprint of inputs and options: a
re-run with the same ones skips the build). The same object reads an LM a
folder carries and copies it into an exported one (see
docs/design.md#language-model).

Example
-------
>>> import tempfile
>>> from speechbrain_w2vbert.text.tokenizer import CharTokenizer
>>> texts = ["राम घर जान्छ", "सीता घर जान्छिन्", "राम बजार जान्छ"] * 3
>>> tok = CharTokenizer.build(texts)
>>> lines, dropped = lm_corpus(texts + ["राम ABC"], tok)
>>> len(lines), dict(dropped)
(10, {'ABC': 1})
>>> folder = tempfile.mkdtemp()
>>> corpus = os.path.join(folder, "corpus.txt")
>>> with open(corpus, "w", encoding="utf-8") as f:
...     _ = f.write("\\n".join(lines) + "\\n")
>>> estimate_arpa(corpus, os.path.join(folder, "lm.arpa"), order=3, estimator="kaldingram")
'kaldingram'
>>> arpa_counts(os.path.join(folder, "lm.arpa"))[1]  # 6 words, <s>, </s>, <unk>
9
>>> NgramLM(os.path.join(folder, "lm.arpa")).words()[:3]
['राम', 'घर', 'जान्छ']
"""

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from speechbrain_w2vbert.text.corpus import read_csv_texts
from speechbrain_w2vbert.text.normalize import has_latin, normalize_nepali

logger = logging.getLogger(__name__)

__all__ = [
    "ARPA_NAME",
    "UNIGRAMS_NAME",
    "REPORT_NAME",
    "ESTIMATORS",
    "LMError",
    "NgramLM",
    "lm_corpus",
    "estimate_arpa",
    "arpa_counts",
    "arpa_unigrams",
    "load_kenlm",
    "quiet_native_stderr",
    "perplexity",
]

ARPA_NAME = "lm.arpa"
UNIGRAMS_NAME = "unigrams.txt"
REPORT_NAME = "lm_report.json"
CORPUS_NAME = "lm_corpus.txt"
#: Values of ``estimator``: ``auto`` is ``lmplz`` when it is on PATH, else ``kaldingram``.
ESTIMATORS = ("auto", "lmplz", "kaldingram")
#: Symbols of an ARPA file that are not words.
SPECIAL_WORDS = frozenset(("<s>", "</s>", "<unk>"))


class LMError(ValueError):
    """A language model file or its text that cannot be used (the message names the file)."""


def lm_corpus(texts: Iterable[str], tokenizer, normalize: bool = False,
              keep_latin: bool = False) -> Tuple[List[str], Counter]:
    """The LM's training sentences: words the tokenizer spells without
    ``[UNK]``; the others are dropped and counted.

    Arguments
    ---------
    texts : iterable of str
        Sentences. The recipe's CSV transcripts are already normalised.
    tokenizer : CharTokenizer or SentencePieceCTCTokenizer
        The CTC tokenizer (its ``unk_index``).
    normalize : bool
        Apply :func:`~speechbrain_w2vbert.text.normalize.normalize_nepali` first and
        drop sentences with Latin letters (unless ``keep_latin``), as data
        preparation does to transcripts (for extra text files).
    keep_latin : bool
        With ``normalize``: keep sentences holding Latin letters.

    Returns
    -------
    lines : list of str
        Sentences, words separated by one space (empty ones left out).
    dropped : collections.Counter
        Word -> count of the words left out.
    """
    lines, dropped, known = [], Counter(), {}
    unk = tokenizer.unk_index
    for text in texts:
        if normalize:
            text = normalize_nepali(text)
            if not keep_latin and has_latin(text):
                continue
        words = []
        for word in text.split():
            if word not in known:
                known[word] = unk not in tokenizer.encode(word)
            if known[word]:
                words.append(word)
            else:
                dropped[word] += 1
        if words:
            lines.append(" ".join(words))
    return lines, dropped


def _estimator(estimator: str) -> str:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if estimator == "auto":
        return "lmplz" if shutil.which("lmplz") else "kaldingram"
    if estimator == "lmplz" and not shutil.which("lmplz"):
        raise LMError("estimator 'lmplz' asked for, but lmplz is not on PATH (`make lmplz` builds it)")
    return estimator


def estimate_arpa(corpus: str, arpa: str, order: int = 4, estimator: str = "auto") -> str:
    """Estimates a word n-gram LM of a text file (one sentence a line) and
    writes it as ARPA (atomically: a ``.tmp`` file, then renamed).

    Arguments
    ---------
    corpus : str
        The text, one sentence a line, words separated by spaces.
    arpa : str
        The ARPA file to write.
    order : int
        N-gram order, 1-5 (default 4).
    estimator : str
        One of :data:`ESTIMATORS` (default ``auto``).

    Returns
    -------
    str
        The estimator used.
    """
    if not 1 <= order <= 5:
        raise ValueError(f"order must be in 1..5, got {order}")
    estimator = _estimator(estimator)
    tmp = arpa + ".tmp"
    if estimator == "lmplz":
        # --discount_fallback: small corpora lack the counts-of-counts modified KN needs.
        command = ["lmplz", "-o", str(order), "--text", corpus, "--arpa", tmp, "--discount_fallback",
                   "-S", "20%", "-T", tempfile.gettempdir()]
    else:
        command = [sys.executable, "-m", "kaldingram.cli", "train", "--ngram-order", str(order),
                   "--text", corpus, "--lm", tmp]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise LMError(f"{estimator} failed on {corpus} (exit {done.returncode}): {' | '.join(tail)}")
    if estimator == "kaldingram":
        _add_unk(tmp)
    os.replace(tmp, arpa)
    return estimator


#: log10 probability of ``<unk>`` where the estimator writes none: the
#: value kenlm substitutes for a missing ``<unk>`` (with a warning).
UNK_LOG10_PROB = -100.0


def _add_unk(arpa: str) -> None:
    """Adds an ``<unk>`` unigram of :data:`UNK_LOG10_PROB` to an ARPA file
    that has none (kaldingram writes none; lmplz does), in place. kenlm
    would substitute the same value and warn on every load."""
    with open(arpa, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if any(line.split("\t")[1:2] == ["<unk>"] for line in lines):
        return
    header = next(i for i, line in enumerate(lines) if line.startswith("ngram 1="))
    lines[header] = f"ngram 1={int(lines[header].split('=')[1]) + 1}"
    first = lines.index("\\1-grams:") + 1
    lines.insert(first, f"{UNK_LOG10_PROB}\t<unk>")
    with open(arpa + ".unk", "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(arpa + ".unk", arpa)


def arpa_counts(path: str) -> Dict[int, int]:
    """The n-gram counts of an ARPA file's ``\\data\\`` header.

    Raises
    ------
    LMError
        The file is missing or is not ARPA.
    """
    counts = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line.startswith("ngram ") and "=" in line:
                    n, count = line[6:].split("=")
                    counts[int(n)] = int(count)
                elif line.startswith("\\1-grams:"):
                    break
    except FileNotFoundError:
        raise LMError(f"{path}: no such language model file") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise LMError(f"{path}: not an ARPA language model ({error})") from None
    if not counts:
        raise LMError(f"{path}: not an ARPA language model (no \\data\\ section with ngram counts)")
    return counts


def arpa_unigrams(path: str) -> List[str]:
    """The words of an ARPA file's 1-grams (``<s>``, ``</s>``, ``<unk>`` left out)."""
    words, inside = [], False
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside and line.startswith("\\"):
                break
            elif inside and line:
                parts = line.split()
                if len(parts) >= 2 and parts[1] not in SPECIAL_WORDS:
                    words.append(parts[1])
    if not words:
        raise LMError(f"{path}: no words in its 1-grams section")
    return words


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[List[str]]:
    """Holds back what native code writes to the process's standard error
    inside the block (kenlm prints a progress bar and hints while it loads
    an ARPA file); yields a list that receives those lines, for the caller
    to show when the block fails. Python's own ``sys.stderr`` is untouched."""
    lines: List[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (an embedded interpreter)
        yield lines
        return
    with tempfile.TemporaryFile(mode="w+b") as held:
        sys.stderr.flush()
        os.dup2(held.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines.extend(held.read().decode("utf-8", "replace").splitlines())


def load_kenlm(path: str):
    """``kenlm.Model`` of an ARPA or KenLM binary file, with an error naming
    the file when it is missing or corrupt (kenlm's loading output is held
    back, and shown in the error when loading fails)."""
    try:
        import kenlm
    except ImportError as error:
        raise ImportError(f"LM decoding needs kenlm's Python module: pip install ufal.kenlm ({error})") from None
    if not os.path.isfile(path):
        raise LMError(f"{path}: no such language model file")
    with quiet_native_stderr() as output:
        try:
            return kenlm.Model(path)
        except (OSError, RuntimeError, ValueError) as error:
            message = str(error).strip().splitlines()
            failure = error
    raise LMError(f"{path}: kenlm cannot read this language model ({message[0] if message else failure})"
                  + (f" [{' | '.join(output[-3:])}]" if output else "")) from None


def perplexity(model, lines: Sequence[str]) -> Tuple[float, float]:
    """Perplexity and OOV rate of sentences under a ``kenlm.Model``.

    As SRILM's ``ngram -ppl`` reports it: over the in-vocabulary words and
    the sentence ends, OOV words left out (an ARPA without ``<unk>``, as
    kaldingram writes, would give each one log10 p = -100 and the
    perplexity would measure the OOVs only).

    Returns
    -------
    perplexity : float
    oov_rate : float
        Fraction of words not in the LM's vocabulary.
    """
    log10_sum, scored, words, oov = 0.0, 0, 0, 0
    for line in lines:
        count = len(line.split())
        words += count
        for index, (log10_prob, _, is_oov) in enumerate(model.full_scores(line, bos=True, eos=True)):
            if is_oov:
                oov += index < count  # the last entry is </s>
            else:
                log10_sum += log10_prob
                scored += 1
    if scored == 0:
        return float("nan"), float("nan")
    return 10.0 ** (-log10_sum / scored), (oov / words if words else 0.0)


def _fingerprint(lines: Sequence[str], options: dict) -> str:
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode("utf-8"))
    for line in lines:
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def _build(
    train_csv: str,
    save_folder: str,
    tokenizer,
    order: int = 4,
    extra_texts: Sequence[str] = (),
    dev_csv: Optional[str] = None,
    estimator: str = "auto",
) -> dict:
    """The work of :meth:`NgramLM.build`; returns the report (also written to ``lm_report.json``)."""
    os.makedirs(save_folder, exist_ok=True)
    texts = read_csv_texts(train_csv)
    lines, dropped = lm_corpus(texts, tokenizer)
    for path in extra_texts:
        if not os.path.isfile(path):
            raise LMError(f"{path}: no such text file (lm_extra_texts)")
        with open(path, encoding="utf-8") as f:
            extra, extra_dropped = lm_corpus(f, tokenizer, normalize=True)
        lines += extra
        dropped += extra_dropped
    sources = [train_csv, *extra_texts]
    if not lines:
        raise LMError(f"no text to estimate a language model from: {', '.join(sources)} hold no sentence "
                      "the tokenizer can spell")
    used = _estimator(estimator)
    options = {"order": order, "estimator": used, "extra_texts": [os.path.abspath(p) for p in extra_texts]}
    fingerprint = _fingerprint(lines, options)
    paths = {name: os.path.join(save_folder, file) for name, file in
             (("arpa", ARPA_NAME), ("unigrams", UNIGRAMS_NAME), ("report", REPORT_NAME), ("corpus", CORPUS_NAME))}
    if os.path.isfile(paths["report"]) and os.path.isfile(paths["arpa"]):
        with open(paths["report"], encoding="utf-8") as f:
            old = json.load(f)
        if old.get("fingerprint") == fingerprint:
            logger.info("LM: %s is up to date (same text and options), not rebuilt", paths["arpa"])
            return old

    start = time.perf_counter()
    tmp = paths["corpus"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, paths["corpus"])
    estimate_arpa(paths["corpus"], paths["arpa"], order, used)
    seconds = time.perf_counter() - start
    model = load_kenlm(paths["arpa"])
    unigrams = arpa_unigrams(paths["arpa"])
    with open(paths["unigrams"] + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(unigrams) + "\n")
    os.replace(paths["unigrams"] + ".tmp", paths["unigrams"])

    report = {
        "order": order,
        "estimator": used,
        "ngram_counts": {str(n): c for n, c in arpa_counts(paths["arpa"]).items()},
        "sentences": len(lines),
        "words": sum(len(line.split()) for line in lines),
        "vocabulary": len(unigrams),
        "dropped_words": sum(dropped.values()),
        "dropped_examples": [w for w, _ in dropped.most_common(10)],
        "sources": sources,
        "build_seconds": round(seconds, 2),
        "fingerprint": fingerprint,
        **paths,
    }
    if dev_csv and os.path.isfile(dev_csv):
        ppl, oov = perplexity(model, lm_corpus(read_csv_texts(dev_csv), tokenizer)[0])
        report["dev_perplexity"] = None if math.isnan(ppl) else round(ppl, 2)
        report["dev_oov_rate"] = None if math.isnan(oov) else round(oov, 4)
    with open(paths["report"] + ".tmp", "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
    os.replace(paths["report"] + ".tmp", paths["report"])
    if dropped:
        logger.warning("LM: %d word tokens the tokenizer cannot spell were dropped (e.g. %s)",
                       report["dropped_words"], ", ".join(report["dropped_examples"][:5]))
    logger.info("LM: %d-gram (%s) from %d sentences, %d words, vocabulary %d, counts %s, dev perplexity %s "
                "(OOV %s), %.1f s -> %s", order, used, report["sentences"], report["words"], len(unigrams),
                report["ngram_counts"], report.get("dev_perplexity"), report.get("dev_oov_rate"), seconds,
                paths["arpa"])
    return report


@dataclass(frozen=True)
class NgramLM:
    """A word n-gram LM on disk: its file (ARPA, or a KenLM binary) and,
    beside it (links followed), its word list ``unigrams.txt`` and its
    report ``lm_report.json`` when it has them. The one place that knows
    these files: the recipe builds it, beam search reads it, exports copy it.

    Arguments
    ---------
    path : str
        The LM file.
    """

    path: str

    @classmethod
    def build(cls, train_csv: str, save_folder: str, tokenizer, order: int = 4, extra_texts: Sequence[str] = (),
              dev_csv: Optional[str] = None, estimator: str = "auto") -> "NgramLM":
        """Builds (or finds already built) the recipe's word n-gram LM.

        Arguments
        ---------
        train_csv : str
            The training CSV; its ``wrd`` column is the text (never dev or test).
        save_folder : str
            Where ``lm.arpa``, ``unigrams.txt``, ``lm_corpus.txt`` and
            ``lm_report.json`` go (created).
        tokenizer : CharTokenizer or SentencePieceCTCTokenizer
            The CTC tokenizer: words it cannot spell are dropped (and reported).
        order : int
            N-gram order, 1-5 (default 4).
        extra_texts : sequence of str
            Text files (UTF-8, a sentence a line) added to the transcripts,
            normalised as the transcripts are.
        dev_csv : str, optional
            Its transcripts give the report's perplexity and OOV rate.
        estimator : str
            ``auto`` (``lmplz`` if on PATH, else ``kaldingram``), ``lmplz`` or
            ``kaldingram`` (default ``auto``).

        Returns
        -------
        NgramLM
            Its :attr:`report` holds the figures and the file paths.

        Raises
        ------
        LMError
            An empty text (naming the files), a missing extra text file, or an
            estimator that fails.
        """
        report = _build(train_csv, save_folder, tokenizer, order, extra_texts, dev_csv, estimator)
        return cls(report["arpa"])

    @property
    def folder(self) -> str:
        """The folder the LM file really lies in (links followed)."""
        return os.path.dirname(os.path.realpath(self.path))

    @property
    def report(self) -> dict:
        """``lm_report.json`` beside the file (``{}`` when there is none)."""
        path = os.path.join(self.folder, REPORT_NAME)
        if not os.path.isfile(path):
            return {}
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    @property
    def unigrams_path(self) -> str:
        """Where its word list is (or would be): ``unigrams.txt`` beside the file."""
        return os.path.join(self.folder, UNIGRAMS_NAME)

    @property
    def is_binary(self) -> bool:
        """Whether the file is a KenLM binary (they start ``mmap lm``), not ARPA text."""
        with open(self.path, "rb") as f:
            return f.read(4) == b"mmap"

    def words(self) -> List[str]:
        """The LM's words: its ``unigrams.txt``, else its ARPA 1-grams.

        Raises
        ------
        LMError
            No such file, or an ARPA file without words.
        """
        if not os.path.isfile(self.path):
            raise LMError(f"{self.path}: no such language model file")
        if not os.path.isfile(self.unigrams_path):
            return arpa_unigrams(self.path)
        with open(self.unigrams_path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]

    def load(self):
        """The ``kenlm.Model`` (see :func:`load_kenlm`)."""
        return load_kenlm(self.path)

    def copy_to(self, folder: str, name: str) -> "NgramLM":
        """Copies the LM file into ``folder`` as ``name``, with its word list
        as ``unigrams.txt`` (an ``EncoderASR`` folder's ``lm.ckpt``)."""
        words = self.words()
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, name)
        shutil.copyfile(self.path, target + ".tmp")
        os.replace(target + ".tmp", target)
        with open(os.path.join(folder, UNIGRAMS_NAME + ".tmp"), "w", encoding="utf-8") as f:
            f.write("\n".join(words) + "\n")
        os.replace(os.path.join(folder, UNIGRAMS_NAME + ".tmp"), os.path.join(folder, UNIGRAMS_NAME))
        return NgramLM(target)
