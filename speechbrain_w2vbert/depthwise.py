"""Depthwise 1-D convolutions run as 2-D ones on the CPU.

Every Conformer layer of w2v-BERT 2.0 holds a depthwise ``nn.Conv1d``
(kernel 31, one group per channel). On the CPU, PyTorch's backward pass for a
grouped 1-D convolution takes a slow path: 9.2 s for batch 2 x 512 channels x
1500 frames, against 0.14 s for the same convolution written as a 2-D one of
height 1 (measured on 2 cores, torch 2.11), which oneDNN runs natively. The
results are the same convolution; the parameters and checkpoints are unchanged.

Authors: speechbrain-w2vbert contributors
"""

import torch
import torch.nn.functional as F

__all__ = ["DepthwiseConv1d", "use_conv2d_depthwise"]


class DepthwiseConv1d(torch.nn.Conv1d):
    """``nn.Conv1d`` that computes through ``conv2d`` on the CPU.

    Not built directly: :func:`use_conv2d_depthwise` converts the depthwise
    convolutions of an existing model in place. On other devices it is a
    plain ``nn.Conv1d``.
    """

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Convolves [B, C, T] inputs."""
        if inputs.device.type != "cpu":
            return super().forward(inputs)
        output = F.conv2d(
            inputs.unsqueeze(2),  # [B, C, 1, T]
            self.weight.unsqueeze(2),  # [C, 1, 1, K]
            self.bias,
            (1, self.stride[0]),
            (0, self.padding[0]),
            (1, self.dilation[0]),
            self.groups,
        )
        return output.squeeze(2)


def use_conv2d_depthwise(model: torch.nn.Module) -> int:
    """Switches the depthwise ``nn.Conv1d`` layers of ``model`` to
    :class:`DepthwiseConv1d`, in place.

    Arguments
    ---------
    model : torch.nn.Module
        Any module; only ``nn.Conv1d`` with one group per input channel,
        zero padding given as a number, are converted.

    Returns
    -------
    int
        The number of layers converted.

    Example
    -------
    >>> block = torch.nn.Sequential(torch.nn.Conv1d(8, 8, 5, groups=8), torch.nn.Conv1d(8, 4, 1))
    >>> use_conv2d_depthwise(block)
    1
    >>> block(torch.randn(2, 8, 20)).shape
    torch.Size([2, 4, 16])
    """
    converted = 0
    for module in model.modules():
        if (
            type(module) is torch.nn.Conv1d
            and module.groups > 1
            and module.groups == module.in_channels
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
        ):
            module.__class__ = DepthwiseConv1d
            converted += 1
    return converted
