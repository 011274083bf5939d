"""Tests of speechbrain_w2vbert.text.normalize (Nepali normalisation and inventory)."""

import os
import zipfile

import pytest

from speechbrain_w2vbert.text.normalize import (
    DEVANAGARI_DIGITS,
    char_inventory,
    has_latin,
    is_inventory_char,
    normalize_nepali,
    out_of_inventory,
)

SAMPLE_ZIP = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "recipes", "OpenSLR54", "sample_data", "asr_nepali_0.zip",
)


def sample_transcripts():
    """Raw transcripts of the bundled sample corpus."""
    with zipfile.ZipFile(SAMPLE_ZIP) as zf:
        tsv = zf.read("asr_nepali/utt_spk_text.tsv").decode("utf-8")
    return [line.split("\t", 2)[2] for line in tsv.split("\n") if line]


@pytest.mark.parametrize(
    "raw, expected",
    [
        # zero-width joiner / non-joiner, zero-width space, word joiner, BOM
        ("जान्\u200dछ", "जान्छ"),
        ("विद्\u200cयालय", "विद्यालय"),
        ("\ufeffराम\u200b घर\u2060", "राम घर"),
        # soft hyphen, bidi marks, embeddings and isolates
        ("रा\u00adम \u200eघर\u200f \u202aक\u202c \u2067ख\u2069", "राम घर क ख"),
        # NBSP, narrow NBSP, ideographic space, tabs and newlines
        ("राम\u00a0घर\u202fक\u3000ख\tग\nघ\r\n", "राम घर क ख ग घ"),
        # danda, double danda, abbreviation sign
        ("राम घर गयो। सीता आइन्॥ डा॰ राम", "राम घर गयो सीता आइन् डा राम"),
        # ASCII and typographic punctuation, the CTC word delimiter |
        ("“राम”, ‘घर’ - ‘क’—ख… (ग) [घ] {ङ} \"च\" 'छ' ज|झ? ञ!", "राम घर क ख ग घ ङ च छ ज झ ञ"),
        ("घर-घर", "घर घर"),
        # whitespace collapsed and stripped; punctuation-only is empty
        ("   राम    घर  ", "राम घर"),
        ("।", ""),
        (" \u200d ॥ \u00a0", ""),
        ("", ""),
        # Devanagari digits kept
        ("२००५ मा बिते।", "२००५ मा बिते"),
        # Latin kept here (dropping is the caller's choice) and lower-cased
        ("मेरो Email ठेगाना", "मेरो email ठेगाना"),
        # symbols that are not punctuation stay (reported as out-of-inventory)
        ("₹ ५०", "₹ ५०"),
    ],
)
def test_normalize_edge_cases(raw, expected):
    assert normalize_nepali(raw) == expected


def test_normalize_nfc():
    # NA + NUKTA composes to NNNA; QA (a composition exclusion) decomposes
    assert normalize_nepali("न\u093c") == "\u0929"
    assert normalize_nepali("\u0958") == "\u0915\u093c"
    # a ZWJ between base and nukta no longer blocks composition
    assert normalize_nepali("न\u200d\u093c") == "\u0929"


def test_ascii_digit_option():
    assert normalize_nepali("2 वटा 10") == "2 वटा 10"
    assert normalize_nepali("2 वटा 10", ascii_digits_to_devanagari=True) == "२ वटा १०"
    assert normalize_nepali("0123456789", ascii_digits_to_devanagari=True) == DEVANAGARI_DIGITS


def test_normalize_sample_corpus():
    texts = sample_transcripts()
    assert len(texts) > 200
    for raw in texts:
        text = normalize_nepali(raw)
        assert normalize_nepali(text) == text  # idempotent
        assert "  " not in text and text == text.strip()
        assert not any(c in text for c in "।॥,?!“”\u200c\u200d\u00a0\u200b\ufeff|")
        if not has_latin(raw):
            assert out_of_inventory(text) in ("", "2")  # one line has an ASCII digit


def test_has_latin():
    assert has_latin("आज office जान्छ")
    assert has_latin("café")
    assert not has_latin("आज घर जान्छ २००५ 2005 ₹")


def test_inventory():
    assert all(is_inventory_char(c) for c in "क ा्ं़ॐ" + DEVANAGARI_DIGITS)
    assert not any(is_inventory_char(c) for c in "।॥॰a5₹\u200d")
    assert is_inventory_char("a", keep_latin=True)
    assert not is_inventory_char("A", keep_latin=True)
    assert out_of_inventory("राम 2 email ₹") == "2email₹"
    assert out_of_inventory("राम 2 email ₹", keep_latin=True) == "2₹"
    counts = char_inventory(["राम राम", "र"])
    assert counts["र"] == 3 and counts[" "] == 1 and counts["ा"] == 2
