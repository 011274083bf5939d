"""SpeechBrain lobe for w2v-BERT 2.0 (``transformers.Wav2Vec2BertModel``).

``W2VBert`` takes raw 16 kHz waveforms with SpeechBrain's relative lengths,
computes the SeamlessM4T features on the waveforms' device
(:class:`~speechbrain_w2vbert.features.SeamlessFbank`), builds the padding
mask from the lengths and runs the Conformer encoder. The wrapped
``Wav2Vec2BertModel`` is ``encoder.model``, so it saves and loads with
Hugging Face's ``save_pretrained`` / ``from_pretrained`` unchanged.

Authors: speechbrain-w2vbert contributors
"""

import inspect
import logging
import os
from typing import Callable, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from transformers import PretrainedConfig, Wav2Vec2BertConfig, Wav2Vec2BertModel

from speechbrain_w2vbert.attention import use_bucketed_attention
from speechbrain_w2vbert.convolution import use_time_major_convolution
from speechbrain_w2vbert.features import SeamlessFbank

__all__ = ["W2VBert", "build_model", "enable_checkpointing", "hub_load_kwargs", "resolve_config"]

logger = logging.getLogger(__name__)

#: Constructor arguments that are ``Wav2Vec2BertConfig`` fields of the same
#: name; ``None`` keeps the value of the source's ``config.json``.
CONFIG_FIELDS = (
    "layerdrop",
    "mask_time_prob",
    "mask_time_length",
    "mask_feature_prob",
    "mask_feature_length",
    "hidden_dropout",
    "attention_dropout",
    "activation_dropout",
    "feat_proj_dropout",
    "conformer_conv_dropout",
    "add_adapter",
    "num_adapter_layers",
)


#: ``frontend_precision`` -> (dtype, spectral_dtype) of the SeamlessFbank.
FRONTEND_PRECISIONS = {
    "mixed": (torch.float32, torch.float64),
    "fp64": (torch.float64, torch.float64),
    "fp32": (torch.float32, torch.float32),
}

#: ``attn_implementation`` value for transformers' SDPA kernel fed by our
#: bucketed relative-key bias (:mod:`speechbrain_w2vbert.attention`).
BUCKETED = "sdpa_bucketed"


def build_model(
    config: Wav2Vec2BertConfig,
    attn_implementation: str = BUCKETED,
    source: Optional[str] = None,
    time_major_conv: bool = True,
    **load_kwargs,
) -> Wav2Vec2BertModel:
    """Builds a ``Wav2Vec2BertModel``, randomly initialised or pretrained.

    Arguments
    ---------
    config : Wav2Vec2BertConfig
        The model's configuration.
    attn_implementation : str
        ``"sdpa_bucketed"`` (default: SDPA with the relative-key bias built
        from (B, H, L, 73) scores, see :mod:`speechbrain_w2vbert.attention`),
        or one of transformers' own: ``"sdpa"``, ``"eager"``, ``"flex_attention"``.
    source : str, optional
        Load the weights from this hub id or folder; None initialises randomly.
    time_major_conv : bool
        Compute the Conformer convolution modules time-major, pointwise
        convolutions as matrix products (default True: same results, faster,
        see :mod:`speechbrain_w2vbert.convolution`); False keeps transformers'.
    **load_kwargs
        Passed to ``Wav2Vec2BertModel.from_pretrained`` (``cache_dir``,
        ``local_files_only``, ``revision``).

    Returns
    -------
    Wav2Vec2BertModel

    Example
    -------
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> model = build_model(Wav2Vec2BertConfig.from_pretrained(TINY_CONFIG_DIR))
    >>> type(model.encoder.layers[0].self_attn).__name__, type(model.encoder.layers[0].conv_module).__name__
    ('BucketedRelativeKeySelfAttention', 'TimeMajorConvolutionModule')
    """
    hf_implementation = "sdpa" if attn_implementation == BUCKETED else attn_implementation
    if source is None:
        model = Wav2Vec2BertModel._from_config(config, attn_implementation=hf_implementation)
    else:
        model = Wav2Vec2BertModel.from_pretrained(
            source, config=config, attn_implementation=hf_implementation, **load_kwargs
        )
    if attn_implementation == BUCKETED:
        use_bucketed_attention(model)
    if time_major_conv:
        use_time_major_convolution(model)
    return model


