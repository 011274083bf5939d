"""Wav2Vec2Encoder against transformers' models fed by Wav2Vec2FeatureExtractor."""

import numpy as np
import pytest
import torch
from transformers import AutoModel, Wav2Vec2FeatureExtractor

from speechbrain_w2vbert.models.wav2vec2 import TINY_CONFIG_DIRS, Wav2Vec2Encoder
from tests.helpers import pad_batch

LAYER, GROUP, HUBERT = "wav2vec2_tiny_layer", "wav2vec2_tiny_group", "hubert_tiny"


@pytest.fixture(scope="module")
def mixed_batch(nepali_speech):
    rng = np.random.default_rng(0)
    wavs = [nepali_speech[0][:48000], rng.normal(0.05, 0.1, 12345).astype(np.float32), nepali_speech[1][:30001]]
    return wavs, *pad_batch(wavs)


def build(name, **kwargs):
    torch.manual_seed(0)
    return Wav2Vec2Encoder(TINY_CONFIG_DIRS[name], pretrained=False, **kwargs)


def reference_of(encoder):
    """transformers' own model, unmodified, with the same weights."""
    model = AutoModel.from_config(encoder.model.config).eval()
    model.load_state_dict(encoder.model.state_dict())
    return model


@pytest.mark.parametrize("name", [LAYER, GROUP, HUBERT])
def test_matches_hf_model_on_valid_frames(mixed_batch, name):
    wavs, batch, lens = mixed_batch
    encoder = build(name).eval()
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(TINY_CONFIG_DIRS[name])
    # Normalisation over each waveform's valid samples (the extractor does
    # that when it computes a mask); the mask reaches the model only where
    # the extractor returns one ("layer" models).
    inputs = extractor(wavs, sampling_rate=16000, padding=True, return_attention_mask=True, return_tensors="pt")
    mask = inputs["attention_mask"] if extractor.return_attention_mask else None
    reference = reference_of(encoder)
    with torch.no_grad():
        hidden, out_lens = encoder(batch, lens, return_lengths=True)
        expected = reference(inputs["input_values"], attention_mask=mask).last_hidden_state
    assert encoder.model.config.use_attention_mask == (name != GROUP)
    frames = reference._get_feat_extract_output_lengths(inputs["attention_mask"].sum(-1))
    assert torch.equal(torch.round(out_lens * hidden.shape[1]).long(), frames)
    for i, n in enumerate(frames.tolist()):
        torch.testing.assert_close(hidden[i, :n], expected[i, :n], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", [LAYER, HUBERT])
def test_alone_equals_in_batch(mixed_batch, name):
    """With the padding mask ("layer" models) padding changes nothing."""
    wavs, batch, lens = mixed_batch
    encoder = build(name).eval()
    with torch.no_grad():
        hidden, out_lens = encoder(batch, lens, return_lengths=True)
        for i, wav in enumerate(wavs):
            alone = encoder(torch.as_tensor(wav)[None])
            assert alone.shape[1] == round(out_lens[i].item() * hidden.shape[1])
            torch.testing.assert_close(hidden[i, : alone.shape[1]], alone[0], atol=1e-4, rtol=1e-4)


def test_options_reach_the_model():
    encoder = build(LAYER, mask_time_prob=0.3, layerdrop=0.1, frozen_layers=1, normalize_wav=False, output_norm=True)
    config = encoder.model.config
    assert (config.mask_time_prob, config.layerdrop, config.do_normalize) == (0.3, 0.1, False)
    assert not any(p.requires_grad for p in encoder.model.feature_extractor.parameters())
    assert not any(p.requires_grad for p in encoder.model.encoder.layers[0].parameters())
    assert all(p.requires_grad for p in encoder.model.encoder.layers[1].parameters())
    with pytest.raises(ValueError, match="frozen_layers"):
        build(LAYER, frozen_layers=5)
    checkpointed = build(HUBERT, gradient_checkpointing=True).train()
    checkpointed(torch.randn(2, 8000) * 0.1).sum().backward()
    assert checkpointed.model.encoder.layers[0].attention.q_proj.weight.grad is not None
    frozen = build(HUBERT, freeze=True).train()
    assert not frozen.model.training and not any(p.requires_grad for p in frozen.parameters())


def test_spec_augment_only_in_training():
    encoder = build(LAYER, mask_time_prob=0.5, mask_time_length=2, hidden_dropout=0.0, attention_dropout=0.0,
                    activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0)
    wavs = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        a, b = encoder.eval()(wavs), encoder.eval()(wavs)
        assert torch.equal(a, b)
        assert not torch.allclose(encoder.train()(wavs), a)


def test_config_round_trip_and_pretrained_folder(tmp_path):
    encoder = build(GROUP).eval()
    encoder.model.save_pretrained(tmp_path)
    loaded = Wav2Vec2Encoder(str(tmp_path)).eval()  # local folder with weights, offline
    rebuilt = Wav2Vec2Encoder(config=encoder.model.config.to_dict(), pretrained=False).eval()
    rebuilt.load_state_dict(encoder.state_dict())
    wavs = torch.randn(2, 8000) * 0.1
    lens = torch.tensor([1.0, 0.7])
    with torch.no_grad():
        expected = encoder(wavs, lens)
        torch.testing.assert_close(loaded(wavs, lens), expected)
        torch.testing.assert_close(rebuilt(wavs, lens), expected)
    assert rebuilt.model.config.use_attention_mask is False
    with pytest.raises(ValueError, match="pretrained=False"):
        Wav2Vec2Encoder(config=encoder.model.config.to_dict())
