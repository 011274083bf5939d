"""SpeechBrain lobe for raw-waveform encoders of the wav2vec 2.0 family.

``Wav2Vec2Encoder`` wraps ``transformers.AutoModel`` for wav2vec 2.0,
XLSR-53, XLS-R, MMS (all ``Wav2Vec2Model``) and HuBERT (``HubertModel``).
It exists because ``speechbrain.integrations.huggingface.Wav2Vec2`` (1.1.2)
normalises each waveform over its padding too, always passes a padding mask
(also to ``feat_extract_norm="group"`` models, which were not trained with
one), layer-normalises the output over time and channels together, returns
no output lengths, cannot build a model from a config alone and asks the hub
for the file list of every hub source. Here:

- each waveform is normalised to zero mean and unit variance over its own
  valid samples (``Wav2Vec2FeatureExtractor``'s ``do_normalize``, read from
  the source's ``preprocessor_config.json``), padding set to 0;
- the padding mask reaches the model only where the feature extractor would
  return one (``feat_extract_norm == "layer"``: large, XLSR-53, XLS-R, MMS,
  HuBERT large), as transformers documents;
- SpecAugment is transformers' own (training mode only, valid frames only
  when the mask is passed), set from the constructor;
- the CNN feature encoder can be frozen (transformers' ``_freeze_parameters``:
  no gradients, and it runs outside autograd);
- ``return_lengths=True`` gives the exact relative output lengths from the
  convolution stack (``_get_feat_extract_output_lengths``);
- a local folder is read with ``local_files_only``, and ``config=`` builds the
  model without any file (the inference folder's inline config).

Authors: speechbrain-w2vbert contributors
"""

import json
import math
import os
from typing import Optional

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from speechbrain_w2vbert.models.encoder import SpeechEncoder, sample_counts
from speechbrain_w2vbert.models.lengths import valid_mask

__all__ = ["Wav2Vec2Encoder", "TINY_CONFIG_DIRS", "normalize_waveforms", "receptive_field"]

_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs")

#: Tiny random-initialisation configs (tests, CPU runs): a wav2vec 2.0 with
#: layer-norm feature encoder (the large/XLSR/XLS-R/MMS layout), one with
#: group norm (the base layout), and a HuBERT; 2 layers x 32, 50 frames/s.
TINY_CONFIG_DIRS = {
    name: os.path.join(_CONFIGS, name) for name in ("wav2vec2_tiny_layer", "wav2vec2_tiny_group", "hubert_tiny")
}



def receptive_field(config: PretrainedConfig) -> int:
    """Input samples seen by one output frame of a wav2vec 2.0 family
    convolution stack (``conv_kernel``, ``conv_stride``): the fewest samples
    that give one frame.

    Example
    -------
    >>> receptive_field(AutoConfig.from_pretrained(TINY_CONFIG_DIRS["hubert_tiny"]))
    400
    """
    field = 1
    for kernel, stride in zip(reversed(config.conv_kernel), reversed(config.conv_stride)):
        field = (field - 1) * stride + kernel
    return field


