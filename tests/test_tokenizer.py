"""Tests of speechbrain_w2vbert.text.tokenizer: HF parity of the character
tokenizer on every sample transcript, CTC decoding, and the SentencePiece
alternative."""

import json
import os
import random
import zipfile

import pytest
import torch
from transformers import Wav2Vec2CTCTokenizer

from speechbrain_w2vbert.text.normalize import normalize_nepali
from speechbrain_w2vbert.text.tokenizer import (
    PAD_TOKEN,
    UNK_TOKEN,
    WORD_DELIMITER,
    CharTokenizer,
    SentencePieceCTCTokenizer,
    build_tokenizer,
    collapse_ctc,
    read_csv_texts,
)

from openslr54_prepare import SAMPLE_DATA_DIR


@pytest.fixture(scope="module")
def texts():
    """Every normalised, non-empty sample transcript (Latin lines included)."""
    with zipfile.ZipFile(os.path.join(SAMPLE_DATA_DIR, "asr_nepali_0.zip")) as zf:
        tsv = zf.read("asr_nepali/utt_spk_text.tsv").decode("utf-8")
    out = [normalize_nepali(line.split("\t", 2)[2]) for line in tsv.split("\n") if line]
    return [t for t in out if t]


@pytest.fixture(scope="module")
def train_csv(sample_corpus):
    """train.csv of the sample corpus prepared with the default options."""
    return os.path.join(sample_corpus.save_folder, "train.csv")


def hf_tokenizer(folder):
    """The HF tokenizer, constructed exactly as documented."""
    return Wav2Vec2CTCTokenizer(
        os.path.join(folder, "vocab.json"), unk_token="[UNK]", pad_token="[PAD]",
        word_delimiter_token="|",
    )


def ctc_frames_for(ids, rng, blank=0):
    """A plausible CTC frame sequence for label ``ids``: random repeats and
    blanks, a blank always between equal neighbours."""
    frames = [blank] * rng.randrange(3)
    for i, label in enumerate(ids):
        if i and ids[i - 1] == label:
            frames.append(blank)
        frames += [label] * rng.randint(1, 3) + [blank] * rng.randrange(2)
    return frames


@pytest.mark.parametrize("min_count", [1, 3])
def test_hf_parity_on_every_sample_transcript(texts, tmp_path, min_count):
    tok = CharTokenizer.build(texts, min_count=min_count)
    tok.save(str(tmp_path))
    hf = hf_tokenizer(str(tmp_path))
    assert hf.pad_token_id == 0 and hf.unk_token_id == 1
    assert hf.word_delimiter_token_id == 2
    assert {t: hf.convert_tokens_to_ids(t) for t in tok.vocab} == tok.vocab
    rng = random.Random(0)
    unk_seen = False
    for text in texts:
        ids = tok.encode(text)
        assert ids == hf(text).input_ids
        unk_seen |= tok.unk_index in ids
        assert tok.decode_ids(ids) == hf.decode(ids, group_tokens=False)
        frames = ctc_frames_for(ids, rng)
        assert tok.decode_ctc(frames) == hf.decode(frames)
        if tok.unk_index not in ids:
            assert tok.decode_ctc(frames) == text
    assert unk_seen == (min_count > 1)


def test_hf_parity_on_hand_made_sequences(texts, tmp_path):
    tok = CharTokenizer.build(texts)
    tok.save(str(tmp_path))
    hf = hf_tokenizer(str(tmp_path))
    k, a = tok.vocab["क"], tok.vocab["ा"]
    cases = [
        [], [0], [0, 0, 0], [k], [k, k, k], [k, 0, k], [2, k, 2], [2, 2, 0, 2],
        [k, 2, 0, 2, a], [k, 2, 0, 2, 0, 2, a], [1, 1, 0, 1], [1, 0, 1, 2, 1],
        [0, k, a, a, 0, a, 2, 2, k, 0], list(range(tok.vocab_size)) * 2,
    ]
    for frames in cases:
        assert tok.decode_ctc(frames) == hf.decode(frames), frames
        assert tok.decode_ids(frames) == hf.decode(frames, group_tokens=False), frames
    for text in ["क  ा", " क ", "कxक", "", "क|क"]:  # not normalised: still equal
        assert tok.encode(text) == hf(text).input_ids, text


