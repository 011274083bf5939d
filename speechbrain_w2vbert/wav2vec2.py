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
import os
from typing import Optional, Union

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from speechbrain_w2vbert.lobe import W2VBert, enable_checkpointing, resolve_config

__all__ = ["Wav2Vec2Encoder", "TINY_CONFIG_DIRS", "normalize_waveforms"]

_CONFIGS = os.path.join(os.path.dirname(__file__), "configs")

#: Tiny random-initialisation configs (tests, CPU runs): a wav2vec 2.0 with
#: layer-norm feature encoder (the large/XLSR/XLS-R/MMS layout), one with
#: group norm (the base layout), and a HuBERT; 2 layers x 32, 50 frames/s.
TINY_CONFIG_DIRS = {
    name: os.path.join(_CONFIGS, name) for name in ("wav2vec2_tiny_layer", "wav2vec2_tiny_group", "hubert_tiny")
}

#: Constructor arguments that are config fields of the same name; ``None``
#: keeps the source's value.
CONFIG_FIELDS = (
    "apply_spec_augment",
    "layerdrop",
    "mask_time_prob",
    "mask_time_length",
    "mask_feature_prob",
    "mask_feature_length",
    "hidden_dropout",
    "attention_dropout",
    "activation_dropout",
    "feat_proj_dropout",
)


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
    valid = torch.arange(wavs.shape[1], device=wavs.device)[None, :] < lengths[:, None]
    count = lengths.to(wavs.dtype)[:, None]
    mean = (wavs * valid).sum(1, keepdim=True) / count
    var = (((wavs - mean) * valid) ** 2).sum(1, keepdim=True) / count
    return torch.where(valid, (wavs - mean) / torch.sqrt(var + 1e-7), torch.zeros((), dtype=wavs.dtype))


def _config_from_dict(config: dict) -> PretrainedConfig:
    """A transformers config from its ``to_dict()`` (``model_type`` picks the class)."""
    if "model_type" not in config:
        raise ValueError("Wav2Vec2Encoder: a config dict needs its 'model_type' (e.g. 'wav2vec2', 'hubert')")
    return CONFIG_MAPPING[config["model_type"]].from_dict(config)


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


