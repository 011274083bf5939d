"""The base of this package's SpeechBrain lobes over Hugging Face speech
encoders (:class:`~speechbrain_w2vbert.models.w2vbert.W2VBert`,
:class:`~speechbrain_w2vbert.models.wav2vec2.Wav2Vec2Encoder`).

:class:`SpeechEncoder` holds what every such lobe does the same way: where
the model comes from (a hub id, a local folder that never touches the
network, or a config alone), checked overrides of config fields, freezing,
training/eval mode, gradient checkpointing, the forward pass with
SpeechBrain's relative lengths in and out, and the facts about the encoder
the rest of the code needs (output size, samples per output frame, frame
rate, exact output frame counts, the shortest input). A subclass states only
what differs: its config class, how it builds the model, and how waveforms
become the model's inputs.

Authors: speechbrain-w2vbert contributors
"""

import inspect
import os
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from transformers import PretrainedConfig

from speechbrain_w2vbert.models.lengths import absolute_lengths, relative_lengths

__all__ = ["SpeechEncoder", "apply_overrides", "enable_checkpointing", "hub_load_kwargs", "resolve_config",
           "sample_counts", "unwrap"]

#: Constructor arguments of every lobe that are config fields of the same
#: name in the wav2vec 2.0 family and w2v-BERT 2.0; None keeps the source's value.
SHARED_CONFIG_FIELDS = (
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


def sample_counts(wavs: torch.Tensor, wav_lens: Optional[torch.Tensor]) -> torch.Tensor:
    """Valid samples [B] of a padded batch [B, T] from SpeechBrain's relative
    lengths (:func:`~speechbrain_w2vbert.models.lengths.absolute_lengths`;
    all T when None).

    Example
    -------
    >>> sample_counts(torch.zeros(2, 10), torch.tensor([1.0, 0.45]))
    tensor([10,  4])
    """
    batch, length = wavs.shape
    if wav_lens is None:
        return torch.full((batch,), length, device=wavs.device, dtype=torch.long)
    return absolute_lengths(wav_lens.to(wavs.device), length)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP/DataParallel wrapper (or the module itself):
    what the recipe's Brain holds after ``fit`` starts.

    Example
    -------
    >>> layer = torch.nn.Linear(1, 1)
    >>> unwrap(torch.nn.DataParallel(layer)) is layer, unwrap(layer) is layer
    (True, True)
    """
    return getattr(module, "module", module)


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

    ``source`` is a hub id or a local folder (read with ``local_files_only``:
    no network), or ``config`` (a dict or config object, copied) gives the
    architecture itself, which has no weights (``pretrained`` must be False).

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
    >>> from transformers import Wav2Vec2BertConfig
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


def apply_overrides(config: PretrainedConfig, overrides: Dict[str, object], source: str) -> None:
    """Writes overrides into a config and checks that each one took
    (SpeechBrain's ``override_config`` trap: a misspelt or ignored field
    would otherwise leave the model silently unchanged).

    Arguments
    ---------
    config : PretrainedConfig
        Modified in place.
    overrides : dict
        Field name -> value.
    source : str
        Where the config came from, for messages.

    Example
    -------
    >>> from transformers import Wav2Vec2Config
    >>> config = Wav2Vec2Config()
    >>> apply_overrides(config, {"layerdrop": 0.2}, "x"); config.layerdrop
    0.2
    >>> apply_overrides(config, {"layer_drop": 0.2}, "x")
    Traceback (most recent call last):
    ...
    ValueError: x: Wav2Vec2Config has no field 'layer_drop'
    """
    for name, value in overrides.items():
        if not hasattr(config, name):
            raise ValueError(f"{source}: {type(config).__name__} has no field {name!r}")
        setattr(config, name, value)
        if getattr(config, name) != value:
            raise ValueError(f"the override {name}={value!r} did not reach the {type(config).__name__} of {source}")


def enable_checkpointing(model: torch.nn.Module, every_n_layers: int = 1) -> None:
    """Recomputes layers of a transformers model in the backward pass,
    non-reentrant (works under DDP and with frozen inputs).

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


class SpeechEncoder(torch.nn.Module):
    """A Hugging Face speech encoder as a SpeechBrain lobe: raw 16 kHz
    waveforms and relative lengths in, hidden states (and their relative
    lengths) out. The wrapped transformers model is ``self.model``.

    Subclasses set :attr:`config_class` (or override :meth:`_config_from_dict`
    and :meth:`_config_from_pretrained`) and implement :meth:`_build_model`,
    :meth:`_model_inputs` and :meth:`output_frames`.

    Arguments
    ---------
    source : str, optional
        A Hugging Face hub id or a local folder holding ``config.json`` (and
        the weights when ``pretrained``); a local folder is read with
        ``local_files_only``: it never touches the network.
    save_path : str, optional
        Cache folder for files fetched from the hub (default: Hugging Face's).
        Unused for a local folder.
    pretrained : bool
        Load the weights (default True); False builds the model from the
        config alone, randomly initialised (tests, the CPU demo, or weights
        loaded afterwards from a checkpoint).
    freeze : bool
        Freeze the whole encoder: no gradients, always in eval mode, run under
        ``torch.no_grad`` (default False).
    frozen_layers : int
        Freeze the first N Transformer/Conformer layers, N >= 0 (default 0).
    layerdrop : float, optional
        Probability in [0, 1) of skipping each layer in training. Under DDP,
        layers skipped on one rank leave unused parameters: run with
        ``find_unused_parameters``. None keeps the config's value.
    mask_time_prob, mask_time_length, mask_feature_prob, mask_feature_length : optional
        transformers' SpecAugment (training mode only, valid frames only):
        the fraction in [0, 1) of frames (channels) starting a mask, and the
        mask length in frames (channels). None keeps the config's values.
    hidden_dropout, attention_dropout, activation_dropout, feat_proj_dropout : float, optional
        Dropout probabilities in [0, 1) inside the encoder; None keeps the
        config's values.
    gradient_checkpointing : bool or int
        Recompute layers in the backward pass to save memory (non-reentrant,
        so it works under DDP): False or 0 (default) none, True or 1 every
        layer, n >= 2 every n-th layer as transformers counts them.
    output_all_hiddens : bool
        Return the stack of all hidden states [L + 1, B, T'', H] instead of
        the last one (default False).
    output_norm : bool
        Apply a parameter-free layer norm over channels to the output
        (default False).
    revision : str, optional
        Hub revision (branch, tag or commit) of ``source``.
    config : dict or PretrainedConfig, optional
        The architecture itself, instead of a ``source`` (``pretrained`` must
        then be False): lets an inference ``hyperparams.yaml`` carry the
        config inline and load the weights from a checkpoint.
    config_overrides : dict, optional
        Further config fields to set, each checked to have reached the
        config (the lobes add their own arguments' fields to it).
    """

    #: The transformers config class (subclasses set it).
    config_class = PretrainedConfig

    def __init__(
        self,
        source: Optional[str] = None,
        save_path: Optional[str] = None,
        pretrained: bool = True,
        freeze: bool = False,
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
        gradient_checkpointing: Union[bool, int] = False,
        output_all_hiddens: bool = False,
        output_norm: bool = False,
        revision: Optional[str] = None,
        config: Optional[Union[dict, PretrainedConfig]] = None,
        config_overrides: Optional[Dict[str, object]] = None,
    ):
        super().__init__()
        arguments = locals()
        overrides = {name: arguments[name] for name in SHARED_CONFIG_FIELDS if arguments[name] is not None}
        overrides.update(config_overrides or {})
        owner = type(self).__name__
        given = config is not None
        config, source, load_kwargs = resolve_config(
            source, config, pretrained, save_path, revision, owner, self._config_from_dict,
            self._config_from_pretrained,
        )
        self.source = source
        self._complete_config(config, source, load_kwargs, given)
        self._check_overrides(config, overrides, source)
        apply_overrides(config, overrides, source)
        self.model = self._build_model(config, source if pretrained else None, load_kwargs)

        self.freeze = freeze
        self.output_all_hiddens = output_all_hiddens
        self.output_norm = output_norm
        if gradient_checkpointing:
            enable_checkpointing(self.model, int(gradient_checkpointing))
        layers = self.model.encoder.layers
        if not 0 <= frozen_layers <= len(layers):
            raise ValueError(f"frozen_layers must be in [0, {len(layers)}], got {frozen_layers}")
        frozen = [self.model] if freeze else list(self._frozen_modules()) + list(layers[:frozen_layers])
        for module in frozen:
            for parameter in module.parameters():
                parameter.requires_grad_(False)
        if freeze:
            self.model.eval()

    # ------------------------------------------------------ subclass hooks
    def _config_from_dict(self, config: dict) -> PretrainedConfig:
        """A config from its ``to_dict()`` (a subclass may pick the class)."""
        return self.config_class.from_dict(config)

    def _config_from_pretrained(self, source: str, **load_kwargs) -> PretrainedConfig:
        """The config of a hub id or folder."""
        return self.config_class.from_pretrained(source, **load_kwargs)

    def _complete_config(self, config: PretrainedConfig, source: str, load_kwargs: dict, given: bool) -> None:
        """Sets the config fields this package adds (none by default)."""

    def _check_overrides(self, config: PretrainedConfig, overrides: dict, source: str) -> None:
        """Validates the overrides against the config before they are
        applied (nothing by default)."""

    def _build_model(self, config: PretrainedConfig, source: Optional[str], load_kwargs: dict) -> torch.nn.Module:
        """The transformers model: pretrained from ``source``, or randomly
        initialised when ``source`` is None."""
        raise NotImplementedError

    def _frozen_modules(self) -> Sequence[torch.nn.Module]:
        """Modules frozen by the subclass's own options."""
        return ()

    def _model_inputs(
        self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor]
    ) -> Tuple[dict, torch.Tensor]:
        """The model's keyword inputs for a padded batch, and the valid
        input samples of each waveform [B] (integers)."""
        raise NotImplementedError

    def output_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Exact output frame counts of the encoder for ``num_samples``
        input samples (an integer tensor, any shape)."""
        raise NotImplementedError

    # ------------------------------------------------------ facts
    @property
    def output_size(self) -> int:
        """Channels of the output frames (the adapter's when there is one)."""
        config = self.model.config
        return config.output_hidden_size if getattr(config, "add_adapter", False) else config.hidden_size

    @property
    def samples_per_frame(self) -> int:
        """Input samples (at 16 kHz) per output frame: 320 for 50 frames/s."""
        raise NotImplementedError

    @property
    def frame_rate(self) -> float:
        """Output frames per second of 16 kHz audio."""
        return 16000 / self.samples_per_frame

    @property
    def min_samples(self) -> int:
        """The fewest input samples that give one output frame."""
        raise NotImplementedError

    @property
    def model_type(self) -> str:
        """The transformers ``model_type`` (``wav2vec2-bert``, ``wav2vec2``, ``hubert``)."""
        return self.model.config.model_type

    # ------------------------------------------------------ running
    def train(self, mode: bool = True) -> "SpeechEncoder":
        """Sets training mode; a frozen encoder stays in eval mode."""
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def forward(
        self, wavs: torch.Tensor, wav_lens: Optional[torch.Tensor] = None, return_lengths: bool = False
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Encodes a padded batch of waveforms.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms [B, T] in [-1, 1] at 16 kHz.
        wav_lens : torch.Tensor, optional
            Relative lengths [B] in (0, 1] (SpeechBrain's convention); None
            means no padding.
        return_lengths : bool
            Also return the relative lengths of the output frames.

        Returns
        -------
        hidden : torch.Tensor
            [B, T'', H], or [L + 1, B, T'', H] with ``output_all_hiddens``.
        lengths : torch.Tensor
            Relative output lengths [B] (exact: :meth:`output_frames` over
            the padded frame count), with ``return_lengths`` only.
        """
        if self.freeze:
            with torch.no_grad():
                return self._encode(wavs, wav_lens, return_lengths)
        return self._encode(wavs, wav_lens, return_lengths)

    def _encode(self, wavs, wav_lens, return_lengths):
        inputs, num_samples = self._model_inputs(wavs, wav_lens)
        outputs = self.model(**inputs, output_hidden_states=self.output_all_hiddens)
        if self.output_all_hiddens:
            hidden = torch.stack(outputs.hidden_states)  # [L + 1, B, T'', H]
        else:
            hidden = outputs.last_hidden_state  # [B, T'', H]
        if self.output_norm:
            hidden = F.layer_norm(hidden, hidden.shape[-1:])
        if not return_lengths:
            return hidden
        return hidden, relative_lengths(self.output_frames(num_samples), hidden.shape[-2])
