"""CTC tokenizers: an HF-compatible character vocabulary, or SentencePiece.

:class:`CharTokenizer` builds a character vocabulary from the training
transcripts and saves it as ``vocab.json`` in the format of
``transformers.Wav2Vec2CTCTokenizer``::

    Wav2Vec2CTCTokenizer(vocab_json, unk_token="[UNK]", pad_token="[PAD]",
                         word_delimiter_token="|")

loads it with the same ids (it appends ``<s>`` and ``</s>`` after them, which a
CTC head never emits). ``[PAD]`` (id 0) is the CTC blank, ``[UNK]`` (id 1)
stands for characters rarer than ``min_count``, ``|`` (id 2) is the space;
the other characters follow in code-point order. Encoding and CTC decoding
(merge repeats, drop blanks, ``|`` to space, strip) give exactly what the HF
tokenizer gives.

:func:`build_tokenizer` picks that tokenizer or SpeechBrain's
``SentencePiece`` (char, unigram or BPE model) from one hparams switch; both
share the interface ``encode`` / ``decode_ids`` / ``decode_ctc`` /
``vocab_size`` / ``blank_index`` (0).

Example
-------
>>> tok = CharTokenizer.build(["राम घर", "राम"])
>>> ids = tok.encode("राम घर")
>>> ids
[5, 6, 4, 2, 3, 5]
>>> tok.decode_ctc([5, 5, 0, 6, 4, 4, 2, 0, 3, 0, 5])
'राम घर'
"""

import json
import logging
import os
from collections import Counter
from itertools import groupby
from typing import Dict, Iterable, List, Optional, Sequence

from speechbrain_w2vbert.text.corpus import read_csv_texts

logger = logging.getLogger(__name__)

__all__ = [
    "PAD_TOKEN",
    "UNK_TOKEN",
    "WORD_DELIMITER",
    "VOCAB_NAME",
    "TOKENIZER_TYPES",
    "collapse_ctc",
    "CTCTokenizer",
    "CharTokenizer",
    "SentencePieceCTCTokenizer",
    "build_tokenizer",
]

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
WORD_DELIMITER = "|"
VOCAB_NAME = "vocab.json"
#: Values of ``tokenizer_type`` accepted by :func:`build_tokenizer`.
TOKENIZER_TYPES = ("char", "sp_char", "sp_unigram", "sp_bpe")

#: Label ids: a sequence of ints, or a 1-D torch tensor or numpy array.
Ids = Sequence[int]


def _as_list(ids: Ids) -> List[int]:
    """Turn a 1-D tensor, array or sequence of ids into a list of ints."""
    return ids.tolist() if hasattr(ids, "tolist") else [int(i) for i in ids]


def collapse_ctc(ids: Ids, blank_index: int = 0) -> List[int]:
    """Greedy CTC collapse: merge repeated ids, then drop blanks.

    Arguments
    ---------
    ids : sequence of int or 1-D tensor
        Frame-level ids (e.g. the argmax of the CTC posteriors).
    blank_index : int
        Id of the blank.

    Returns
    -------
    list of int

    Example
    -------
    >>> collapse_ctc([3, 3, 0, 3, 4, 0, 0, 4])
    [3, 3, 4, 4]
    """
    return [i for i, _ in groupby(_as_list(ids)) if i != blank_index]


