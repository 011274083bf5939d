"""Nepali transcript normalisation and character-inventory helpers.

:func:`normalize_nepali` is the one normalisation used by data preparation,
evaluation and inference, so that the model is always trained and scored on
the same text.

Example
-------
>>> normalize_nepali("राम, आज\\u00a0बजार जान्\\u200dछ।")
'राम आज बजार जान्छ'
"""

import re
import unicodedata
from collections import Counter
from typing import Iterable, Optional

__all__ = [
    "DEVANAGARI_DIGITS",
    "normalize_nepali",
    "has_latin",
    "is_inventory_char",
    "out_of_inventory",
    "char_inventory",
]

#: The ten Devanagari digits, in order.
DEVANAGARI_DIGITS = "०१२३४५६७८९"
_ASCII_TO_DEVANAGARI = str.maketrans("0123456789", DEVANAGARI_DIGITS)
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# Devanagari block, less the danda, double danda and abbreviation sign
# (punctuation, removed by normalisation).
_DEVANAGARI_FIRST, _DEVANAGARI_LAST = 0x0900, 0x097F
_DEVANAGARI_PUNCT = frozenset("\u0964\u0965\u0970")


class _CleanTable(dict):
    """``str.translate`` table computed lazily from Unicode categories.

    Format characters (category ``Cf``: ZWJ, ZWNJ, zero-width space, word
    joiner, BOM, soft hyphen, bidi marks and embeddings) are deleted; control
    characters, separators (NBSP included), punctuation (``P*``, danda
    included) and ASCII symbols (``$+<=>^`|~``) become a space; every other
    character is kept. Results are cached per code point.
    """

    def __missing__(self, code: int) -> Optional[str]:
        char = chr(code)
        cat = unicodedata.category(char)
        if cat == "Cf":
            value = None
        elif cat[0] in "CPZ" or char in _ASCII_PUNCT:
            value = " "
        else:
            value = char
        self[code] = value
        return value


_CLEAN = _CleanTable()


def normalize_nepali(text: str, ascii_digits_to_devanagari: bool = False) -> str:
    """Normalise a Nepali transcript for CTC training and scoring.

    In order: format characters (ZWJ, ZWNJ, zero-width space, word joiner,
    BOM, soft hyphen, bidi marks) are removed; Unicode NFC is applied;
    punctuation (danda ``।``, double danda ``॥``, abbreviation sign ``॰``,
    ASCII and typographic punctuation, ASCII symbols), control characters and
    every kind of space (NBSP included) become spaces; runs of spaces collapse
    to one and the ends are stripped; Latin letters are lower-cased.
    Devanagari digits are kept. Latin-script lines are *not* dropped here:
    :func:`has_latin` lets the caller decide.

    Arguments
    ---------
    text : str
        Raw transcript.
    ascii_digits_to_devanagari : bool
        Map ``0-9`` to ``०-९`` (default ``False``: ASCII digits are kept and
        show up as out-of-inventory characters).

    Returns
    -------
    str
        The normalised transcript (possibly empty).

    Example
    -------
    >>> normalize_nepali("  २००५ मा “बिते” ॥ ")
    '२००५ मा बिते'
    >>> normalize_nepali("\\ufeffगर्\\u200dयो!\\u200b")
    'गर्यो'
    >>> normalize_nepali("मेरो Email 2 वटा", ascii_digits_to_devanagari=True)
    'मेरो email २ वटा'
    >>> normalize_nepali("।  ॥")
    ''
    """
    text = unicodedata.normalize("NFC", text.translate(_CLEAN))
    if ascii_digits_to_devanagari:
        text = text.translate(_ASCII_TO_DEVANAGARI)
    return " ".join(text.lower().split())


def has_latin(text: str) -> bool:
    """Return whether ``text`` contains a Latin letter (ASCII or accented).

    Example
    -------
    >>> has_latin("आज office जान्छ"), has_latin("आज घर जान्छ")
    (True, False)
    """
    return _LATIN.search(text) is not None


def is_inventory_char(char: str, keep_latin: bool = False) -> bool:
    """Return whether ``char`` belongs to the kept character inventory.

    The inventory is the space, the Devanagari block (letters, signs and
    digits) less its punctuation, and, with ``keep_latin``, ``a-z``.

    Arguments
    ---------
    char : str
        One character (of normalised text).
    keep_latin : bool
        Whether lower-case Latin letters are part of the inventory.

    Returns
    -------
    bool

    Example
    -------
    >>> [is_inventory_char(c) for c in "क ५5x"]
    [True, True, True, False, False]
    >>> is_inventory_char("x", keep_latin=True)
    True
    """
    if char == " ":
        return True
    code = ord(char)
    if _DEVANAGARI_FIRST <= code <= _DEVANAGARI_LAST:
        return char not in _DEVANAGARI_PUNCT
    return keep_latin and "a" <= char <= "z"


def out_of_inventory(text: str, keep_latin: bool = False) -> str:
    """Return the characters of ``text`` outside the kept inventory.

    Arguments
    ---------
    text : str
        Normalised text.
    keep_latin : bool
        As in :func:`is_inventory_char`.

    Returns
    -------
    str
        The offending characters, in order, with repetitions.

    Example
    -------
    >>> out_of_inventory("मेरो २ वटा ₹5")
    '₹5'
    """
    return "".join(c for c in text if not is_inventory_char(c, keep_latin))


def char_inventory(texts: Iterable[str]) -> Counter:
    """Count the characters of ``texts``.

    Arguments
    ---------
    texts : iterable of str
        Normalised transcripts.

    Returns
    -------
    collections.Counter
        Character to count.

    Example
    -------
    >>> sorted(char_inventory(["कक", "क ख"]).items())
    [(' ', 1), ('क', 3), ('ख', 1)]
    """
    counts: Counter = Counter()
    for text in texts:
        counts.update(text)
    return counts
