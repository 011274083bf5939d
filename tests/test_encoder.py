"""The encoder lobes' shared base: the facts the rest of the code uses,
checked against what the models really output."""

import pytest
import torch

from speechbrain_w2vbert import TINY_CONFIG_DIR
from speechbrain_w2vbert.models.encoder import SpeechEncoder
from speechbrain_w2vbert.models.w2vbert import W2VBert
from speechbrain_w2vbert.models.wav2vec2 import TINY_CONFIG_DIRS, Wav2Vec2Encoder

ENCODERS = {
    "w2v-bert": lambda: W2VBert(TINY_CONFIG_DIR, pretrained=False),
    "w2v-bert + adapter": lambda: W2VBert(TINY_CONFIG_DIR, pretrained=False, add_adapter=True),
    "wav2vec2 (layer norm)": lambda: Wav2Vec2Encoder(TINY_CONFIG_DIRS["wav2vec2_tiny_layer"], pretrained=False),
    "wav2vec2 (group norm)": lambda: Wav2Vec2Encoder(TINY_CONFIG_DIRS["wav2vec2_tiny_group"], pretrained=False),
    "hubert": lambda: Wav2Vec2Encoder(TINY_CONFIG_DIRS["hubert_tiny"], pretrained=False),
}


@pytest.mark.parametrize("name", ENCODERS)
def test_facts_are_what_the_model_outputs(name):
    encoder = ENCODERS[name]().eval()
    assert isinstance(encoder, SpeechEncoder)
    assert encoder.frame_rate == 16000 / encoder.samples_per_frame
    lengths = [encoder.min_samples, encoder.min_samples + 1, 8000, 16000, 16321, 33333]
    with torch.no_grad():
        for n in lengths:
            hidden = encoder(torch.randn(1, n) * 0.1)
            assert hidden.shape[1] == int(encoder.output_frames(torch.tensor(n))), (name, n)
            assert hidden.shape[2] == encoder.output_size
    assert int(encoder.output_frames(torch.tensor(encoder.min_samples - 1))) == 0
    # one more output frame every samples_per_frame samples
    base = encoder.min_samples + 3 * encoder.samples_per_frame
    steps = encoder.output_frames(base + encoder.samples_per_frame * torch.arange(6)) - encoder.output_frames(
        torch.tensor(base))
    assert steps.tolist() == list(range(6))


@pytest.mark.parametrize("name", ["w2v-bert", "hubert"])
def test_relative_output_lengths_follow_the_batch(name):
    encoder = ENCODERS[name]().eval()
    wavs = torch.randn(3, 20000) * 0.1
    lens = torch.tensor([1.0, 0.61, 0.3])
    with torch.no_grad():
        hidden, out_lens = encoder(wavs, lens, return_lengths=True)
        for i in range(3):
            n = int(torch.round(lens[i] * 20000))
            alone = encoder(wavs[i : i + 1, :n])
            assert int(torch.round(out_lens[i] * hidden.shape[1])) == alone.shape[1]


def test_shared_arguments_reach_both_lobes():
    for lobe, source in ((W2VBert, TINY_CONFIG_DIR), (Wav2Vec2Encoder, TINY_CONFIG_DIRS["hubert_tiny"])):
        encoder = lobe(source, pretrained=False, layerdrop=0.25, mask_time_prob=0.1, frozen_layers=1, output_norm=True)
        assert encoder.model.config.layerdrop == 0.25 and encoder.model.config.mask_time_prob == 0.1
        assert not any(p.requires_grad for p in encoder.model.encoder.layers[0].parameters())
        assert all(p.requires_grad for p in encoder.model.encoder.layers[1].parameters())
        with pytest.raises(ValueError, match="has no field 'not_a_field'"):
            lobe(source, pretrained=False, config_overrides={"not_a_field": 1})
        frozen = lobe(source, pretrained=False, freeze=True).train()
        assert not frozen.model.training and not any(p.requires_grad for p in frozen.parameters())