def hub_load_kwargs(source: str, cache_dir: Optional[str] = None, revision: Optional[str] = None) -> dict:
    """``from_pretrained`` options for ``source``: a local folder is read with
    ``local_files_only`` (never the network); a hub id gets the cache folder
    and revision.

    Arguments
    ---------
    source : str
        Hub id or local folder.
    cache_dir : str, optional
        Hugging Face cache folder for a hub id.
    revision : str, optional
        Hub revision for a hub id.

    Returns
    -------
    dict

    Example
    -------
    >>> hub_load_kwargs("facebook/w2v-bert-2.0", "cache")
    {'cache_dir': 'cache', 'revision': None}
    """
    if os.path.isdir(source):
        return {"local_files_only": True}
    return {"cache_dir": cache_dir, "revision": revision}


def resolve_config(
    source: Optional[str],
    config: Optional[Union[dict, PretrainedConfig]],
    pretrained: bool,
    save_path: Optional[str],
    revision: Optional[str],
    owner: str,
    from_dict: Callable[[dict], PretrainedConfig],
    from_pretrained: Callable[..., PretrainedConfig],
) -> Tuple[PretrainedConfig, str, dict]:
    """The model config of an encoder lobe, from its ``source`` or given.

    The contract every lobe of this package shares: ``source`` is a hub id
    or a local folder (read with ``local_files_only``: no network), or
    ``config`` (a dict or config object, copied) gives the architecture
    itself, which has no weights (``pretrained`` must be False).

    Arguments
    ---------
    source, config, pretrained, save_path, revision
        The lobe's arguments of these names.
    owner : str
        The lobe's name, for error messages.
    from_dict : callable
        Builds a config from a dict.
    from_pretrained : callable
        Loads a config from a hub id or folder (with ``**load_kwargs``).

    Returns
    -------
    config : PretrainedConfig
        A config of the caller's own (safe to modify).
    source : str
        ``source``, or a description of the given config for messages.
    load_kwargs : dict
        Keyword arguments for the model's ``from_pretrained``.

    Example
    -------
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> config, name, kwargs = resolve_config(TINY_CONFIG_DIR, None, False, None, None, "W2VBert",
    ...     Wav2Vec2BertConfig.from_dict, Wav2Vec2BertConfig.from_pretrained)
    >>> config.hidden_size, kwargs
    (144, {'local_files_only': True})
    """
    if config is not None:
        if pretrained:
            raise ValueError(f"{owner}: a config alone has no weights; set pretrained=False (or give a source)")
        return from_dict(config if isinstance(config, dict) else config.to_dict()), source or "the given config", {}
    if source is None:
        raise ValueError(f"{owner} needs a source (hub id or folder) or a config")
    load_kwargs = hub_load_kwargs(source, save_path, revision)
    return from_pretrained(source, **load_kwargs), source, load_kwargs


def enable_checkpointing(model: torch.nn.Module, every_n_layers: int = 1) -> None:
    """Recomputes layers of a transformers model in the backward pass,
    non-reentrant (works under DDP and with frozen inputs); used by
    ``W2VBert`` and ``Wav2Vec2Encoder`` with ``gradient_checkpointing``.

    Arguments
    ---------
    model : torch.nn.Module
        A transformers ``PreTrainedModel``.
    every_n_layers : int
        Recompute layers 0, n, 2n, ... only (default 1: every layer); the
        others keep their activations, a middle ground of speed and memory.

    Example
    -------
    >>> from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> model = Wav2Vec2BertModel(Wav2Vec2BertConfig.from_pretrained(TINY_CONFIG_DIR))
    >>> enable_checkpointing(model)
    >>> model.is_gradient_checkpointing
    True
    """
    if every_n_layers < 1:
        raise ValueError(
            f"checkpointing every n-th layer needs n >= 1 (gradient_checkpointing, every_n_layers), got {every_n_layers}"
        )
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.x
    if enable is not None and "every_n_layers" in inspect.signature(enable).parameters:
        enable({"use_reentrant": False}, every_n_layers=every_n_layers)
    elif every_n_layers == 1:
        (enable or model.gradient_checkpointing_enable)({"use_reentrant": False})
    else:
        raise ValueError(
            f"checkpointing every {every_n_layers} layers needs activation_checkpointing_enable(every_n_layers=...), "
            f"which this transformers version lacks; upgrade transformers or checkpoint every layer"
        )