def normalize_waveforms(wavs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per waveform over its valid samples; padding 0.

    The same as ``Wav2Vec2FeatureExtractor(do_normalize=True)`` with an
    attention mask: population variance, ``1e-7`` added before the root.

    Arguments
    ---------
    wavs : torch.Tensor
        Padded waveforms [B, T].
    lengths : torch.Tensor
        Valid samples per waveform [B] (integers, >= 1).

    Returns
    -------
    torch.Tensor
        Normalised waveforms [B, T], in fp32.

    Example
    -------
    >>> out = normalize_waveforms(torch.tensor([[1.0, 3.0, 0.0]]), torch.tensor([2]))
    >>> out.round(decimals=4)
    tensor([[-1.,  1.,  0.]])
    """
    wavs = wavs.float()
    valid = valid_mask(lengths, wavs.shape[1])
    count = lengths.clamp(min=1).to(wavs.dtype)[:, None]
    mean = (wavs * valid).sum(1, keepdim=True) / count
    var = (((wavs - mean) * valid) ** 2).sum(1, keepdim=True) / count
    return torch.where(valid, (wavs - mean) / torch.sqrt(var + 1e-7), torch.zeros((), dtype=wavs.dtype))


def _source_do_normalize(source: str, load_kwargs: dict) -> bool:
    """``do_normalize`` of the source's ``preprocessor_config.json`` (True
    without one, the feature extractor's default)."""
    if os.path.isdir(source):
        path = os.path.join(source, "preprocessor_config.json")
        if not os.path.isfile(path):
            return True
        with open(path, encoding="utf-8") as f:
            return bool(json.load(f).get("do_normalize", True))
    from transformers import Wav2Vec2FeatureExtractor

    try:
        return bool(Wav2Vec2FeatureExtractor.from_pretrained(source, **load_kwargs).do_normalize)
    except OSError:
        return True


class Wav2Vec2Encoder(SpeechEncoder):
    """wav2vec 2.0 / XLSR / XLS-R / MMS / HuBERT encoder on raw waveforms.

    The arguments shared with the other lobes (``source``, ``save_path``,
    ``pretrained``, ``freeze``, ``frozen_layers``, ``layerdrop``, SpecAugment,
    the dropouts, ``gradient_checkpointing``, ``output_all_hiddens``,
    ``output_norm``, ``revision``, ``config``) are
    :class:`~speechbrain_w2vbert.models.encoder.SpeechEncoder`'s; the raw-waveform
    family adds:

    Arguments
    ---------
    source : str, optional
        Hub id (``facebook/wav2vec2-xls-r-300m``) or local folder with
        ``config.json`` (see ``SpeechEncoder``).
    freeze_feature_encoder : bool
        Freeze the CNN feature encoder (default True, as in every published
        wav2vec 2.0 fine-tuning): no gradients, and it runs outside autograd.
    apply_spec_augment : bool, optional
        transformers' SpecAugment switch; None keeps the config's.
    normalize_wav : bool, optional
        Normalise each waveform over its valid samples; None reads
        ``do_normalize`` from the source's ``preprocessor_config.json``.
    use_attention_mask : bool, optional
        Pass the padding mask to the model; None: only when
        ``feat_extract_norm == "layer"`` (what the feature extractor does).
    **kwargs
        The shared arguments, as ``SpeechEncoder``. ``gradient_checkpointing``
        counts layers as transformers does (the CNN feature encoder's first).

    The resolved ``normalize_wav`` and ``use_attention_mask`` are stored in
    ``model.config`` (``do_normalize``, ``use_attention_mask``), so a model
    rebuilt from ``model.config.to_dict()`` behaves the same.

    Example
    -------
    >>> encoder = Wav2Vec2Encoder(TINY_CONFIG_DIRS["wav2vec2_tiny_layer"], pretrained=False)
    >>> wavs = torch.randn(2, 16000) * 0.1
    >>> hidden, lens = encoder(wavs, torch.tensor([1.0, 0.5]), return_lengths=True)
    >>> hidden.shape, lens
    (torch.Size([2, 49, 32]), tensor([1.0000, 0.4898]))
    >>> rebuilt = Wav2Vec2Encoder(config=encoder.model.config.to_dict(), pretrained=False)
    >>> type(rebuilt.model).__name__, rebuilt.model.config.use_attention_mask
    ('Wav2Vec2Model', True)
    >>> encoder.samples_per_frame, encoder.frame_rate, encoder.min_samples
    (320, 50.0, 400)
    """

    def __init__(
        self,
        source: Optional[str] = None,
        freeze_feature_encoder: bool = True,
        apply_spec_augment: Optional[bool] = None,
        normalize_wav: Optional[bool] = None,
        use_attention_mask: Optional[bool] = None,
        **kwargs,
    ):
        overrides = {} if apply_spec_augment is None else {"apply_spec_augment": apply_spec_augment}
        overrides.update(kwargs.pop("config_overrides", None) or {})
        self._normalize_wav, self._use_attention_mask = normalize_wav, use_attention_mask
        super().__init__(source, config_overrides=overrides, **kwargs)
        if not hasattr(self.model, "feature_extractor"):
            raise ValueError(
                f"{self.source}: {type(self.model).__name__} is not a raw-waveform wav2vec 2.0-style model"
            )
        if freeze_feature_encoder or self.freeze:
            self.model.feature_extractor._freeze_parameters()  # no gradients, and run outside autograd

    def _config_from_dict(self, config: dict) -> PretrainedConfig:
        """A transformers config from its ``to_dict()`` (``model_type`` picks the class)."""
        if "model_type" not in config:
            raise ValueError("Wav2Vec2Encoder: a config dict needs its 'model_type' (e.g. 'wav2vec2', 'hubert')")
        return CONFIG_MAPPING[config["model_type"]].from_dict(config)

    def _config_from_pretrained(self, source: str, **load_kwargs) -> PretrainedConfig:
        return AutoConfig.from_pretrained(source, **load_kwargs)

    def _complete_config(self, config, source, load_kwargs, given) -> None:
        """``do_normalize`` and ``use_attention_mask``: ours, not transformers' fields."""
        if self._normalize_wav is not None:
            config.do_normalize = self._normalize_wav
        elif not hasattr(config, "do_normalize"):
            config.do_normalize = True if given else _source_do_normalize(source, load_kwargs)
        if self._use_attention_mask is not None:
            config.use_attention_mask = self._use_attention_mask
        elif not hasattr(config, "use_attention_mask"):
            config.use_attention_mask = config.feat_extract_norm == "layer"

    def _build_model(self, config, source, load_kwargs):
        if source is None:
            return AutoModel.from_config(config)
        return AutoModel.from_pretrained(source, config=config, **load_kwargs)

    @property
    def normalize_wav(self) -> bool:
        """Whether waveforms are normalised (``model.config.do_normalize``)."""
        return bool(self.model.config.do_normalize)

    def _model_inputs(self, wavs, wav_lens):
        lengths = sample_counts(wavs, wav_lens)
        config = self.model.config
        if config.do_normalize:
            wavs = normalize_waveforms(wavs, lengths)
        inputs = {"input_values": wavs}
        if config.use_attention_mask:
            inputs["attention_mask"] = valid_mask(lengths, wavs.shape[1]).long()
        return inputs, lengths

    def output_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Output frames for ``num_samples`` input samples: the convolution
        stack's (and the adapter's) exact count (transformers'
        ``_get_feat_extract_output_lengths``).

        Example
        -------
        >>> Wav2Vec2Encoder(TINY_CONFIG_DIRS["hubert_tiny"], pretrained=False).output_frames(torch.tensor([16000, 400]))
        tensor([49,  1])
        """
        return self.model._get_feat_extract_output_lengths(num_samples)

    @property
    def samples_per_frame(self) -> int:
        """The product of the convolution strides (320), times the adapter's."""
        config = self.model.config
        frame = math.prod(config.conv_stride)
        if getattr(config, "add_adapter", False):
            frame *= config.adapter_stride ** config.num_adapter_layers
        return frame

    @property
    def min_samples(self) -> int:
        """The receptive field of the convolution stack (400 samples for the
        standard 7-layer stack): the fewest samples that give one frame."""
        return receptive_field(self.model.config)
