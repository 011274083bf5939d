"""Fast CPU inference: int8 dynamic quantisation of the encoder's linear
layers.

The encoder's linear layers (attention projections, feed-forward modules:
most of its multiply-adds) get int8 weights (one scale per tensor, as
PyTorch's dynamic quantisation does); activations are quantised on the fly
for each matrix product (fbgemm kernels on x86).
The CTC head, the convolution modules, layer norms and the log-softmax stay
in fp32. ``torch.ao.quantization.quantize_dynamic`` is deprecated in favour
of torchao's ``quantize_``, but it is in the tested torch (2.11) with its
fast CPU kernels; ``environment.PRIVATE_APIS`` lists it, so an upgrade that
removes it fails at install, not in a user's transcription. Speed and CER:
docs/benchmarks.md (``bench/inference.py --int8``).

Example
-------
>>> import torch
>>> layer = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
>>> quantized = quantize_linear_int8(layer)
>>> count_quantized(quantized), count_quantized(layer)
(1, 0)

Authors: speechbrain-w2vbert contributors
"""

import warnings

import torch

from speechbrain_w2vbert.inference.folder import asr_model

__all__ = ["quantize_linear_int8", "count_quantized", "quantize_asr_int8"]


def quantize_linear_int8(module: torch.nn.Module, inplace: bool = False) -> torch.nn.Module:
    """``module`` with its ``torch.nn.Linear`` layers computing in int8
    (dynamic quantisation; CPU only): a copy, or ``module`` itself changed
    with ``inplace`` (no second copy of the weights in memory)."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's deprecation notice, on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        return quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8, inplace=inplace)


def count_quantized(module: torch.nn.Module) -> int:
    """Number of int8 dynamically quantised linear layers in ``module``."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return sum(isinstance(m, DynamicLinear) for m in module.modules())


def quantize_asr_int8(asr):
    """Quantises a loaded ``EncoderASR``'s encoder in place (its CTC head
    stays in fp32); returns ``asr``.

    Raises
    ------
    ValueError
        The model is not on the CPU (int8 dynamic quantisation runs there only).
    """
    model = asr_model(asr)
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"--int8 runs on the CPU only; the model is on {device}")
    encoder = model.encoder  # the lobe: its ``model`` is the transformers encoder
    quantize_linear_int8(encoder.model, inplace=True).eval()
    if count_quantized(encoder.model) == 0:
        raise ValueError(f"no linear layer to quantise in {type(encoder.model).__name__}")
    return asr