class Wav2Vec2Encoder(torch.nn.Module):
    """wav2vec 2.0 / XLSR / XLS-R / MMS / HuBERT encoder on raw waveforms.

    Arguments
    ---------
    source : str, optional
        Hub id (``facebook/wav2vec2-xls-r-300m``) or local folder with
        ``config.json`` (and weights when ``pretrained``); a local folder never
        touches the network.
    save_path : str, optional
        Hub cache folder (default: Hugging Face's). Unused for a local folder.
    pretrained : bool
        Load the weights (default True); False initialises randomly from the
        config.
    freeze : bool
        Freeze the whole encoder (eval mode, no gradients, run under no_grad).
    freeze_feature_encoder : bool
        Freeze the CNN feature encoder (default True, as in every published
        wav2vec 2.0 fine-tuning).
    frozen_layers : int
        Also freeze the first N Transformer layers (default 0).
    apply_spec_augment, mask_time_prob, mask_time_length, mask_feature_prob, mask_feature_length : optional
        transformers' SpecAugment (training mode only); None keeps the config's.
    layerdrop, hidden_dropout, attention_dropout, activation_dropout, feat_proj_dropout : float, optional
        Regularisation; None keeps the config's.
    normalize_wav : bool, optional
        Normalise each waveform over its valid samples; None reads
        ``do_normalize`` from the source's ``preprocessor_config.json``.
    use_attention_mask : bool, optional
        Pass the padding mask to the model; None: only when
        ``feat_extract_norm == "layer"`` (what the feature extractor does).
    gradient_checkpointing : bool or int
        Non-reentrant activation checkpointing of the Transformer layers:
        False or 0 none, True or 1 every layer, n >= 2 every n-th layer as
        transformers counts them (the CNN feature encoder's layers first).
    output_all_hiddens : bool
        Return all hidden states [L + 1, B, T, H] instead of the last.
    output_norm : bool
        Parameter-free layer norm over channels on the output (default False).
    revision : str, optional
        Hub revision of ``source``.
    config : dict or PretrainedConfig, optional
        The architecture instead of a ``source`` (with ``pretrained=False``).

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
    """

    def __init__(
        self,
        source: Optional[str] = None,
        save_path: Optional[str] = None,
        pretrained: bool = True,
        freeze: bool = False,
        freeze_feature_encoder: bool = True,
        frozen_layers: int = 0,
        apply_spec_augment: Optional[bool] = None,
        layerdrop: Optional[float] = None,
        mask_time_prob: Optional[float] = None,
        mask_time_length: Optional[int] = None,
        mask_feature_prob: Optional[float] = None,
        mask_feature_length: Optional[int] = None,
        hidden_dropout: Optional[float] = None,
        attention_dropout: Optional[float] = None,
        activation_dropout: Optional[float] = None,
        feat_proj_dropout: Optional[float] = None,
        normalize_wav: Optional[bool] = None,
        use_attention_mask: Optional[bool] = None,
        gradient_checkpointing: Union[bool, int] = False,
        output_all_hiddens: bool = False,
        output_norm: bool = False,
        revision: Optional[str] = None,
        config: Optional[Union[dict, PretrainedConfig]] = None,
    ):
        super().__init__()
        arguments = locals()
        overrides = {name: arguments[name] for name in CONFIG_FIELDS if arguments[name] is not None}
        given = config is not None
        config, source, load_kwargs = resolve_config(
            source, config, pretrained, save_path, revision, "Wav2Vec2Encoder", _config_from_dict,
            AutoConfig.from_pretrained,
        )
        default_normalize = getattr(config, "do_normalize", True) if given else _source_do_normalize(source, load_kwargs)
        if normalize_wav is not None:
            overrides["do_normalize"] = normalize_wav
        elif not hasattr(config, "do_normalize"):
            overrides["do_normalize"] = default_normalize
        if use_attention_mask is not None:
            overrides["use_attention_mask"] = use_attention_mask
        elif not hasattr(config, "use_attention_mask"):
            overrides["use_attention_mask"] = config.feat_extract_norm == "layer"
        for name in ("do_normalize", "use_attention_mask"):  # ours, not transformers' fields
            if name in overrides:
                setattr(config, name, overrides.pop(name))
        W2VBert._apply_overrides(config, overrides, source)

        if pretrained:
            self.model = AutoModel.from_pretrained(source, config=config, **load_kwargs)
        else:
            self.model = AutoModel.from_config(config)
        if not hasattr(self.model, "feature_extractor"):
            raise ValueError(f"{source}: {type(self.model).__name__} is not a raw-waveform wav2vec 2.0-style model")

        self.freeze = freeze
        self.output_all_hiddens = output_all_hiddens
        self.output_norm = output_norm
        if gradient_checkpointing:
            enable_checkpointing(self.model, int(gradient_checkpointing))
        if freeze_feature_encoder or freeze:
            self.model.feature_extractor._freeze_parameters()  # no gradients, and run outside autograd
        self._freeze_parameters(freeze, False, frozen_layers)

    @property
    def normalize_wav(self) -> bool:
        """Whether waveforms are normalised (``model.config.do_normalize``)."""
        return bool(self.model.config.do_normalize)

    # As W2VBert's: whole-encoder and first-N-layers freezing; forward's
    # signature, a frozen encoder run under no_grad; a frozen encoder staying
    # in eval mode.
    _freeze_parameters = W2VBert._freeze_parameters
    forward = W2VBert.forward
    train = W2VBert.train

    def _encode(self, wavs, wav_lens, return_lengths):
        batch, num_samples = wavs.shape
        if wav_lens is None:
            lengths = torch.full((batch,), num_samples, device=wavs.device, dtype=torch.long)
        else:
            lengths = torch.round(wav_lens.to(wavs.device) * num_samples).long().clamp(1, num_samples)
        config = self.model.config
        if config.do_normalize:
            wavs = normalize_waveforms(wavs, lengths)
        mask = None
        if config.use_attention_mask:
            mask = (torch.arange(num_samples, device=wavs.device)[None, :] < lengths[:, None]).long()
        outputs = self.model(wavs, attention_mask=mask, output_hidden_states=self.output_all_hiddens)
        hidden = torch.stack(outputs.hidden_states) if self.output_all_hiddens else outputs.last_hidden_state
        if self.output_norm:
            hidden = F.layer_norm(hidden, hidden.shape[-1:])
        if not return_lengths:
            return hidden
        frames = self.model._get_feat_extract_output_lengths(lengths)
        return hidden, frames.float() / hidden.shape[-2]
