"""Shared fixtures: the committed Nepali test audio and the reference extractor."""

import os

import numpy as np
import pytest
import soundfile as sf
import torch

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")


@pytest.fixture(scope="session")
def nepali_speech():
    """Two espeak-ng Nepali utterances (16 kHz mono float32 arrays), see tests/data/make_test_audio.sh."""
    wavs = []
    for name in ("ne_speech_a.flac", "ne_speech_b.flac"):
        wav, rate = sf.read(os.path.join(DATA_DIR, name), dtype="float32")
        assert rate == 16000 and wav.ndim == 1
        wavs.append(wav)
    return wavs


@pytest.fixture(scope="session")
def joined_speech():
    """Six espeak-ng Nepali utterances joined end to end with their exact
    digital-silence edges, 17.7 s (tests/data/ne_joined_6.flac)."""
    wav, rate = sf.read(os.path.join(DATA_DIR, "ne_joined_6.flac"), dtype="float32")
    assert rate == 16000 and wav.ndim == 1
    return wav


@pytest.fixture(scope="session")
def reference_extractor():
    """transformers' numpy SeamlessM4TFeatureExtractor with its default settings."""
    from transformers import SeamlessM4TFeatureExtractor

    return SeamlessM4TFeatureExtractor()


def pad_batch(wavs):
    """Right-pads 1-D float arrays into ([B, T] tensor, relative lengths [B])."""
    length = max(len(w) for w in wavs)
    batch = torch.zeros(len(wavs), length)
    for i, wav in enumerate(wavs):
        batch[i, : len(wav)] = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    return batch, torch.tensor([len(w) / length for w in wavs])
