"""The EncoderASR folder's hyperparams.yaml against golden files (the
product's public contract, read without running code), and what loads it.

``UPDATE_GOLDEN=1 pytest tests/test_folder.py`` rewrites the golden files
after a deliberate change; review their diff."""

import os
import re

import pytest
import torch

from speechbrain_w2vbert import TINY_CONFIG_DIR
from speechbrain_w2vbert.inference.folder import encoder_config_dict, hyperparams_yaml
from speechbrain_w2vbert.lm.beam import LMBeamDecoder
from speechbrain_w2vbert.models.w2vbert import W2VBert
from speechbrain_w2vbert.text.tokenizer import CharTokenizer, SentencePieceCTCTokenizer
from tests.helpers import DATA_DIR

GOLDEN = os.path.join(DATA_DIR, "golden")


@pytest.fixture(scope="module")
def encoder():
    return W2VBert(TINY_CONFIG_DIR, pretrained=False)


def _without_encoder_config(text):
    """The YAML with the inline transformers config (which follows the
    installed transformers release) replaced by a marker."""
    return re.sub(r"(?m)^encoder_config:.*\n(?:  .*\n)+", "encoder_config: <the encoder's config.json fields>\n", text)


@pytest.mark.parametrize("kind", ["greedy", "lm", "sentencepiece"])
def test_hyperparams_match_the_golden_file(kind, encoder):
    tokenizer = CharTokenizer.build(["राम घर", "सीता"])
    decoder = None
    if kind == "lm":
        decoder = LMBeamDecoder(tokenizer.tokens, lm_path="unused.arpa", beam_size=20, lm_weight=0.8, word_bonus=2.0)
    if kind == "sentencepiece":
        tokenizer = SentencePieceCTCTokenizer(processor=None)
    text = hyperparams_yaml(encoder, torch.nn.Linear(144, 9), tokenizer, decoder)
    assert "encoder_config:  # the encoder's architecture" in text
    path = os.path.join(GOLDEN, f"hyperparams_{kind}.yaml")
    if os.environ.get("UPDATE_GOLDEN"):
        with open(path, "w", encoding="utf-8") as f:
            f.write(_without_encoder_config(text))
    with open(path, encoding="utf-8") as f:
        assert _without_encoder_config(text) == f.read()


def test_the_inline_config_is_the_encoders_and_rebuilds_it(encoder):
    from hyperpyyaml import load_hyperpyyaml

    tokenizer = CharTokenizer.build(["राम घर"])
    text = hyperparams_yaml(encoder, torch.nn.Linear(144, tokenizer.vocab_size), tokenizer)
    loaded = load_hyperpyyaml(text)
    assert loaded["encoder_config"] == encoder_config_dict(encoder)
    assert loaded["speech_encoder"].model.config.to_dict() == encoder.model.config.to_dict() | {
        k: v for k, v in loaded["speech_encoder"].model.config.to_dict().items()
        if k in ("transformers_version", "architectures", "_name_or_path", "torch_dtype", "dtype", "vocab_size")}
    assert loaded["tokenizer"].vocab == tokenizer.vocab and loaded["lm_decoder"] is None