class W2VBert(torch.nn.Module):
    """w2v-BERT 2.0 encoder on raw waveforms, for SpeechBrain.

    Arguments
    ---------
    source : str
        A Hugging Face hub id (``facebook/w2v-bert-2.0``) or a local folder
        holding ``config.json`` (and the weights when ``pretrained``). A local
        folder is read with ``local_files_only``: it never touches the network.
    save_path : str, optional
        Cache folder for files fetched from the hub (default: the Hugging
        Face cache). Unused for a local folder.
    pretrained : bool
        Load the weights (default True). False builds the model from the
        config alone, randomly initialised (tests, the CPU demo, or weights
        loaded afterwards by a SpeechBrain ``Pretrainer``).
    freeze : bool
        Freeze the whole encoder: no gradients, always in eval mode, run under
        ``torch.no_grad`` (default False).
    freeze_feature_projection : bool
        Freeze the feature projection (layer norm + linear over the 160-dim
        features) (default False).
    frozen_layers : int
        Freeze the first N Conformer layers, N >= 0 (default 0).
    layerdrop : float, optional
        Probability in [0, 1) of skipping each Conformer layer in training.
        Under DDP, layers skipped on one rank leave unused parameters: run
        with ``find_unused_parameters``. None keeps the config's value.
    mask_time_prob : float, optional
        SpecAugment: fraction in [0, 1) of valid frames chosen as span
        starts for time masking (training mode only, padding never masked).
    mask_time_length : int, optional
        SpecAugment: length of each time mask, in 20 ms frames.
    mask_feature_prob : float, optional
        SpecAugment: fraction in [0, 1) of hidden channels chosen as span
        starts for channel masking (training mode only).
    mask_feature_length : int, optional
        SpecAugment: length of each channel mask, in channels.
    hidden_dropout, attention_dropout, activation_dropout, feat_proj_dropout, conformer_conv_dropout : float, optional
        Dropout probabilities in [0, 1) inside the encoder.
    add_adapter : bool, optional
        Add the convolutional adapter after the encoder; each adapter layer
        halves the frame rate (50 -> 25 frames/s for one layer).
    num_adapter_layers : int, optional
        Number of adapter layers (>= 1) when ``add_adapter``.
    attn_implementation : str
        ``"sdpa_bucketed"`` (default): transformers' attention with the
        relative-key bias computed without the (L, L, head_size) tensor (same
        results, see :mod:`speechbrain_w2vbert.attention`); or transformers'
        own ``"sdpa"``, ``"eager"``, ``"flex_attention"``.
    gradient_checkpointing : bool or int
        Recompute Conformer layers in the backward pass to save memory
        (non-reentrant, so it works under DDP): False or 0 (default) none,
        True or 1 every layer, n >= 2 every n-th layer (0, n, 2n, ...), which
        keeps part of the speed for part of the memory.
    time_major_conv : bool
        Compute the convolution modules time-major (default True: same
        results as transformers', faster; see :mod:`speechbrain_w2vbert.convolution`).
    output_all_hiddens : bool
        Return the stack of all hidden states [L + 1, B, T'', H] (the
        feature projection's output, then every layer's) instead of the last
        one (default False).
    output_layer : int, optional
        Keep only the first ``output_layer`` Conformer layers (1 <= N <= L)
        and return the last of them: layers above are never built nor
        loaded, which saves their compute and memory. None keeps all.
    output_norm : bool
        Apply a parameter-free layer norm to the output (default False).
    revision : str, optional
        Hub revision (branch, tag or commit) of ``source``.
    config : dict or Wav2Vec2BertConfig, optional
        The architecture itself, instead of a ``source`` (``pretrained``
        must then be False): lets an inference ``hyperparams.yaml`` carry
        the config inline and load the weights from a checkpoint.
    frontend_precision : str
        Precision of the SeamlessM4T features, the same in training and in
        eval mode: ``"mixed"`` (default: fp64 from the waveform to the power
        spectrum, fp32 after; within 6e-6 of transformers' extractor on every
        input measured), ``"fp64"`` (all fp64; within ~4e-6, a little
        slower), or ``"fp32"`` (all fp32: faster on the CPU, but up to 3.4e-3
        off on band-limited audio and 1e-3 on speech with pauses, see
        :mod:`speechbrain_w2vbert.features`).

    Example
    -------
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> encoder = W2VBert(TINY_CONFIG_DIR, pretrained=False)
    >>> wavs = torch.randn(2, 16000) * 0.1
    >>> hidden = encoder(wavs, torch.tensor([1.0, 0.6]))
    >>> hidden.shape
    torch.Size([2, 49, 144])
    >>> hidden, lens = encoder(wavs, torch.tensor([1.0, 0.6]), return_lengths=True)
    >>> lens
    tensor([1.0000, 0.5918])
    """

    def __init__(
        self,
        source: Optional[str] = None,
        save_path: Optional[str] = None,
        pretrained: bool = True,
        freeze: bool = False,
        freeze_feature_projection: bool = False,
        frozen_layers: int = 0,
        layerdrop: Optional[float] = None,
        mask_time_prob: Optional[float] = None,
        mask_time_length: Optional[int] = None,
        mask_feature_prob: Optional[float] = None,
        mask_feature_length: Optional[int] = None,
        hidden_dropout: Optional[float] = None,
        attention_dropout: Optional[float] = None,
        activation_dropout: Optional[float] = None,
        feat_proj_dropout: Optional[float] = None,
        conformer_conv_dropout: Optional[float] = None,
        add_adapter: Optional[bool] = None,
        num_adapter_layers: Optional[int] = None,
        attn_implementation: str = BUCKETED,
        gradient_checkpointing: Union[bool, int] = False,
        time_major_conv: bool = True,
        output_all_hiddens: bool = False,
        output_layer: Optional[int] = None,
        output_norm: bool = False,
        revision: Optional[str] = None,
        config: Optional[Union[dict, Wav2Vec2BertConfig]] = None,
        frontend_precision: str = "mixed",
    ):
        super().__init__()
        arguments = locals()
        overrides = {name: arguments[name] for name in CONFIG_FIELDS if arguments[name] is not None}
        if output_layer is not None:
            overrides["num_hidden_layers"] = output_layer

        config, source, load_kwargs = resolve_config(
            source, config, pretrained, save_path, revision, "W2VBert", Wav2Vec2BertConfig.from_dict,
            Wav2Vec2BertConfig.from_pretrained,
        )
        self._apply_overrides(config, overrides, source)
        if pretrained:
            self.model = build_model(config, attn_implementation, source, time_major_conv, **load_kwargs)
        else:
            self.model = build_model(config, attn_implementation, time_major_conv=time_major_conv)

        if frontend_precision not in FRONTEND_PRECISIONS:
            raise ValueError(
                f"frontend_precision must be one of {', '.join(FRONTEND_PRECISIONS)}, not {frontend_precision!r}"
            )
        self.frontend_precision = frontend_precision
        dtype, spectral_dtype = FRONTEND_PRECISIONS[frontend_precision]
        self.frontend = SeamlessFbank(dtype=dtype, spectral_dtype=spectral_dtype)
        feature_dim = self.frontend.n_mels * self.frontend.stride
        if config.feature_projection_input_dim != feature_dim:
            raise ValueError(
                f"{source}: config.feature_projection_input_dim is {config.feature_projection_input_dim}, "
                f"but the SeamlessM4T features have {feature_dim} dims."
            )

        self.freeze = freeze
        self.output_all_hiddens = output_all_hiddens
        self.output_norm = output_norm
        if gradient_checkpointing:
            enable_checkpointing(self.model, int(gradient_checkpointing))
        self._freeze_parameters(freeze, freeze_feature_projection, frozen_layers)

    @staticmethod
    def _apply_overrides(config: Wav2Vec2BertConfig, overrides: dict, source: str) -> None:
        """Writes overrides into the config and checks that each one took
        (SpeechBrain's ``override_config`` trap: a misspelt or ignored field
        would otherwise leave the model silently unchanged)."""
        layers = overrides.get("num_hidden_layers")
        if layers is not None and not 1 <= layers <= config.num_hidden_layers:
            raise ValueError(f"output_layer must be in [1, {config.num_hidden_layers}] for {source}, got {layers}")
        for name, value in overrides.items():
            if not hasattr(config, name):
                raise ValueError(f"{source}: Wav2Vec2BertConfig has no field {name!r}")
            setattr(config, name, value)
            if getattr(config, name) != value:
                raise ValueError(f"the override {name}={value!r} did not reach the config of {source}")
        if layers is not None and config.add_adapter:
            raise ValueError("output_layer cannot be combined with add_adapter: the adapter follows the last layer")

    def _freeze_parameters(self, freeze: bool, freeze_feature_projection: bool, frozen_layers: int) -> None:
        """Turns off gradients for the parts named by the freezing options."""
        layers = self.model.encoder.layers
        if not 0 <= frozen_layers <= len(layers):
            raise ValueError(f"frozen_layers must be in [0, {len(layers)}], got {frozen_layers}")
        frozen = []
        if freeze:
            frozen.append(self.model)
        if freeze_feature_projection:
            frozen.append(self.model.feature_projection)
        frozen.extend(layers[:frozen_layers])
        for module in frozen:
            for parameter in module.parameters():
                parameter.requires_grad_(False)
        if freeze:
            self.model.eval()

    def train(self, mode: bool = True) -> "W2VBert":
        """Sets training mode; a frozen encoder stays in eval mode."""
        torch.nn.Module.train(self, mode)  # explicit: Wav2Vec2Encoder shares this method
        if self.freeze:
            self.model.eval()
        return self

    def output_lengths(self, feat_lens: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Relative output lengths from the relative feature lengths.

        Without the adapter they are the feature lengths; each adapter layer
        (kernel 3, stride 2, padding 1) maps n frames to ``(n - 1) // 2 + 1``.

        Arguments
        ---------
        feat_lens : torch.Tensor
            Relative lengths [B] of the 160-dim feature frames.
        num_frames : int
            Padded number of feature frames T'.

        Returns
        -------
        torch.Tensor
            Relative lengths [B] of the encoder's output frames.
        """
        if not self.model.config.add_adapter:
            return feat_lens
        frames = torch.round(feat_lens * num_frames).long()
        lengths = self.model._get_feat_extract_output_lengths(frames)
        total = self.model._get_feat_extract_output_lengths(torch.tensor(num_frames))
        return lengths.float() / total

    def forward(
        self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None, return_lengths: bool = False
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Encodes a padded batch of waveforms.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms [B, T] in [-1, 1] at 16 kHz.
        wav_lens : torch.Tensor, optional
            Relative lengths [B] in (0, 1]; None means no padding.
        return_lengths : bool
            Also return the relative lengths of the output frames.

        Returns
        -------
        hidden : torch.Tensor
            [B, T'', H], or [L + 1, B, T'', H] with ``output_all_hiddens``.
        lengths : torch.Tensor
            Relative output lengths [B], with ``return_lengths`` only.
        """
        if self.freeze:
            with torch.no_grad():
                return self._encode(wavs, wav_lens, return_lengths)
        return self._encode(wavs, wav_lens, return_lengths)

    def _encode(self, wavs, wav_lens, return_lengths):
        feats, feat_lens = self.frontend(wavs, wav_lens)  # [B, T', 160] fp32
        num_frames = feats.shape[1]
        valid = torch.round(feat_lens * num_frames).long()
        attention_mask = torch.arange(num_frames, device=feats.device)[None, :] < valid[:, None]  # [B, T']
        outputs = self.model(
            input_features=feats,
            attention_mask=attention_mask.long(),
            output_hidden_states=self.output_all_hiddens,
        )
        if self.output_all_hiddens:
            hidden = torch.stack(outputs.hidden_states)  # [L + 1, B, T'', H]
        else:
            hidden = outputs.last_hidden_state  # [B, T'', H]
        if self.output_norm:
            hidden = F.layer_norm(hidden, hidden.shape[-1:])
        if return_lengths:
            return hidden, self.output_lengths(feat_lens, num_frames)
        return hidden
