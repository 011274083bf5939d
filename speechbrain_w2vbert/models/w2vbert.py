"""SpeechBrain lobe for w2v-BERT 2.0 (``transformers.Wav2Vec2BertModel``).

``W2VBert`` takes raw 16 kHz waveforms with SpeechBrain's relative lengths,
computes the SeamlessM4T features on the waveforms' device
(:class:`~speechbrain_w2vbert.models.features.SeamlessFbank`), builds the padding
mask from the lengths and runs the Conformer encoder. What it shares with
the wav2vec 2.0 family's lobe (sources, overrides, freezing, checkpointing,
lengths, the encoder's facts) is :class:`~speechbrain_w2vbert.models.encoder.SpeechEncoder`'s.
The wrapped ``Wav2Vec2BertModel`` is ``encoder.model``, so it saves and
loads with Hugging Face's ``save_pretrained`` / ``from_pretrained`` unchanged.

Authors: speechbrain-w2vbert contributors
"""

import logging
from typing import Optional, Sequence

import torch
from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

from speechbrain_w2vbert.models.attention import use_bucketed_attention
from speechbrain_w2vbert.models.convolution import use_time_major_convolution
from speechbrain_w2vbert.models.encoder import SpeechEncoder, sample_counts
from speechbrain_w2vbert.models.features import SeamlessFbank
from speechbrain_w2vbert.models.lengths import absolute_lengths, valid_mask

__all__ = ["W2VBert", "build_model", "BUCKETED", "FRONTEND_PRECISIONS"]

logger = logging.getLogger(__name__)

#: W2VBert's own constructor arguments that are ``Wav2Vec2BertConfig`` fields
#: of the same name (beyond the shared ones of ``SpeechEncoder``); ``None``
#: keeps the value of the source's ``config.json``.
CONFIG_FIELDS = ("conformer_conv_dropout", "add_adapter", "num_adapter_layers")


#: ``frontend_precision`` -> (dtype, spectral_dtype) of the SeamlessFbank.
FRONTEND_PRECISIONS = {
    "mixed": (torch.float32, torch.float64),
    "fp64": (torch.float64, torch.float64),
    "fp32": (torch.float32, torch.float32),
}

#: ``attn_implementation`` value for our attention: torch's
#: ``scaled_dot_product_attention`` fed by the bucketed relative-key bias
#: (:mod:`speechbrain_w2vbert.models.attention`), in place of transformers' modules.
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
        ``"sdpa_bucketed"`` (default: torch's SDPA with the relative-key bias built
        from (B, H, L, 73) scores, see :mod:`speechbrain_w2vbert.models.attention`),
        or one of transformers' own: ``"sdpa"``, ``"eager"``, ``"flex_attention"``.
    source : str, optional
        Load the weights from this hub id or folder; None initialises randomly.
    time_major_conv : bool
        Compute the Conformer convolution modules time-major, pointwise
        convolutions as matrix products (default True: same results, faster,
        see :mod:`speechbrain_w2vbert.models.convolution`); False keeps transformers'.
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
    if attn_implementation == BUCKETED and config.position_embeddings_type != "relative_key":
        raise ValueError(
            f"sdpa_bucketed computes relative_key attention; this config's position embeddings are "
            f"{config.position_embeddings_type!r}: use attn_implementation='sdpa' (or 'eager')"
        )
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


