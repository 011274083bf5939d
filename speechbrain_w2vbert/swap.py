"""In-place replacement of transformers modules by subclasses that only
compute differently (:mod:`speechbrain_w2vbert.attention`,
:mod:`speechbrain_w2vbert.convolution`).

Authors: speechbrain-w2vbert contributors
"""

from typing import Callable, Optional

import torch

__all__ = ["swap_class"]


def swap_class(
    model: torch.nn.Module,
    original: type,
    replacement: type,
    condition: Optional[Callable[[torch.nn.Module], bool]] = None,
) -> int:
    """Gives every submodule of exact class ``original`` (that meets
    ``condition``) the class ``replacement``, keeping its parameters, buffers
    and state_dict keys: only ``forward`` changes.

    Arguments
    ---------
    model : torch.nn.Module
        The model to convert, in place.
    original : type
        The exact class to replace (subclasses are left alone).
    replacement : type
        A subclass of ``original`` that adds no state.
    condition : callable, optional
        Converts only the modules for which it returns True.

    Returns
    -------
    int
        The number of modules converted.

    Example
    -------
    >>> class Doubled(torch.nn.ReLU):
    ...     def forward(self, x):
    ...         return 2 * super().forward(x)
    >>> model = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Tanh())
    >>> swap_class(model, torch.nn.ReLU, Doubled), model(torch.ones(1))
    (1, tensor([0.9640]))
    """
    converted = 0
    for module in model.modules():
        if type(module) is original and (condition is None or condition(module)):
            module.__class__ = replacement
            converted += 1
    return converted
