"""The OpenSLR 54 recipe with the wav2vec 2.0 family's hparams file
(``hparams/wav2vec2_ctc.yaml``): each architecture (wav2vec 2.0 with a
layer-norm or a group-norm feature encoder, HuBERT) instantiates from a tiny
local config in place of the hub model, trains one short epoch of the
sample corpus through ``train.main`` in this process, with a finite,
falling loss, and exports; the CPU training settings come from
``hparams/w2vbert_ctc_tiny.yaml`` (the ``tiny_training`` fixture).
"""

import os

import pytest
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml

import train
from speechbrain_w2vbert.models.wav2vec2 import TINY_CONFIG_DIRS, Wav2Vec2Encoder
from tests.helpers import HPARAMS_DIR

FAMILY_HPARAMS = os.path.join(HPARAMS_DIR, "wav2vec2_ctc.yaml")

#: tiny config -> the HF model class it builds
ARCHITECTURES = {"wav2vec2_tiny_layer": "Wav2Vec2Model", "wav2vec2_tiny_group": "Wav2Vec2Model",
                 "hubert_tiny": "HubertModel"}


@pytest.mark.parametrize("tiny", sorted(ARCHITECTURES))
def test_family_file_instantiates_each_architecture(tiny, tmp_path):
    overrides = {"data_folder": str(tmp_path), "encoder_source": TINY_CONFIG_DIRS[tiny],
                 "encoder_pretrained": False, "run_name": "tiny"}
    with open(FAMILY_HPARAMS, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    encoder = hparams["encoder"]
    assert isinstance(encoder, Wav2Vec2Encoder) and type(encoder.model).__name__ == ARCHITECTURES[tiny]
    assert hparams["output_folder"] == "results/tiny/1986"
    config = encoder.model.config
    assert (config.mask_time_prob, config.mask_time_length, config.layerdrop) == (0.05, 10, 0.05)
    assert not any(p.requires_grad for p in encoder.model.feature_extractor.parameters())


@pytest.mark.recipe
@pytest.mark.parametrize("tiny", sorted(ARCHITECTURES))
def test_architecture_trains_one_epoch(tiny, recipe_data, tiny_training, tmp_path, monkeypatch):
    data = recipe_data
    losses = []
    objectives = train.ASR.compute_objectives

    def recording(self, predictions, batch, stage):
        loss = objectives(self, predictions, batch, stage)
        if stage == train.sb.Stage.TRAIN:
            losses.append(loss.item())
        return loss

    monkeypatch.setattr(train.ASR, "compute_objectives", recording)
    output = tmp_path / "exp"
    settings = dict(tiny_training, number_of_epochs=1, encoder_source=TINY_CONFIG_DIRS[tiny], encoder_pretrained=False,
                    freeze_feature_encoder=False, lm_decoding=False)  # LM decoding: tests/test_recipe.py
    overrides = [f"--{key}={value}" for key, value in settings.items() if key != "dataloader_opts"]
    overrides.append("--dataloader_opts=" + yaml.safe_dump(settings["dataloader_opts"], default_flow_style=True).strip())
    train.main([FAMILY_HPARAMS, "--data_folder=unused", "--skip_prep=True", f"--train_csv={data['train']}",
                f"--dev_csv={data['dev']}", f"--test_csv={data['test']}", f"--output_folder={output}",
                "--noprogressbar", *overrides])
    assert len(losses) >= 4 and all(map(torch.isfinite, torch.tensor(losses))), losses
    assert sum(losses[-2:]) < sum(losses[:2]), losses
    with open(output / "hyperparams.yaml", encoding="utf-8") as f:  # the whole configuration, as run
        assert "Wav2Vec2Encoder" in f.read()
    assert os.path.isfile(output / "wer_test.txt")
    # both exports give the trained model's log-probabilities
    from speechbrain.inference.ASR import EncoderASR
    from transformers import AutoModelForCTC, AutoProcessor

    asr = EncoderASR.from_hparams(source=str(output / "inference"), savedir=str(tmp_path / "asr"))
    hf = AutoModelForCTC.from_pretrained(output / "hf_model").eval()
    processor = AutoProcessor.from_pretrained(output / "hf_model")
    wavs = [torch.randn(12000) * 0.1, torch.randn(9000) * 0.1 + 0.02]
    batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    inputs = processor(audio=[w.numpy() for w in wavs], sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = asr.encode_batch(batch, torch.tensor([1.0, 0.75]))
        theirs = hf(**inputs).logits.log_softmax(-1)
        frames = hf._get_feat_extract_output_lengths(torch.tensor([12000, 9000])).tolist()
    checked = [0] if tiny == "wav2vec2_tiny_group" else [0, 1]  # group norm: padding changes a shorter one
    for i in checked:
        torch.testing.assert_close(ours[i, : frames[i]], theirs[i, : frames[i]], atol=2e-4, rtol=0)