class W2VBert(SpeechEncoder):
    """w2v-BERT 2.0 encoder on raw waveforms, for SpeechBrain.

    The arguments shared with the other lobes (``source``, ``save_path``,
    ``pretrained``, ``freeze``, ``frozen_layers``, ``layerdrop``, SpecAugment,
    the dropouts, ``gradient_checkpointing``, ``output_all_hiddens``,
    ``output_norm``, ``revision``, ``config``) are
    :class:`~speechbrain_w2vbert.models.encoder.SpeechEncoder`'s; w2v-BERT 2.0 adds:

    Arguments
    ---------
    source : str, optional
        A Hugging Face hub id (``facebook/w2v-bert-2.0``) or a local folder
        (see ``SpeechEncoder``).
    freeze_feature_projection : bool
        Freeze the feature projection (layer norm + linear over the 160-dim
        features) (default False).
    conformer_conv_dropout : float, optional
        Dropout in [0, 1) inside the Conformer convolution modules.
    add_adapter : bool, optional
        Add the convolutional adapter after the encoder; each adapter layer
        halves the frame rate (50 -> 25 frames/s for one layer).
    num_adapter_layers : int, optional
        Number of adapter layers (>= 1) when ``add_adapter``.
    attn_implementation : str
        ``"sdpa_bucketed"`` (default): our attention module, torch's
        ``scaled_dot_product_attention`` with the relative-key bias computed
        without the (L, L, head_size) tensor (same results, see
        :mod:`speechbrain_w2vbert.models.attention`); or transformers' own
        ``"sdpa"``, ``"eager"``, ``"flex_attention"``.
    time_major_conv : bool
        Compute the convolution modules time-major (default True: same
        results as transformers', faster; see :mod:`speechbrain_w2vbert.models.convolution`).
    output_layer : int, optional
        Keep only the first ``output_layer`` Conformer layers (1 <= N <= L)
        and return the last of them: layers above are never built nor
        loaded, which saves their compute and memory. None keeps all.
    frontend_precision : str
        Precision of the SeamlessM4T features, the same in training and in
        eval mode: ``"mixed"`` (default: fp64 from the waveform to the power
        spectrum, fp32 after: transformers' extractor to float32 rounding),
        ``"fp64"`` (all fp64, a little slower), or ``"fp32"`` (all fp32:
        faster on the CPU, but off by up to ~1e-3 on band-limited audio and
        speech beside digital silence; see
        :mod:`speechbrain_w2vbert.models.features`).
    **kwargs
        The shared arguments, as ``SpeechEncoder``.

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
    >>> encoder.output_size, encoder.samples_per_frame, encoder.frame_rate, encoder.min_samples
    (144, 320, 50.0, 560)
    """

    config_class = Wav2Vec2BertConfig

    def __init__(
        self,
        source: Optional[str] = None,
        freeze_feature_projection: bool = False,
        conformer_conv_dropout: Optional[float] = None,
        add_adapter: Optional[bool] = None,
        num_adapter_layers: Optional[int] = None,
        attn_implementation: str = BUCKETED,
        time_major_conv: bool = True,
        output_layer: Optional[int] = None,
        frontend_precision: str = "mixed",
        **kwargs,
    ):
        arguments = locals()
        overrides = {name: arguments[name] for name in CONFIG_FIELDS if arguments[name] is not None}
        if output_layer is not None:
            overrides["num_hidden_layers"] = output_layer
        overrides.update(kwargs.pop("config_overrides", None) or {})
        if frontend_precision not in FRONTEND_PRECISIONS:
            raise ValueError(
                f"frontend_precision must be one of {', '.join(FRONTEND_PRECISIONS)}, not {frontend_precision!r}"
            )
        self.attn_implementation = attn_implementation
        self.time_major_conv = time_major_conv
        self.freeze_feature_projection = freeze_feature_projection
        super().__init__(source, config_overrides=overrides, **kwargs)
        self.frontend_precision = frontend_precision
        dtype, spectral_dtype = FRONTEND_PRECISIONS[frontend_precision]
        self.frontend = SeamlessFbank(dtype=dtype, spectral_dtype=spectral_dtype)
        feature_dim = self.frontend.n_mels * self.frontend.stride
        if self.model.config.feature_projection_input_dim != feature_dim:
            raise ValueError(
                f"{self.source}: config.feature_projection_input_dim is "
                f"{self.model.config.feature_projection_input_dim}, but the SeamlessM4T features have {feature_dim} dims."
            )

    def _check_overrides(self, config: Wav2Vec2BertConfig, overrides: dict, source: str) -> None:
        layers = overrides.get("num_hidden_layers")
        if layers is not None and not 1 <= layers <= config.num_hidden_layers:
            raise ValueError(f"output_layer must be in [1, {config.num_hidden_layers}] for {source}, got {layers}")
        if layers is not None and overrides.get("add_adapter", config.add_adapter):
            raise ValueError("output_layer cannot be combined with add_adapter: the adapter follows the last layer")

    def _build_model(self, config, source, load_kwargs):
        return build_model(config, self.attn_implementation, source, self.time_major_conv, **load_kwargs)

    def _frozen_modules(self) -> Sequence[torch.nn.Module]:
        return [self.model.feature_projection] if self.freeze_feature_projection else []

    def _model_inputs(self, wavs, wav_lens):
        feats, feat_lens = self.frontend(wavs, wav_lens)  # [B, T', 160] fp32
        attention_mask = valid_mask(absolute_lengths(feat_lens, feats.shape[1]), feats.shape[1])  # [B, T']
        return {"input_features": feats, "attention_mask": attention_mask.long()}, sample_counts(wavs, wav_lens)

    def output_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Output frames for ``num_samples`` valid input samples: the
        stacked 20 ms feature frames, then each adapter layer (kernel 3,
        stride 2, padding 1) maps n frames to ``(n - 1) // 2 + 1``.

        Arguments
        ---------
        num_samples : torch.Tensor
            Integer tensor of sample counts, any shape.

        Returns
        -------
        torch.Tensor
            Frame counts, same shape.

        Example
        -------
        >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
        >>> W2VBert(TINY_CONFIG_DIR, pretrained=False, add_adapter=True).output_frames(torch.tensor([16000, 560]))
        tensor([25,  1])
        """
        frames = self.frontend.num_frames(num_samples)
        if self.model.config.add_adapter:
            frames = self.model._get_feat_extract_output_lengths(frames)
        return frames

    @property
    def samples_per_frame(self) -> int:
        """320 (10 ms features stacked by 2), times 2 per adapter layer."""
        frame = self.frontend.HOP_LENGTH * self.frontend.stride
        config = self.model.config
        if config.add_adapter:
            frame *= config.adapter_stride ** config.num_adapter_layers
        return frame

    @property
    def min_samples(self) -> int:
        """560 samples (35 ms: two 25 ms windows make one stacked frame)."""
        return self.frontend.min_samples