class CTCTokenizer:
    """Interface shared by the CTC tokenizers: id 0 is the blank; subclasses
    define ``vocab_size``, ``encode`` and ``decode_ids``."""

    blank_index = 0

    @property
    def vocab_size(self) -> int:
        """Number of ids, blank included (the CTC output size)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> List[int]:
        """Label ids of ``text``."""
        raise NotImplementedError

    def decode_ids(self, ids: Ids) -> str:
        """Text of label ids (blanks dropped, no merging of repeats)."""
        raise NotImplementedError

    def encode_tensor(self, text: str):
        """:meth:`encode` as a ``torch.long`` tensor (for a data pipeline)."""
        import torch

        return torch.tensor(self.encode(text), dtype=torch.long)

    def decode_ctc(self, ids: Ids) -> str:
        """Text of frame-level ids: merge repeats, drop blanks, then
        :meth:`decode_ids` (for :class:`CharTokenizer`, exactly HF's
        ``decode(ids)``)."""
        return self.decode_ids(collapse_ctc(ids, self.blank_index))


class CharTokenizer(CTCTokenizer):
    """Character CTC tokenizer whose ``vocab.json`` HF's
    ``Wav2Vec2CTCTokenizer`` loads with the same ids.

    Arguments
    ---------
    vocab : dict
        Token to id: ``[PAD]`` must be 0 (the blank), and ``[UNK]`` and ``|``
        must be present; ids must be ``0..len(vocab)-1``.

    Example
    -------
    >>> tok = CharTokenizer({"[PAD]": 0, "[UNK]": 1, "|": 2, "क": 3})
    >>> tok.encode("क खक"), tok.decode_ids([3, 2, 1, 3])
    ([3, 2, 1, 3], 'क [UNK]क')
    >>> tok.vocab_size, tok.blank_index
    (4, 0)
    """

    def __init__(self, vocab: Dict[str, int]):
        if vocab.get(PAD_TOKEN) != 0 or UNK_TOKEN not in vocab or WORD_DELIMITER not in vocab:
            raise ValueError(f"vocab needs {PAD_TOKEN}=0, {UNK_TOKEN} and {WORD_DELIMITER}")
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError("vocab ids must be 0..len(vocab)-1")
        self.vocab = dict(vocab)
        self.unk_index = vocab[UNK_TOKEN]
        self.tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
        # What decoding writes for each id (HF: pad dropped, | is a space).
        self._out = [" " if t == WORD_DELIMITER else t for t in self.tokens]

    @property
    def vocab_size(self) -> int:
        """Number of ids, blank included (the CTC output size)."""
        return len(self.tokens)

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> "CharTokenizer":
        """Build the vocabulary from normalised transcripts.

        Arguments
        ---------
        texts : iterable of str
            Transcripts (already normalised; spaces separate words).
        min_count : int
            Characters seen fewer times map to ``[UNK]`` (rare characters
            cause loss spikes).

        Returns
        -------
        CharTokenizer

        Example
        -------
        >>> tok = CharTokenizer.build(["कक ख", "क"], min_count=2)
        >>> tok.vocab
        {'[PAD]': 0, '[UNK]': 1, '|': 2, 'क': 3}
        """
        counts = Counter()
        for text in texts:
            counts.update(text)
        counts.pop(" ", None)
        rare = sorted(c for c, n in counts.items() if n < min_count)
        if rare:
            logger.info("%d characters rarer than %d map to %s: %s",
                        len(rare), min_count, UNK_TOKEN, "".join(rare))
        chars = sorted(c for c, n in counts.items() if n >= min_count and c != WORD_DELIMITER)
        tokens = [PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER] + chars
        return cls({t: i for i, t in enumerate(tokens)})

    @classmethod
    def from_csv(cls, csv_path: str, min_count: int = 1, column: str = "wrd") -> "CharTokenizer":
        """:meth:`build` from the ``column`` of a SpeechBrain CSV."""
        return cls.build(read_csv_texts(csv_path, column), min_count)

    def save(self, folder: str) -> str:
        """Write ``folder/vocab.json`` atomically; return its path."""
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, VOCAB_NAME)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(self.vocab, f, ensure_ascii=False, indent=1)
        os.replace(path + ".tmp", path)
        return path

    @classmethod
    def load(cls, path: str) -> "CharTokenizer":
        """Load a ``vocab.json`` (or the folder holding one)."""
        if os.path.isdir(path):
            path = os.path.join(path, VOCAB_NAME)
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    def encode(self, text: str) -> List[int]:
        """Ids of ``text``: one per character, a space is ``|``, unknown
        characters are ``[UNK]`` (as HF's tokenizer does)."""
        vocab, unk = self.vocab, self.unk_index
        return [vocab.get(WORD_DELIMITER if c == " " else c, unk) for c in text]

    def decode_ids(self, ids: Ids) -> str:
        """Text of label ids, without CTC merging: blanks dropped, ``|`` to
        space, ends stripped (HF ``decode(ids, group_tokens=False)``)."""
        out = self._out
        return "".join(out[i] for i in _as_list(ids) if i != self.blank_index).strip()


class SentencePieceCTCTokenizer(CTCTokenizer):
    """A SentencePiece model with ids shifted by one so that 0 is the blank.

    Arguments
    ---------
    processor : sentencepiece.SentencePieceProcessor
        Loaded model (e.g. ``speechbrain.tokenizers.SentencePiece(...).sp``).
    """

    def __init__(self, processor):
        self.sp = processor

    @property
    def vocab_size(self) -> int:
        """Number of ids, blank included (the CTC output size)."""
        return self.sp.get_piece_size() + 1

    @property
    def unk_index(self) -> int:
        """Label id of SentencePiece's unknown piece."""
        return self.sp.unk_id() + 1

    @property
    def tokens(self) -> List[str]:
        """The token of each label id (``<blank>``, then the pieces)."""
        return ["<blank>"] + [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]

    def encode(self, text: str) -> List[int]:
        """Piece ids of ``text``, plus one."""
        return [i + 1 for i in self.sp.encode_as_ids(text)]

    def decode_ids(self, ids: Ids) -> str:
        """Text of label ids (blanks dropped)."""
        return self.sp.decode_ids([i - 1 for i in _as_list(ids) if i != self.blank_index])


def build_tokenizer(
    tokenizer_type: str,
    save_folder: str,
    train_csv: Optional[str] = None,
    min_count: int = 1,
    vocab_size: Optional[int] = None,
    column: str = "wrd",
) -> CTCTokenizer:
    """Build (or load, if already saved) the tokenizer named by hparams.

    Arguments
    ---------
    tokenizer_type : str
        ``"char"``: :class:`CharTokenizer` (``save_folder/vocab.json``);
        ``"sp_char"``, ``"sp_unigram"``, ``"sp_bpe"``: SpeechBrain's
        ``SentencePiece`` with that model type, wrapped in
        :class:`SentencePieceCTCTokenizer`.
    save_folder : str
        Where the vocabulary or model is saved; an existing one is loaded
        as is (delete it to rebuild after changing the data).
    train_csv : str, optional
        Training CSV to learn from (needed when nothing is saved yet).
    min_count : int
        ``"char"`` only: characters seen fewer times map to ``[UNK]``.
    vocab_size : int, optional
        SentencePiece vocabulary size (required for unigram and BPE; for
        ``"sp_char"`` it defaults to the number of distinct characters + 1).
    column : str
        CSV column with the transcripts.

    Returns
    -------
    CTCTokenizer
        A :class:`CharTokenizer` or :class:`SentencePieceCTCTokenizer`;
        both have ``encode``, ``encode_tensor``, ``decode_ids``,
        ``decode_ctc``, ``vocab_size`` and ``blank_index`` (0).

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> csv_path = os.path.join(folder, "train.csv")
    >>> _ = open(csv_path, "w").write("ID,wrd\\na,राम घर\\nb,घर\\n")
    >>> tok = build_tokenizer("char", folder, csv_path)
    >>> tok.vocab_size, os.path.isfile(os.path.join(folder, "vocab.json"))
    (7, True)
    """
    if tokenizer_type not in TOKENIZER_TYPES:
        raise ValueError(f"tokenizer_type must be one of {TOKENIZER_TYPES}, got {tokenizer_type!r}")
    if tokenizer_type == "char":
        vocab_path = os.path.join(save_folder, VOCAB_NAME)
        if os.path.isfile(vocab_path):
            return CharTokenizer.load(vocab_path)
        if train_csv is None:
            raise ValueError(f"no {vocab_path}: train_csv is needed to build it")
        tokenizer = CharTokenizer.from_csv(train_csv, min_count, column)
        tokenizer.save(save_folder)
        return tokenizer
    from speechbrain.tokenizers.SentencePiece import SentencePiece

    model_type = tokenizer_type[len("sp_"):]
    if vocab_size is None:
        if model_type != "char" or train_csv is None:
            raise ValueError(f"vocab_size is needed for {tokenizer_type}")
        vocab_size = len(set("".join(read_csv_texts(train_csv, column)))) + 1
    spm = SentencePiece(
        model_dir=save_folder,
        vocab_size=vocab_size,
        annotation_train=train_csv,
        annotation_read=column,
        model_type=model_type,
        character_coverage=1.0,
    )
    return SentencePieceCTCTokenizer(spm.sp)
