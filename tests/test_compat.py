"""Compatibility with 0.1.x: its dotted paths, and model folders it wrote
(the committed test model, and a folder with an LM exported by 0.1.0),
which load and give exactly 0.1.0's transcripts."""

import json
import os
import shutil

import pytest
import yaml

from speechbrain_w2vbert import compat
from tests.helpers import DATA_DIR, MODEL

LEGACY = os.path.join(DATA_DIR, "legacy_0.1")


def _targets(path):
    """Every ``!new:``/``!name:``/``!apply:`` target of a HyperPyYAML file."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    import re

    return sorted(set(re.findall(r"!(?:new|name|apply):([\w.]+)", text)))


def test_every_old_module_and_renamed_name_resolves():
    import importlib

    for old, new in compat.MODULES.items():
        module = importlib.import_module(old)
        assert module is importlib.import_module(new) or module.__name__ == old
    for old, new in compat.RENAMED.items():
        assert compat._locate(old) == compat._locate(new), old


@pytest.mark.parametrize("folder", [MODEL, os.path.join(LEGACY, "tiny_ne_model_lm")])
def test_the_targets_of_a_0_1_folder_still_resolve(folder):
    import pydoc

    targets = _targets(os.path.join(folder, "hyperparams.yaml"))
    assert "speechbrain_w2vbert.ctc.W2VBertCTC" in targets or "speechbrain_w2vbert.ctc.EncoderCTC" in targets
    for target in targets:
        assert pydoc.locate(target) is not None, target
        assert pydoc.locate(target) is pydoc.locate(compat.resolve(target)), target


@pytest.fixture(scope="module")
def recorded():
    with open(os.path.join(LEGACY, "transcripts.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def legacy_lm_folder(tmp_path_factory):
    """The 0.1.0 LM folder, with the test model's weights copied in."""
    folder = str(tmp_path_factory.mktemp("legacy") / "tiny_ne_model_lm")
    shutil.copytree(os.path.join(LEGACY, "tiny_ne_model_lm"), folder)
    for name in ("encoder.ckpt", "ctc_head.ckpt"):
        shutil.copyfile(os.path.join(MODEL, name), os.path.join(folder, name))
    return folder


@pytest.mark.parametrize("name", ["tiny_ne_model", "tiny_ne_model_lm"])
def test_0_1_folders_give_0_1_transcripts(name, recorded, legacy_lm_folder, sample_corpus, tmp_path):
    """The Transcriber's text and words (times, confidences) and
    ``EncoderASR.transcribe_file`` on every recorded file equal 0.1.0's."""
    from speechbrain_w2vbert.audio import read_audio
    from speechbrain_w2vbert.inference.folder import folder_lm_decoder, load_asr
    from speechbrain_w2vbert.inference.transcriber import Transcriber
    from tests.helpers import ROOT

    folder = MODEL if name == "tiny_ne_model" else legacy_lm_folder
    paths = [os.path.join(ROOT, p) if p.startswith("tests/") else os.path.join(sample_corpus.extract_folder, p)
             for p in recorded["files"]]
    asr = load_asr(folder, str(tmp_path / "savedir"))
    transcriber = Transcriber(asr, decoder=folder_lm_decoder(asr))
    results = transcriber.transcribe_waveforms([read_audio(p) for p in paths], timestamps=True)
    expected = recorded[name]
    assert [r.text for r in results] == [e["text"] for e in expected["transcriber"]]
    assert [[w.to_json() for w in r.words] for r in results] == [e["words"] for e in expected["transcriber"]]
    assert [asr.transcribe_file(p) for p in paths] == expected["encoder_asr"]
    assert (name == "tiny_ne_model_lm") == (folder_lm_decoder(asr) is not None)


def test_a_0_1_lm_folder_decodes_greedily_with_the_override(legacy_lm_folder, recorded, sample_corpus, tmp_path):
    from speechbrain_w2vbert.inference.folder import load_asr

    greedy = load_asr(legacy_lm_folder, str(tmp_path / "g"), overrides={"use_lm": False})
    path = os.path.join(sample_corpus.extract_folder, recorded["files"][3])
    assert greedy.transcribe_file(path) == recorded["tiny_ne_model"]["encoder_asr"][3]


def test_folders_written_now_name_only_current_paths(tmp_path):
    """An export of today names no 0.1.x path (so a later release can drop them)."""
    import torch

    from speechbrain_w2vbert import TINY_CONFIG_DIR
    from speechbrain_w2vbert.inference.folder import export_inference_folder
    from speechbrain_w2vbert.models.w2vbert import W2VBert
    from speechbrain_w2vbert.text.tokenizer import CharTokenizer

    tok = CharTokenizer.build(["राम घर"])
    path = export_inference_folder(str(tmp_path / "m"), W2VBert(TINY_CONFIG_DIR, pretrained=False),
                                   torch.nn.Linear(144, tok.vocab_size), tok)
    for target in _targets(path):
        assert compat.resolve(target) == target, target
    with open(path, encoding="utf-8") as f:
        assert yaml.load(f, Loader=yaml.BaseLoader)["blank_index"] == "0"