def test_build_from_train_csv_and_rare_characters(train_csv, tmp_path):
    tok = CharTokenizer.from_csv(train_csv)
    assert tok.tokens[:3] == [PAD_TOKEN, UNK_TOKEN, WORD_DELIMITER]
    assert " " not in tok.vocab
    assert tok.tokens[3:] == sorted(tok.tokens[3:])
    rare = CharTokenizer.from_csv(train_csv, min_count=5)
    dropped = set(tok.vocab) - set(rare.vocab)
    assert dropped and rare.vocab_size == tok.vocab_size - len(dropped)
    for char in dropped:
        assert rare.encode(char) == [rare.unk_index]
    assert rare.decode_ids(rare.encode("क" + min(dropped))) == "क[UNK]"


def test_save_load_roundtrip_and_validation(texts, tmp_path):
    tok = CharTokenizer.build(texts)
    path = tok.save(str(tmp_path / "tok"))
    assert not os.path.exists(path + ".tmp")
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == tok.vocab
    for source in (path, os.path.dirname(path)):
        loaded = CharTokenizer.load(source)
        assert loaded.vocab == tok.vocab and len(loaded) == len(tok)
    with pytest.raises(ValueError):
        CharTokenizer({"[UNK]": 0, "[PAD]": 1, "|": 2})
    with pytest.raises(ValueError):
        CharTokenizer({"[PAD]": 0, "[UNK]": 1, "|": 3})
    with pytest.raises(ValueError):
        CharTokenizer({"[PAD]": 0, "[UNK]": 1})


def test_tensor_inputs_and_collapse(texts):
    tok = CharTokenizer.build(texts)
    text = texts[0]
    labels = tok.encode_tensor(text)
    assert labels.dtype == torch.long and labels.tolist() == tok.encode(text)
    frames = torch.tensor(ctc_frames_for(labels.tolist(), random.Random(1)))
    assert tok.decode_ctc(frames) == text
    assert tok.decode_ids(labels) == text
    assert collapse_ctc(torch.tensor([0, 3, 3, 0, 3, 4, 4, 0])) == [3, 3, 4]
    assert collapse_ctc([5, 5, 1, 1], blank_index=1) == [5]


def test_build_tokenizer_char_saves_then_loads(train_csv, tmp_path):
    folder = str(tmp_path / "char")
    tok = build_tokenizer("char", folder, train_csv)
    assert tok.vocab == CharTokenizer.from_csv(train_csv).vocab
    # an existing vocab.json is reused as is (same ids for resumed training)
    again = build_tokenizer("char", folder, train_csv, min_count=1000)
    assert again.vocab == tok.vocab
    with pytest.raises(ValueError):
        build_tokenizer("char", str(tmp_path / "other"))
    with pytest.raises(ValueError):
        build_tokenizer("word", folder, train_csv)


@pytest.mark.parametrize("kind, vocab_size", [("sp_char", None), ("sp_unigram", 60), ("sp_bpe", 60)])
def test_sentencepiece_alternative(kind, vocab_size, train_csv, tmp_path):
    tok = build_tokenizer(kind, str(tmp_path / kind), train_csv, vocab_size=vocab_size)
    assert isinstance(tok, SentencePieceCTCTokenizer) and tok.blank_index == 0
    assert tok.vocab_size == tok.sp.get_piece_size() + 1
    rng = random.Random(2)
    for text in read_csv_texts(train_csv):
        ids = tok.encode(text)
        assert ids and min(ids) >= 1 and max(ids) < tok.vocab_size
        assert tok.decode_ids(ids) == text
        assert tok.decode_ctc(ctc_frames_for(ids, rng)) == text
    # the pieces as beam search and word timestamps see them
    assert tok.tokens[1:] == [tok.sp.id_to_piece(i) for i in range(tok.sp.get_piece_size())]
    assert tok.tokens[tok.unk_index] == tok.sp.id_to_piece(tok.sp.unk_id())
    from speechbrain_w2vbert.inference.timestamps import token_strings, word_timestamps

    text = read_csv_texts(train_csv)[0]
    ids = tok.encode(text)
    words = word_timestamps(ctc_frames_for(ids, rng), token_strings(tok), 0.02)
    assert [w.word for w in words] == text.split()  # pieces starting with ▁ begin words
    with pytest.raises(ValueError):
        build_tokenizer("sp_unigram", str(tmp_path / "x"), train_csv)
