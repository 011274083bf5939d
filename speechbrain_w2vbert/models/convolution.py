"""The Conformer convolution module, computed time-major.

transformers' ``Wav2Vec2BertConvolutionModule`` turns its [B, T, C] input
channel-major ([B, C, T]) for the whole module: both pointwise convolutions
run as ``Conv1d`` with kernel 1 (on the CPU through oneDNN's convolution,
about 1.5x the time of the same matrix product), and the layer norm between
them needs two more transposes. Only the depthwise convolution needs
channel-major data. This module keeps [B, T, C] and runs the pointwise
convolutions as ``F.linear`` with the same weights: the same arithmetic, in
another order of memory. The parameters and their names are transformers'
own, so checkpoints are unchanged.

Speed: docs/benchmarks.md (``bench/train_step.py``).

Authors: speechbrain-w2vbert contributors
"""

from typing import Optional

import torch
import torch.nn.functional as F
from transformers.models.wav2vec2_bert.modeling_wav2vec2_bert import Wav2Vec2BertConvolutionModule

from speechbrain_w2vbert.models.swap import encoder_layers, swap_class

__all__ = ["TimeMajorConvolutionModule", "use_time_major_convolution"]


class TimeMajorConvolutionModule(Wav2Vec2BertConvolutionModule):
    """``Wav2Vec2BertConvolutionModule`` with the pointwise convolutions as
    matrix products over [B, T, C] (see the module docstring).

    Not built directly: :func:`use_time_major_convolution` converts the
    modules of an existing model in place, keeping their parameters.
    """

    def forward(self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Convolution block over [B, T, C]; ``attention_mask`` [B, T] is 1
        (or True) on valid frames, whose neighbours past the end are zeroed."""
        hidden = self.layer_norm(hidden_states)  # [B, T, C]
        if attention_mask is not None:
            # Padded frames must not leak into the depthwise convolution.
            hidden = hidden.masked_fill(~attention_mask.bool().unsqueeze(-1), 0.0)
        hidden = F.glu(F.linear(hidden, self.pointwise_conv1.weight.squeeze(-1)), dim=-1)  # [B, T, 2C] -> [B, T, C]
        # Causal depthwise convolution: the whole kernel's padding on the left.
        kernel = self.depthwise_conv.kernel_size[0]
        hidden = self.depthwise_conv(F.pad(hidden.transpose(1, 2), (kernel - 1, 0)))  # [B, C, T]
        hidden = self.activation(self.depthwise_layer_norm(hidden.transpose(1, 2)))  # [B, T, C]
        hidden = F.linear(hidden, self.pointwise_conv2.weight.squeeze(-1))  # [B, T, C]
        return self.dropout(hidden)


def use_time_major_convolution(model: torch.nn.Module) -> int:
    """Switches every ``Wav2Vec2BertConvolutionModule`` of ``model`` to
    :class:`TimeMajorConvolutionModule`, in place.

    Arguments
    ---------
    model : torch.nn.Module
        A ``Wav2Vec2BertModel`` (or any module containing its layers).

    Returns
    -------
    int
        The number of modules converted: one per layer, or a ``RuntimeError``
        naming the transformers version (see :func:`~speechbrain_w2vbert.models.swap.swap_class`).

    Example
    -------
    >>> from transformers import Wav2Vec2BertModel, Wav2Vec2BertConfig
    >>> from speechbrain_w2vbert import TINY_CONFIG_DIR
    >>> model = Wav2Vec2BertModel(Wav2Vec2BertConfig.from_pretrained(TINY_CONFIG_DIR))
    >>> use_time_major_convolution(model)
    4
    """
    return swap_class(model, Wav2Vec2BertConvolutionModule, TimeMajorConvolutionModule,
                      expected=encoder_layers(model), switch_off="time_major_conv=False")
